"""Talking to upstream instances: one request with Envoy's retry policy, timeouts and
response flags, fire-and-forget mirrors, and the destination-side metrics.

Upstream responses are read whole before being answered, so that a retry can still
replace them. Each answered attempt is reported with ``reporter="destination"``, as the
destination's sidecar would.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from dataclasses import dataclass

from multidict import CIMultiDict

from chaosmesh_istio.localmesh.dataplane.http1 import ConnectFailed, Http1Pool, UpstreamReset
from chaosmesh_istio.localmesh.dataplane.routes import Cluster, Endpoint, RetryPolicy, Route
from chaosmesh_istio.localmesh.dataplane.telemetry import Telemetry

__all__ = ["HOP_BY_HOP", "Reply", "Upstream", "local_reply"]

logger = logging.getLogger("chaostoolkit").getChild("localmesh.dataplane")

# Not forwarded in either direction (Content-Length is recomputed from the body).
HOP_BY_HOP = (
    "Connection",
    "Keep-Alive",
    "Proxy-Connection",
    "Transfer-Encoding",
    "Upgrade",
    "TE",
    "Trailer",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Content-Length",
)
_RETRY_ON_CONNECT = frozenset({"5xx", "gateway-error", "reset", "connect-failure"})
_RETRY_ON_RESET = frozenset({"5xx", "gateway-error", "reset"})
_GRPC_RETRY_ON = {
    "1": "cancelled",
    "4": "deadline-exceeded",
    "8": "resource-exhausted",
    "14": "unavailable",
}
_BACKOFF_BASE = 0.025
_BACKOFF_MAX = 0.25
_MIRROR_TIMEOUT = 30.0
_RESET_BODY = b"upstream connect error or disconnect/reset before headers. reset reason: "


@dataclass(slots=True)
class Reply:
    """A whole response, from an upstream or made locally (faults, errors, redirects)."""

    status: int
    headers: CIMultiDict[str]
    body: bytes


class _Failure(enum.Enum):
    """How an attempt ended without a response."""

    CONNECT = "connect"
    RESET = "reset"
    PER_TRY_TIMEOUT = "timeout"


_Outcome = Reply | _Failure


def _retriable(policy: RetryPolicy, outcome: _Outcome) -> bool:
    """Whether Envoy's ``retry_on`` covers this attempt's outcome."""
    on = policy.retry_on
    if outcome is _Failure.CONNECT:
        return not on.isdisjoint(_RETRY_ON_CONNECT)
    if not isinstance(outcome, Reply):
        return not on.isdisjoint(_RETRY_ON_RESET)
    status = outcome.status
    if status >= 500 and "5xx" in on:
        return True
    if status in (502, 503, 504) and "gateway-error" in on:
        return True
    if status == 409 and "retriable-4xx" in on:
        return True
    if status in policy.status_codes and "retriable-status-codes" in on:
        return True
    grpc = outcome.headers.get("grpc-status")
    return grpc is not None and _GRPC_RETRY_ON.get(grpc, "") in on


def local_reply(status: int, body: bytes, content_type: str = "text/plain") -> Reply:
    """A response made by the proxy itself."""
    headers: CIMultiDict[str] = CIMultiDict()
    if body:
        headers["Content-Type"] = content_type
    return Reply(status, headers, body)


def _failure(outcome: _Failure) -> tuple[Reply, str]:
    """Envoy's local reply and response flag for an attempt without a response."""
    if outcome is _Failure.CONNECT:
        return local_reply(503, _RESET_BODY + b"connection failure"), "UF"
    if outcome is _Failure.RESET:
        return local_reply(503, _RESET_BODY + b"connection termination"), "UC"
    return local_reply(504, b"upstream request timeout"), "UT"


def _shadow_host(authority: str) -> str:
    """Envoy's shadow authority: "-shadow" appended to the host, before any port."""
    host, sep, port = authority.rpartition(":")
    if sep and port.isdigit() and not authority.endswith("]"):
        return f"{host}-shadow:{port}"
    return f"{authority}-shadow"


