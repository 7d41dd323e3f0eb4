"""The sample application: four services calling each other through the data plane.

    ingress -> frontend -> catalog -> reviews (v1, v2) -> ratings

Each workload listens on its own 127.0.0.1 port and calls the next service through its
own data-plane listener (its "sidecar"), with the service name in the Host header. Each
propagates the tracing and chaos headers it receives. Their resilience is deliberately
uneven, as in real systems, so that experiments find something:

- frontend -> catalog: a 2 s timeout and a fallback (a degraded page, still 200);
- catalog -> reviews: **no timeout**: a slow reviews makes catalog slow (the latent
  cascading-latency bug an experiment should find);
- reviews -> ratings: client retries (3 tries, 0.5 s each) and a fallback without stars.

Run as ``python -m chaosmesh_istio.localmesh.sampleapp --config FILE`` where FILE is JSON::

    {"propagate": ["x-request-id", ...],
     "workloads": [{"name": "frontend-v1", "app": "frontend", "version": "v1",
                    "port": 9080, "proxy": "http://127.0.0.1:15001"}, ...],
     "state_file": "/dir/sampleapp.json"}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

__all__ = ["DEFAULT_PROPAGATE", "Workload", "build_app", "main"]

logger = logging.getLogger("chaostoolkit").getChild("localmesh.sampleapp")

DEFAULT_PROPAGATE = (
    "x-request-id",
    "traceparent",
    "tracestate",
    "baggage",
    "x-chaos-run",
    "x-chaos-group",
    "end-user",
)
FRONTEND_TIMEOUT = 2.0
RATINGS_TRY_TIMEOUT = 0.5
RATINGS_TRIES = 3


@dataclass(frozen=True)
class Workload:
    name: str
    app: str
    version: str
    port: int
    proxy: str


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Outbound:
    """Calls to other services through this workload's sidecar listener."""

    def __init__(self, workload: Workload, propagate: tuple[str, ...]) -> None:
        self.workload = workload
        self.propagate = propagate
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            auto_decompress=False,
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def headers(self, incoming: web.Request, service: str) -> dict[str, str]:
        headers = {"Host": service}
        for name in self.propagate:
            value = incoming.headers.get(name)
            if value is not None:
                headers[name] = value
        return headers

    async def get(
        self, incoming: web.Request, service: str, path: str, timeout: float | None
    ) -> tuple[int, Any]:
        """GET ``path`` on ``service``; (status, JSON body or text)."""
        assert self.session is not None
        async with self.session.get(
            self.workload.proxy + path,
            headers=self.headers(incoming, service),
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as answer:
            text = await answer.text()
            try:
                return answer.status, json.loads(text)
            except ValueError:
                return answer.status, text


def _product_id(request: web.Request) -> str:
    return request.match_info.get("id", "1")


def _frontend(out: Outbound) -> Handler:
    async def page(request: web.Request) -> web.StreamResponse:
        pid = _product_id(request)
        started = time.monotonic()
        try:
            status, body = await out.get(request, "catalog", f"/products/{pid}", FRONTEND_TIMEOUT)
        except (TimeoutError, aiohttp.ClientError) as exc:
            status, body = 0, f"{type(exc).__name__}"
        if status == 200:
            return web.json_response({"service": "frontend", "product": body, "degraded": False})
        # The fallback: the page still renders, without the catalog's part.
        return web.json_response(
            {
                "service": "frontend",
                "product": None,
                "degraded": True,
                "cause": {"catalog_status": status, "detail": str(body)[:200]},
                "waited_ms": round((time.monotonic() - started) * 1000, 1),
            }
        )

    return page


def _catalog(out: Outbound) -> Handler:
    async def product(request: web.Request) -> web.StreamResponse:
        pid = _product_id(request)
        # No timeout here: the latent bug. A slow reviews makes every caller slow.
        status, body = await out.get(request, "reviews", f"/reviews/{pid}", None)
        if status != 200:
            return web.json_response(
                {"service": "catalog", "error": f"reviews answered {status}", "detail": body},
                status=502 if status >= 500 or status == 0 else status,
            )
        return web.json_response({"service": "catalog", "id": pid, "reviews": body})

    return product


def _reviews(out: Outbound, version: str) -> Handler:
    async def reviews(request: web.Request) -> web.StreamResponse:
        pid = _product_id(request)
        rating: Any = None
        attempts = 0
        for attempts in range(1, RATINGS_TRIES + 1):  # noqa: B007 - reported below
            try:
                status, body = await out.get(
                    request, "ratings", f"/ratings/{pid}", RATINGS_TRY_TIMEOUT
                )
            except (TimeoutError, aiohttp.ClientError):
                continue
            if status == 200:
                rating = body
                break
            if status < 500:
                break
        return web.json_response(
            {
                "service": "reviews",
                "version": version,
                "id": pid,
                "reviews": ["An extremely entertaining read.", "Absolutely fun and exciting."],
                "rating": rating,
                "ratings_attempts": attempts,
                "degraded": rating is None,
            }
        )

    return reviews


def _ratings() -> Handler:
    async def ratings(request: web.Request) -> web.StreamResponse:
        return web.json_response({"service": "ratings", "id": _product_id(request), "stars": 4})

    return ratings


def build_app(workload: Workload, propagate: tuple[str, ...]) -> web.Application:
    """The aiohttp application of one workload."""
    out = Outbound(workload, propagate)
    app = web.Application()

    async def on_startup(_: web.Application) -> None:
        await out.start()

    async def on_cleanup(_: web.Application) -> None:
        await out.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)

    async def health(_: web.Request) -> web.StreamResponse:
        return web.json_response({"workload": workload.name, "status": "ok"})

    app.router.add_get("/healthz", health)
    if workload.app == "frontend":
        handler = _frontend(out)
        app.router.add_get("/", handler)
        app.router.add_get("/product/{id}", handler)
    elif workload.app == "catalog":
        app.router.add_get("/products/{id}", _catalog(out))
    elif workload.app == "reviews":
        app.router.add_get("/reviews/{id}", _reviews(out, workload.version))
    elif workload.app == "ratings":
        app.router.add_get("/ratings/{id}", _ratings())
    else:
        raise ValueError(f"unknown sample app {workload.app!r}")
    return app


def _load(path: Path) -> tuple[list[Workload], tuple[str, ...], Path]:
    raw: Mapping[str, Any] = json.loads(path.read_text())
    workloads = [Workload(**w) for w in raw["workloads"]]
    propagate = tuple(h.lower() for h in raw.get("propagate", DEFAULT_PROPAGATE))
    return workloads, propagate, Path(raw["state_file"])


async def _serve(config: Path) -> None:
    workloads, propagate, state_file = _load(config)
    runners = []
    for workload in workloads:
        runner = web.AppRunner(build_app(workload, propagate), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", workload.port).start()
        runners.append(runner)
    ports = {w.name: w.port for w in workloads}
    tmp = state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "workloads": ports}))
    tmp.replace(state_file)
    logger.info("sample app serving %s", ports)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for runner in runners:
        with contextlib.suppress(Exception):
            await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m chaosmesh_istio.localmesh.sampleapp")
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(_serve(args.config))


if __name__ == "__main__":
    main()
