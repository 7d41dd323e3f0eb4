"""Request handling of one listener, as Envoy does with the routes Istio generates:
match a route, redirect or answer directly, inject faults, edit headers and the path,
then forward (see :mod:`.upstream`) and report ``reporter="source"`` metrics.

The request body is read once: retries and mirrors need it again.

A caller that goes away before the answer (its own timeout fired during an injected
delay, say) cancels the handler; the request is reported then, as Envoy does, with
response code 0 and the ``DC`` flag next to the flags gathered so far.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import Protocol

from aiohttp import web
from multidict import CIMultiDict

from chaosmesh_istio.localmesh.dataplane.config import ListenerConfig
from chaosmesh_istio.localmesh.dataplane.http1 import Http1Pool
from chaosmesh_istio.localmesh.dataplane.rewrite import (
    apply_headers,
    redirect_location,
    rewrite_path,
)
from chaosmesh_istio.localmesh.dataplane.routes import Destination, Route
from chaosmesh_istio.localmesh.dataplane.snapshot import HostRoutes, Snapshot
from chaosmesh_istio.localmesh.dataplane.telemetry import (
    UNKNOWN_DESTINATION,
    Telemetry,
    service_key,
    source_key,
)
from chaosmesh_istio.localmesh.dataplane.upstream import HOP_BY_HOP, Reply, Upstream, local_reply
from chaosmesh_istio.localmesh.routing import Request, select_route

__all__ = ["Listener", "SnapshotSource", "join_flags"]

# Envoy's order of response flags in access logs and Istio's response_flags label.
_FLAG_ORDER = ("UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "DC", "URX", "NC")


class SnapshotSource(Protocol):
    """Where a listener finds the current routing snapshot."""

    @property
    def snapshot(self) -> Snapshot:
        """The snapshot applied now."""


def join_flags(flags: list[str]) -> str:
    """Response flags as Envoy writes them: "-" for none, else comma-separated in order."""
    if not flags:
        return "-"
    if len(flags) == 1:
        return flags[0]
    return ",".join(sorted(set(flags), key=_FLAG_ORDER.index))


class Listener:
    """The proxy of one listener: an aiohttp low-level request handler."""

    def __init__(
        self,
        config: ListenerConfig,
        xds: SnapshotSource,
        telemetry: Telemetry,
        pool: Http1Pool,
        group_header: str,
    ) -> None:
        self.config = config
        self.port: int | None = None  # the bound port, for gateway port matches
        self._xds = xds
        self._telemetry = telemetry
        self._group_header = group_header
        self._source = source_key(config)
        self._upstream = Upstream(pool, telemetry, self._source)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Serve one downstream request."""
        start = time.perf_counter()
        headers = request.headers
        group = headers.get(self._group_header) or "unknown"
        authority = headers.get("Host", "")
        snapshot = self._xds.snapshot
        entry = snapshot.lookup(self.config, authority) if authority else None
        flags: list[str] = []
        if entry is None:
            reply, labels = local_reply(404, b""), UNKNOWN_DESTINATION
            flags.append("NR")
        else:
            target = [service_key(entry.service)]
            try:
                reply, labels = await self._route(request, entry, authority, group, flags, target)
            except asyncio.CancelledError:
                self._telemetry.record(
                    "source",
                    self._source,
                    target[0],
                    0,
                    join_flags([*flags, "DC"]),
                    group,
                    (time.perf_counter() - start) * 1000.0,
                )
                raise
        self._telemetry.record(
            "source",
            self._source,
            labels,
            reply.status,
            join_flags(flags),
            group,
            (time.perf_counter() - start) * 1000.0,
        )
        return web.Response(status=reply.status, headers=reply.headers, body=reply.body)

    async def _route(
        self,
        request: web.BaseRequest,
        entry: HostRoutes,
        authority: str,
        group: str,
        flags: list[str],
        target: list[tuple[str, ...]],
    ) -> tuple[Reply, tuple[str, ...]]:
        """Route and forward; ``target[0]`` is kept on the destination chosen so far."""
        matched: Request | None = None
        if entry.trivial:
            index: int | None = 0
        else:
            matched = Request(
                method=request.method,
                path=request.raw_path,
                headers=request.headers,
                authority=authority,
                port=None if self.config.gateway == "mesh" else self.port,
                source_labels=self.config.labels,
                source_namespace=self.config.namespace,
                gateway=self.config.gateway,
            )
            index = select_route(entry.raw_routes, matched, entry.namespace)
        fallback = service_key(entry.service)
        if index is None:
            flags.append("NR")
            return local_reply(404, b""), fallback
        route = entry.routes[index]
        if route.redirect is not None:
            location, code = redirect_location(route.redirect, request.raw_path, authority)
            reply = local_reply(code, b"")
            reply.headers["Location"] = location
            return reply, fallback
        if route.direct is not None:
            status, body = route.direct
            reply = local_reply(status, body or b"")
            apply_headers(reply.headers, route.response_headers)
            return reply, fallback
        destination = self._pick(route)
        if destination is None:
            flags.append("NR")
            return local_reply(404, b""), fallback
        cluster = destination.cluster
        target[0] = cluster.labels
        fault = route.fault
        if fault is not None:
            if fault.delay and (
                fault.delay_percent >= 100 or random.random() * 100 < fault.delay_percent
            ):
                flags.append("DI")
                await asyncio.sleep(fault.delay)
            if (fault.abort_status or fault.abort_grpc is not None) and (
                fault.abort_percent >= 100 or random.random() * 100 < fault.abort_percent
            ):
                flags.append("FI")
                return self._abort(fault.abort_status, fault.abort_grpc), cluster.labels
        if cluster.flag:
            flags.append(cluster.flag)
            body = b"no healthy upstream" if cluster.flag == "UH" else b""
            return local_reply(503, body), cluster.labels
        upstream = self._upstream_headers(request, route, destination, authority)
        path = rewrite_path(
            route, entry.raw_routes[index], entry.namespace, matched, request.raw_path
        )
        if path != request.raw_path:
            upstream["x-envoy-original-path"] = request.raw_path
        body = await request.read()
        for mirror, percent in route.mirrors:
            if percent >= 100 or random.random() * 100 < percent:
                self._upstream.mirror(mirror, request.method, path, upstream, body, group)
        reply, labels = await self._upstream.forward(
            route, cluster, request.method, path, upstream, body, group, flags
        )
        apply_headers(reply.headers, destination.response_headers)
        apply_headers(reply.headers, route.response_headers)
        return reply, labels

    @staticmethod
    def _pick(route: Route) -> Destination | None:
        destinations = route.destinations
        if len(destinations) == 1:
            return destinations[0]
        if not destinations:
            return None
        point = random.random() * route.cumulative[-1]
        for destination, edge in zip(destinations, route.cumulative, strict=True):
            if point < edge:
                return destination
        return destinations[-1]

    @staticmethod
    def _abort(status: int | None, grpc: int | None) -> Reply:
        if grpc is not None:
            # A trailers-only gRPC answer: HTTP 200, the status in headers.
            reply = local_reply(200, b"")
            reply.headers["Content-Type"] = "application/grpc"
            reply.headers["grpc-status"] = str(grpc)
            reply.headers["grpc-message"] = "fault filter abort"
            return reply
        return local_reply(status or 500, b"fault filter abort")

    @staticmethod
    def _upstream_headers(
        request: web.BaseRequest, route: Route, destination: Destination, authority: str
    ) -> CIMultiDict[str]:
        upstream = request.headers.copy()
        for name in HOP_BY_HOP:
            upstream.popall(name, None)
        if "x-request-id" not in upstream:
            upstream["x-request-id"] = str(uuid.uuid4())
        upstream["x-forwarded-proto"] = "http"
        upstream["Host"] = route.rewrite_authority or authority
        apply_headers(upstream, destination.request_headers)
        apply_headers(upstream, route.request_headers)
        return upstream

    def close(self) -> None:
        """Drop in-flight mirrors (they never matter to a caller)."""
        self._upstream.close()
