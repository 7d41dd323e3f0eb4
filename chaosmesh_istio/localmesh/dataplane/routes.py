"""Compiled routes: the actions of an Istio HTTPRoute, resolved against the service
registry and the DestinationRules' subsets once per configuration version.

A route with a ``fault`` has no timeout and no retries, as Istio generates it. A route
without ``retries`` gets Istio's default policy (2 retries on connect failures, refused
streams, gRPC unavailable/cancelled and 503); ``attempts: 0`` disables retries.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chaosmesh_istio.durations import parse_duration_ns
from chaosmesh_istio.localmesh.dataplane.config import DataPlaneConfig, Service
from chaosmesh_istio.localmesh.dataplane.telemetry import instance_key, service_key
from chaosmesh_istio.regex import compile_re2

__all__ = [
    "DEFAULT_RETRY",
    "Cluster",
    "Destination",
    "Endpoint",
    "Fault",
    "HeaderOps",
    "RetryPolicy",
    "Route",
    "RouteCompiler",
]

_GRPC_CODES = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Envoy's retry policy as Istio generates it; ``attempts`` counts retries only."""

    attempts: int
    per_try_timeout: float | None
    retry_on: frozenset[str]
    status_codes: frozenset[int]


# Istio's policy for routes without ``retries``.
DEFAULT_RETRY = RetryPolicy(
    attempts=2,
    per_try_timeout=None,
    retry_on=frozenset(
        {"connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes"}
    ),
    status_codes=frozenset({503}),
)


@dataclass(frozen=True, slots=True)
class HeaderOps:
    """Header edits of one level: removals first, then set (overwrite) and add (append)."""

    remove: tuple[str, ...]
    set: tuple[tuple[str, str], ...]
    add: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One upstream instance (``host:port``) with its precomputed metric labels."""

    address: str
    host: str
    port: int
    labels: tuple[str, ...]


class Cluster:
    """A service (or one subset of it) and its endpoints, picked round-robin.

    ``flag`` is the response flag of a cluster that cannot route: "NC" when the host or
    subset is unknown, "UH" when it selects no instance.
    """

    __slots__ = ("_next", "endpoints", "flag", "labels", "service")

    def __init__(self, service: Service | None, endpoints: tuple[Endpoint, ...], flag: str):
        self.service = service
        self.endpoints = endpoints
        self.flag = flag
        self.labels = service_key(service)
        self._next = 0

    def pick(self) -> Endpoint:
        """The next endpoint in round-robin order (the cluster must have some)."""
        index = self._next
        self._next = (index + 1) % len(self.endpoints)
        return self.endpoints[index]


@dataclass(frozen=True, slots=True)
class Destination:
    """A weighted destination of a route."""

    cluster: Cluster
    request_headers: HeaderOps | None
    response_headers: HeaderOps | None


@dataclass(frozen=True, slots=True)
class Fault:
    """Fault injection of a route; percentages are 0-100."""

    delay: float | None
    delay_percent: float
    abort_status: int | None
    abort_grpc: int | None
    abort_percent: float


@dataclass(frozen=True, slots=True)
class Route:
    """One compiled HTTP route."""

    name: str
    destinations: tuple[Destination, ...]
    cumulative: tuple[float, ...]
    request_headers: HeaderOps | None
    response_headers: HeaderOps | None
    rewrite_uri: str | None
    rewrite_regex: tuple[Any, str] | None
    rewrite_authority: str | None
    redirect: Mapping[str, Any] | None
    direct: tuple[int, bytes | None] | None
    mirrors: tuple[tuple[Cluster, float], ...]
    timeout: float | None
    retry: RetryPolicy | None
    fault: Fault | None


def _seconds(value: Any) -> float | None:
    if not value:
        return None
    seconds = parse_duration_ns(str(value)) / 1e9
    return seconds or None


def _percent(spec: Mapping[str, Any]) -> float:
    """Istio's ``percentage.value``, else the legacy integer ``percent``; missing is 100."""
    percentage = spec.get("percentage")
    if isinstance(percentage, Mapping):
        return float(percentage.get("value", 0.0))
    if spec.get("percent") is not None:
        return float(spec["percent"])
    return 100.0


def _headers(spec: Mapping[str, Any] | None) -> HeaderOps | None:
    if not spec:
        return None
    return HeaderOps(
        remove=tuple(str(name).lower() for name in spec.get("remove") or ()),
        set=tuple((str(k), str(v)) for k, v in (spec.get("set") or {}).items()),
        add=tuple((str(k), str(v)) for k, v in (spec.get("add") or {}).items()),
    )


def _retry(spec: Mapping[str, Any] | None) -> RetryPolicy | None:
    """Istio's ``retry.ConvertPolicy``: start from the default, override what is set."""
    if spec is None:
        return DEFAULT_RETRY
    attempts = int(spec.get("attempts") or 0)
    if attempts <= 0:
        return None
    retry_on, codes = DEFAULT_RETRY.retry_on, DEFAULT_RETRY.status_codes
    if spec.get("retryOn"):
        items = [item.strip() for item in str(spec["retryOn"]).split(",") if item.strip()]
        codes = frozenset(int(item) for item in items if item.isdigit())
        retry_on = frozenset(item for item in items if not item.isdigit())
        if codes:
            retry_on |= {"retriable-status-codes"}
    return RetryPolicy(attempts, _seconds(spec.get("perTryTimeout")), retry_on, codes)


