"""The admin server, after Envoy's: metrics, the applied configuration, readiness.

- ``GET /stats/prometheus``: Istio's standard metrics (Prometheus text format).
- ``GET /version``: ``{"version", "applied_at", "virtual_services", "destination_rules"}``;
  with ``?wait_for=<resourceVersion>&timeout=<seconds>`` it answers once that version is
  applied (200), or with the current state and status 408 when the timeout passes first.
- ``GET /config_dump``: the VirtualServices and DestinationRules applied, by namespace/name.
- ``GET /healthz/ready``: 200 once the first full configuration is applied, else 503.
"""

from __future__ import annotations

from aiohttp import web

from chaosmesh_istio.localmesh.dataplane.telemetry import Telemetry
from chaosmesh_istio.localmesh.dataplane.xds import ConfigWatcher

__all__ = ["create_admin_app"]

_MAX_WAIT_SECONDS = 300.0
_PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _number(request: web.Request, name: str, default: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"invalid {name}: {raw!r}") from None


def create_admin_app(watcher: ConfigWatcher, telemetry: Telemetry) -> web.Application:
    """The admin application of one data plane process."""

    async def stats(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=telemetry.render().encode(), headers={"Content-Type": _PROMETHEUS_TYPE}
        )

    async def version(request: web.Request) -> web.StreamResponse:
        wanted = int(_number(request, "wait_for", 0))
        timeout = min(max(_number(request, "timeout", 30.0), 0.0), _MAX_WAIT_SECONDS)
        reached = await watcher.wait_for(wanted, timeout) if wanted else True
        snapshot = watcher.snapshot
        body = {
            "version": str(snapshot.version),
            "applied_at": snapshot.applied_at,
            "virtual_services": len(snapshot.virtual_services),
            "destination_rules": len(snapshot.destination_rules),
        }
        return web.json_response(body, status=200 if reached else 408)

    async def config_dump(request: web.Request) -> web.StreamResponse:
        return web.json_response(watcher.snapshot.dump())

    async def ready(request: web.Request) -> web.StreamResponse:
        if watcher.ready.is_set():
            return web.Response(text="LIVE\n")
        return web.Response(status=503, text="PRE_INITIALIZING\n")

    app = web.Application()
    app.router.add_routes(
        [
            web.get("/stats/prometheus", stats),
            web.get("/version", version),
            web.get("/config_dump", config_dump),
            web.get("/healthz/ready", ready),
        ]
    )
    return app
