"""Helpers for the data plane tests: echo upstreams in a background thread, a data plane
process, and a client for the control plane and the admin server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from aiohttp import web

__all__ = [
    "DataPlane",
    "Echo",
    "EchoFarm",
    "free_port",
    "parse_metrics",
    "run_dataplane",
]

GROUP = "/apis/networking.istio.io/v1/namespaces"


def free_port() -> int:
    """A port nobody listens on right now (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Echo:
    """One upstream instance: answers JSON about the request; behaviour set by the test."""

    name: str
    port: int = 0
    fail_times: int = 0  # answer 503 this many times, then normally
    fail_status: int = 503
    delay: float = 0.0
    seen: list[dict[str, Any]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def reset(self) -> None:
        self.fail_times, self.fail_status, self.delay = 0, 503, 0.0
        self.seen.clear()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        record = {
            "instance": self.name,
            "method": request.method,
            "path": request.raw_path,
            "host": request.headers.get("Host", ""),
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body.decode(errors="replace"),
        }
        self.seen.append(record)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_times > 0:
            self.fail_times -= 1
            return web.json_response(record, status=self.fail_status)
        return web.json_response(record, headers={"x-echo": self.name})


class EchoFarm:
    """Echo servers on free 127.0.0.1 ports, served by one event loop in a thread."""

    def __init__(self, names: list[str]) -> None:
        self.echoes = {name: Echo(name) for name in names}
        self._loop = asyncio.new_event_loop()
        self._runners: list[web.AppRunner] = []
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __getitem__(self, name: str) -> Echo:
        return self.echoes[name]

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> None:
        for echo in self.echoes.values():
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", echo.handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            echo.port = int(runner.addresses[0][1])
            self._runners.append(runner)

    async def _stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def reset(self) -> None:
        for echo in self.echoes.values():
            echo.reset()


@dataclass
class DataPlane:
    """A running data plane process and clients for its API and admin server."""

    process: subprocess.Popen[bytes]
    state: dict[str, Any]
    api: requests.Session
    api_url: str
    client: requests.Session = field(default_factory=requests.Session)

    def url(self, listener: str) -> str:
        return str(self.state["listeners"][listener])

    @property
    def admin(self) -> str:
        return str(self.state["admin_url"])

    def get(
        self, path: str, host: str, listener: str = "frontend", **kwargs: Any
    ) -> requests.Response:
        headers = {"Host": host, **kwargs.pop("headers", {})}
        return self.client.get(self.url(listener) + path, headers=headers, timeout=10, **kwargs)

    def version(self) -> int:
        answer = self.client.get(f"{self.admin}/version", timeout=5)
        return int(answer.json()["version"])

    def wait_for(self, rv: int | str, timeout: float = 5.0) -> dict[str, Any]:
        answer = self.client.get(
            f"{self.admin}/version", params={"wait_for": rv, "timeout": timeout}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def _collection(self, kind: str, namespace: str) -> str:
        return f"{self.api_url}{GROUP}/{namespace}/{kind}"

    def apply(
        self,
        kind: str,
        name: str,
        spec: Mapping[str, Any],
        namespace: str = "default",
        wait: bool = True,
    ) -> int:
        """Create or replace an object; wait until the data plane applies it."""
        body = {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService" if kind == "virtualservices" else "DestinationRule",
            "metadata": {"name": name, "namespace": namespace},
            "spec": dict(spec),
        }
        url = self._collection(kind, namespace)
        current = self.api.get(f"{url}/{name}", timeout=5)
        if current.status_code == 200:
            body["metadata"]["resourceVersion"] = current.json()["metadata"]["resourceVersion"]
            answer = self.api.put(f"{url}/{name}", json=body, timeout=5)
        else:
            answer = self.api.post(url, json=body, timeout=5)
        assert answer.status_code in (200, 201), answer.text
        rv = int(answer.json()["metadata"]["resourceVersion"])
        if wait:
            self.wait_for(rv)
        return rv

    def vs(self, name: str, spec: Mapping[str, Any], namespace: str = "default") -> int:
        return self.apply("virtualservices", name, spec, namespace)

    def dr(self, name: str, spec: Mapping[str, Any], namespace: str = "default") -> int:
        return self.apply("destinationrules", name, spec, namespace)

    def delete_all(self) -> None:
        """Delete every VirtualService and DestinationRule, then wait until applied."""
        for kind in ("virtualservices", "destinationrules"):
            listing = self.api.get(f"{self.api_url}/apis/networking.istio.io/v1/{kind}", timeout=5)
            for item in listing.json()["items"]:
                meta = item["metadata"]
                self.api.delete(
                    f"{self._collection(kind, meta['namespace'])}/{meta['name']}", timeout=5
                )
        listing = self.api.get(
            f"{self.api_url}/apis/networking.istio.io/v1/virtualservices", timeout=5
        )
        self.wait_for(listing.json()["metadata"]["resourceVersion"])

    def metrics(self) -> list[tuple[str, dict[str, str], float]]:
        answer = self.client.get(f"{self.admin}/stats/prometheus", timeout=5)
        assert answer.status_code == 200
        return parse_metrics(answer.text)

    def count(self, **labels: str) -> float:
        """Sum of istio_requests_total over the series carrying ``labels``."""
        return sum(
            value
            for name, series, value in self.metrics()
            if name == "istio_requests_total" and all(series.get(k) == v for k, v in labels.items())
        )


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Prometheus text format samples as (name, labels, value); handles escaped values."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition("{")
        labels: dict[str, str] = {}
        pos = 0
        while rest[pos] != "}":
            eq = rest.index("=", pos)
            key = rest[pos:eq].lstrip(",")
            pos = eq + 2
            value = []
            while rest[pos] != '"':
                if rest[pos] == "\\":
                    pos += 1
                    value.append({"n": "\n"}.get(rest[pos], rest[pos]))
                else:
                    value.append(rest[pos])
                pos += 1
            labels[key] = "".join(value)
            pos += 1
            if rest[pos] == ",":
                pos += 1
        samples.append((name, labels, float(rest[pos + 1 :].strip())))
    return samples


@contextlib.contextmanager
def run_dataplane(
    directory: Path,
    mesh: Any,
    listeners: list[dict[str, Any]],
    services: list[dict[str, Any]],
) -> Iterator[DataPlane]:
    """Start a data plane on a local mesh's control plane; always stop it (log on failure)."""
    with mesh.session() as api:
        yield from _run_dataplane(
            directory, mesh.url, mesh.dir / "token", mesh.ca, listeners, services, api
        )


def _run_dataplane(
    directory: Path,
    api_url: str,
    token_file: Path,
    ca_file: Path,
    listeners: list[dict[str, Any]],
    services: list[dict[str, Any]],
    api: requests.Session,
) -> Iterator[DataPlane]:
    directory.mkdir(parents=True, exist_ok=True)
    state_file = directory / "dataplane.json"
    config = {
        "api": {"url": api_url, "token_file": str(token_file), "ca_file": str(ca_file)},
        "admin": {"host": "127.0.0.1", "port": 0},
        "group_header": "x-chaos-group",
        "group_label": "chaos_group",
        "listeners": listeners,
        "services": services,
        "state_file": str(state_file),
    }
    config_file = directory / "dataplane-config.json"
    config_file.write_text(json.dumps(config))
    log = directory / "dataplane.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chaosmesh_istio.localmesh.dataplane",
                "--config",
                str(config_file),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while not state_file.exists():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "data plane not ready: " + log.read_text()
            time.sleep(0.05)
        state = json.loads(state_file.read_text())
        with requests.Session() as client:
            client.trust_env = False
            yield DataPlane(process, state, api, api_url, client)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