def _fault(spec: Mapping[str, Any] | None) -> Fault | None:
    if not spec:
        return None
    delay = spec.get("delay") or {}
    abort = spec.get("abort") or {}
    grpc = abort.get("grpcStatus")
    return Fault(
        delay=_seconds(delay.get("fixedDelay")) if delay else None,
        delay_percent=_percent(delay) if delay else 0.0,
        abort_status=int(abort["httpStatus"]) if abort.get("httpStatus") else None,
        abort_grpc=_GRPC_CODES.get(str(grpc).upper(), 2) if grpc else None,
        abort_percent=_percent(abort) if abort else 0.0,
    )


class RouteCompiler:
    """Compiles routes against one configuration, sharing clusters between routes."""

    def __init__(self, config: DataPlaneConfig, subsets: Mapping[str, Mapping[str, Any]]):
        self.config = config
        self.subsets = subsets
        self.clusters: dict[tuple[str, str, str | None], Cluster] = {}

    def cluster(self, host: str, namespace: str, subset: str | None) -> Cluster:
        key = (host, namespace, subset)
        found = self.clusters.get(key)
        if found is None:
            found = self.clusters[key] = self._cluster(host, namespace, subset)
        return found

    def _cluster(self, host: str, namespace: str, subset: str | None) -> Cluster:
        service = self.config.resolve(host, namespace)
        if service is None:
            return Cluster(None, (), "NC")
        instances = service.instances
        if subset is not None:
            labels = self.subsets.get(service.fqdn, {}).get(subset)
            if labels is None:
                return Cluster(service, (), "NC")
            instances = service.select(labels)
        endpoints = tuple(_endpoint(i.address, instance_key(service, i)) for i in instances)
        return Cluster(service, endpoints, "" if endpoints else "UH")

    def destination(self, spec: Mapping[str, Any], namespace: str) -> Destination:
        target = spec.get("destination") or {}
        return Destination(
            cluster=self.cluster(str(target.get("host", "")), namespace, target.get("subset")),
            request_headers=_headers((spec.get("headers") or {}).get("request")),
            response_headers=_headers((spec.get("headers") or {}).get("response")),
        )

    def route(self, spec: Mapping[str, Any], namespace: str) -> Route:
        items = list(spec.get("route") or ())
        destinations = tuple(self.destination(item, namespace) for item in items)
        weights = [float(item.get("weight") or 0) for item in items]
        if not any(weights):
            weights = [1.0] * len(items)
        cumulative, total = [], 0.0
        for weight in weights:
            total += weight
            cumulative.append(total)
        mirrors = [
            (
                self.cluster(
                    str(m["destination"].get("host", "")), namespace, m["destination"].get("subset")
                ),
                _percent(m),
            )
            for m in spec.get("mirrors") or ()
        ]
        if spec.get("mirror"):
            legacy = spec.get("mirrorPercentage") or spec.get("mirrorPercent")
            percent = (
                100.0
                if legacy is None
                else _percent({"percentage": legacy})
                if isinstance(legacy, Mapping)
                else float(legacy)
            )
            mirror = spec["mirror"]
            mirrors.insert(
                0,
                (
                    self.cluster(str(mirror.get("host", "")), namespace, mirror.get("subset")),
                    percent,
                ),
            )
        rewrite = spec.get("rewrite") or {}
        regex = rewrite.get("uriRegexRewrite")
        direct = spec.get("directResponse")
        body = (direct or {}).get("body") or {}
        payload = (
            body["string"].encode()
            if "string" in body
            else base64.b64decode(body["bytes"])
            if "bytes" in body
            else None
        )
        fault = _fault(spec.get("fault"))
        headers = spec.get("headers") or {}
        return Route(
            name=str(spec.get("name", "")),
            destinations=destinations,
            cumulative=tuple(cumulative),
            request_headers=_headers(headers.get("request")),
            response_headers=_headers(headers.get("response")),
            rewrite_uri=rewrite.get("uri"),
            rewrite_regex=(compile_re2(regex["match"]), regex.get("rewrite", ""))
            if regex
            else None,
            rewrite_authority=rewrite.get("authority"),
            redirect=spec.get("redirect"),
            direct=(int(direct.get("status", 200)), payload) if direct else None,
            mirrors=tuple((cluster, pct) for cluster, pct in mirrors if cluster.endpoints),
            timeout=None if fault else _seconds(spec.get("timeout")),
            retry=None if fault else _retry(spec.get("retries")),
            fault=fault,
        )

    def default_route(self, service: Service) -> Route:
        cluster = self.cluster(service.fqdn, service.namespace, None)
        return Route(
            "default",
            (Destination(cluster, None, None),),
            (1.0,),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            (),
            None,
            DEFAULT_RETRY,
            None,
        )


def _endpoint(address: str, labels: tuple[str, ...]) -> Endpoint:
    host, _, port = address.rpartition(":")  # checked as host:port when the config loaded
    return Endpoint(address, host.strip("[]"), int(port), labels)