class Upstream:
    """Sends requests to the endpoints of clusters for one listener (one source workload)."""

    def __init__(self, pool: Http1Pool, telemetry: Telemetry, source: tuple[str, ...]) -> None:
        self._pool = pool
        self._telemetry = telemetry
        self._source = source
        self._background: set[asyncio.Task[None]] = set()

    async def forward(
        self,
        route: Route,
        cluster: Cluster,
        method: str,
        path: str,
        headers: CIMultiDict[str],
        body: bytes,
        group: str,
        flags: list[str],
    ) -> tuple[Reply, tuple[str, ...]]:
        """Send with the route's retry policy inside its overall timeout."""
        policy = route.retry
        tries = 1 + (policy.attempts if policy is not None else 0)
        per_try = policy.per_try_timeout if policy is not None else None
        outcome: _Outcome = _Failure.CONNECT
        labels = cluster.labels
        exhausted = False
        try:
            async with asyncio.timeout(route.timeout):
                backoff = _BACKOFF_BASE
                for attempt in range(1, tries + 1):
                    endpoint = cluster.pick()
                    labels = endpoint.labels
                    headers["x-envoy-attempt-count"] = str(attempt)
                    outcome = await self._attempt(
                        endpoint, method, path, headers, body, per_try, group
                    )
                    if policy is None or not _retriable(policy, outcome):
                        break
                    if attempt == tries:
                        exhausted = True
                        break
                    # Envoy's jittered exponential backoff: uniform in [0, interval).
                    await asyncio.sleep(random.random() * backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX)
        except TimeoutError:
            flags.append("UT")
            return local_reply(504, b"upstream request timeout"), labels
        if isinstance(outcome, Reply):
            reply = outcome
        else:
            reply, flag = _failure(outcome)
            flags.append(flag)
            if outcome is _Failure.CONNECT:
                labels = cluster.labels
        if exhausted:
            flags.append("URX")
        return reply, labels

    async def _attempt(
        self,
        endpoint: Endpoint,
        method: str,
        path: str,
        headers: CIMultiDict[str],
        body: bytes,
        per_try: float | None,
        group: str,
    ) -> _Outcome:
        """One try; an answer is also reported as the destination's sidecar would."""
        start = time.perf_counter()
        try:
            async with asyncio.timeout(per_try):
                status, answer, payload = await self._pool.request(
                    endpoint.host, endpoint.port, method, path, headers, body
                )
        except ConnectFailed:
            return _Failure.CONNECT
        except UpstreamReset:
            return _Failure.RESET
        except TimeoutError:
            # The destination saw the request and then the caller going away.
            self._report_destination(endpoint, 0, "DC", group, start)
            return _Failure.PER_TRY_TIMEOUT
        except asyncio.CancelledError:
            # Our own caller went away (or we are shutting down): so did this attempt.
            self._report_destination(endpoint, 0, "DC", group, start)
            raise
        reply = Reply(status, _strip_hop_by_hop(answer), payload)
        elapsed = self._report_destination(endpoint, status, "-", group, start)
        reply.headers["x-envoy-upstream-service-time"] = str(int(elapsed))
        return reply

    def _report_destination(
        self, endpoint: Endpoint, status: int, flags: str, group: str, start: float
    ) -> float:
        elapsed = (time.perf_counter() - start) * 1000.0
        self._telemetry.record(
            "destination", self._source, endpoint.labels, status, flags, group, elapsed
        )
        return elapsed

    def mirror(
        self,
        cluster: Cluster,
        method: str,
        path: str,
        headers: CIMultiDict[str],
        body: bytes,
        group: str,
    ) -> None:
        """Send a fire-and-forget copy, with "-shadow" appended to the host as Envoy does."""
        shadow = headers.copy()
        shadow["Host"] = _shadow_host(shadow.get("Host", ""))
        task = asyncio.get_running_loop().create_task(
            self._shadow(cluster.pick(), method, path, shadow, body, group)
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _shadow(
        self,
        endpoint: Endpoint,
        method: str,
        path: str,
        headers: CIMultiDict[str],
        body: bytes,
        group: str,
    ) -> None:
        start = time.perf_counter()
        try:
            async with asyncio.timeout(_MIRROR_TIMEOUT):
                status, _, _ = await self._pool.request(
                    endpoint.host, endpoint.port, method, path, headers, body
                )
            self._report_destination(endpoint, status, "-", group, start)
        except (OSError, TimeoutError) as exc:
            logger.debug("mirror to %s failed: %r", endpoint.address, exc)

    def close(self) -> None:
        """Drop in-flight mirrors (they never matter to a caller)."""
        for task in list(self._background):
            task.cancel()


def _strip_hop_by_hop(headers: CIMultiDict[str]) -> CIMultiDict[str]:
    for name in HOP_BY_HOP:
        headers.popall(name, None)
    return headers
