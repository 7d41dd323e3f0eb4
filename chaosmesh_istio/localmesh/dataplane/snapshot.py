"""An immutable routing snapshot: the VirtualServices and DestinationRules of one moment,
compiled once so that the request path only matches and picks.

Selection rules (Istio's, simplified where noted):

- A VirtualService applies to a listener when its ``gateways`` name the listener's gateway
  (no ``gateways`` means "mesh" only). Among those whose ``hosts`` cover the request's Host,
  an exact host beats a wildcard, a longer wildcard beats a shorter one, and then the oldest
  VirtualService wins (Istio would merge several gateway VirtualServices; we do not).
- A host of a known service with no VirtualService gets Istio's default route on "mesh"
  listeners: all instances, round-robin, with the default retry policy. Gateways only route
  hosts a VirtualService binds to them.
- Subsets come from the oldest DestinationRule whose (non-wildcard) host names the service;
  traffic policies are not applied. Delegate routes are not followed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaosmesh_istio.localmesh.dataplane.config import DataPlaneConfig, ListenerConfig, Service
from chaosmesh_istio.localmesh.dataplane.routes import Route, RouteCompiler
from chaosmesh_istio.localmesh.routing import gateway_matches, host_matches

__all__ = ["HostRoutes", "Snapshot", "build_snapshot"]

logger = logging.getLogger("chaostoolkit").getChild("localmesh.dataplane")

Object = Mapping[str, Any]

_MEMO_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class HostRoutes:
    """What a listener does with one Host: a VirtualService's routes or the default route."""

    virtual_service: str | None
    namespace: str
    raw_routes: tuple[Object, ...]
    routes: tuple[Route, ...]
    trivial: bool
    service: Service | None


def _age(obj: Object) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return (
        str(meta.get("creationTimestamp", "")),
        str(meta.get("namespace", "")),
        str(meta.get("name", "")),
    )


def _host_rank(vs_host: str) -> tuple[int, int]:
    """Envoy's domain precedence: exact names, then longer wildcards, then "*"."""
    return (0, 0) if "*" not in vs_host else (1, -len(vs_host))


class Snapshot:
    """The routing state of one configuration version; only memo caches ever change."""

    def __init__(
        self,
        config: DataPlaneConfig,
        virtual_services: Sequence[Object],
        destination_rules: Sequence[Object],
        version: int,
    ) -> None:
        self.config = config
        self.version = version
        self.applied_at = time.time()
        self.virtual_services = tuple(sorted(virtual_services, key=_age))
        self.destination_rules = tuple(sorted(destination_rules, key=_age))
        self._builder = RouteCompiler(config, self._subsets())
        self._compiled: dict[int, HostRoutes | None] = {}
        self._memo: dict[tuple[str, str], HostRoutes | None] = {}
        self._defaults: dict[str, HostRoutes] = {}
        for index, vs in enumerate(self.virtual_services):
            self._compiled[index] = self._compile(vs)

    def _subsets(self) -> dict[str, dict[str, Any]]:
        subsets: dict[str, dict[str, Any]] = {}
        for dr in self.destination_rules:
            spec, meta = dr.get("spec") or {}, dr.get("metadata") or {}
            host = str(spec.get("host", ""))
            service = None if "*" in host else self.config.resolve(host, meta.get("namespace", ""))
            if service is None or service.fqdn in subsets:
                continue
            subsets[service.fqdn] = {
                str(s.get("name")): dict(s.get("labels") or {}) for s in spec.get("subsets") or ()
            }
        return subsets

    def _compile(self, vs: Object) -> HostRoutes | None:
        meta, spec = vs.get("metadata") or {}, vs.get("spec") or {}
        namespace = str(meta.get("namespace", ""))
        raw = tuple(spec.get("http") or ())
        try:
            routes = tuple(self._builder.route(r, namespace) for r in raw)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("ignoring VirtualService %s/%s: %s", namespace, meta.get("name"), exc)
            return None
        return HostRoutes(
            virtual_service=f"{namespace}/{meta.get('name')}",
            namespace=namespace,
            raw_routes=raw,
            routes=routes,
            trivial=len(raw) == 1 and not raw[0].get("match"),
            service=None,
        )

    def lookup(self, listener: ListenerConfig, host: str) -> HostRoutes | None:
        """The routes a listener applies to a Host header value; None means 404 NR."""
        key = (listener.name, host)
        try:
            return self._memo[key]
        except KeyError:
            pass
        found = self._lookup(listener, host.lower())
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[key] = found
        return found

    def _lookup(self, listener: ListenerConfig, host: str) -> HostRoutes | None:
        mesh = listener.gateway == "mesh"
        client = listener.namespace if mesh else None
        domain = self.config.domain
        best: tuple[tuple[int, int], int] | None = None
        for index, vs in enumerate(self.virtual_services):
            compiled = self._compiled[index]
            if compiled is None:
                continue
            spec = vs.get("spec") or {}
            if not gateway_matches(
                spec.get("gateways") or ["mesh"], compiled.namespace, listener.gateway
            ):
                continue
            for vs_host in spec.get("hosts") or ():
                if host_matches(vs_host, compiled.namespace, host, client, domain):
                    rank = (_host_rank(str(vs_host)), index)
                    if best is None or rank < best:
                        best = rank
        service = self.config.resolve(host, listener.namespace) if mesh else None
        if best is not None:
            chosen = self._compiled[best[1]]
            assert chosen is not None
            if service is None:
                return chosen
            return HostRoutes(
                chosen.virtual_service,
                chosen.namespace,
                chosen.raw_routes,
                chosen.routes,
                chosen.trivial,
                service,
            )
        if service is None:
            return None
        default = self._defaults.get(service.fqdn)
        if default is None:
            default = self._defaults[service.fqdn] = HostRoutes(
                None,
                service.namespace,
                ({},),
                (self._builder.default_route(service),),
                True,
                service,
            )
        return default

    def dump(self) -> dict[str, Any]:
        """The applied configuration, by kind and "namespace/name"."""

        def by_name(objects: Iterable[Object]) -> dict[str, Any]:
            return {"/".join(_age(o)[1:]): o for o in objects}

        return {
            "version": str(self.version),
            "virtual_services": by_name(self.virtual_services),
            "destination_rules": by_name(self.destination_rules),
        }


def build_snapshot(
    config: DataPlaneConfig,
    virtual_services: Sequence[Object],
    destination_rules: Sequence[Object],
    version: int,
) -> Snapshot:
    """Compile a snapshot; invalid VirtualServices are logged and skipped."""
    return Snapshot(config, virtual_services, destination_rules, version)
