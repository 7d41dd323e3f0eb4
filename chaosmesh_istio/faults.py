"""The fault model: header-scoped Istio faults added as routes (pure, no I/O).

A fault never edits a user's route. For each targeted HTTP route a copy is inserted
directly before it; the copy's match is the original match AND the scope, it keeps the
original's destinations and behaviour, and it carries the fault. Copies are named
``chaos-<run-id>-<n>`` and the VirtualService gets an annotation recording the run's owner,
expiry and routes. Removing a run deletes exactly its copies and its annotation entry, so
anything else changed meanwhile is kept.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaosmesh_istio.errors import TargetError
from chaosmesh_istio.scoping import Scope, combine_entry
from chaosmesh_istio.spec import Fault, Selection

__all__ = [
    "RUNS_ANNOTATION",
    "FaultedRoute",
    "Injection",
    "Marker",
    "Removal",
    "active_runs",
    "chaos_route_run",
    "inject",
    "remove",
    "route_label",
    "runs",
    "vs_ref",
]

RUNS_ANNOTATION = "chaosmesh-istio.io/runs"
_ROUTE_NAME = re.compile(r"chaos-(?P<run>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)-(?P<n>\d+)")


@dataclass(frozen=True)
class Marker:
    """Who injected, and until when the fault may live."""

    run_id: str
    owner: str
    created: str
    expires: str


@dataclass(frozen=True)
class FaultedRoute:
    """One copy inserted before a user's route."""

    name: str
    original: str
    destinations: tuple[str, ...]
    fault: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "route": self.name,
            "original": self.original,
            "destinations": list(self.destinations),
            "fault": copy.deepcopy(dict(self.fault)),
        }


@dataclass(frozen=True)
class Injection:
    """The VirtualService with the fault added, and what was faulted."""

    virtual_service: dict[str, Any]
    faulted: tuple[FaultedRoute, ...]
    skipped: tuple[str, ...]


@dataclass(frozen=True)
class Removal:
    """The VirtualService without the removed runs' routes, and what was removed."""

    virtual_service: dict[str, Any]
    removed: tuple[str, ...]
    runs: tuple[str, ...]


def vs_ref(vs: Mapping[str, Any]) -> str:
    """``namespace/name`` of a VirtualService, for messages."""
    meta = vs.get("metadata") or {}
    return f"{meta.get('namespace', 'default')}/{meta.get('name', '?')}"


def route_label(route: Mapping[str, Any], index: int) -> str:
    """A route's name, or its position when it has none."""
    name = route.get("name")
    return str(name) if name else f"#{index}"


def chaos_route_run(route: Mapping[str, Any]) -> str | None:
    """The run id of a chaos copy, or None for any other route."""
    found = _ROUTE_NAME.fullmatch(str(route.get("name") or ""))
    return found.group("run") if found and "fault" in route else None


def runs(vs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The run annotation: run id -> {owner, created, expires, routes}; {} when unreadable."""
    raw = ((vs.get("metadata") or {}).get("annotations") or {}).get(RUNS_ANNOTATION)
    if not raw:
        return {}
    try:
        found = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(found, dict):
        return {}
    return {run: entry if isinstance(entry, dict) else {} for run, entry in found.items()}


def _encode(recorded: Mapping[str, Any]) -> str:
    return json.dumps(recorded, sort_keys=True, separators=(",", ":"))


def active_runs(vs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The chaos routes present in a VirtualService, with their run's marker."""
    recorded = runs(vs)
    found = []
    for route in vs.get("spec", {}).get("http") or []:
        run = chaos_route_run(route)
        if run is None:
            continue
        info = recorded.get(run) or {}
        found.append(
            {
                "virtual_service": vs_ref(vs),
                "run_id": run,
                "route": route["name"],
                "fault": copy.deepcopy(route["fault"]),
                "owner": info.get("owner"),
                "expires": info.get("expires"),
            }
        )
    return found


def _host_matches(route_host: str, wanted: str, namespace: str) -> bool:
    def fqdn(host: str) -> str:
        parts = host.split(".")
        if len(parts) == 1:
            return f"{host}.{namespace}.svc.cluster.local"
        if len(parts) == 2:
            return f"{host}.svc.cluster.local"
        if len(parts) == 3 and parts[2] == "svc":
            return f"{host}.cluster.local"
        return host

    return fqdn(route_host) == fqdn(wanted)


def _selected(
    routes: Sequence[Mapping[str, Any]], selection: Selection, vs: Mapping[str, Any]
) -> tuple[list[int], list[str]]:
    """Indexes of the user routes to fault, and labels of the ones skipped."""
    namespace = (vs.get("metadata") or {}).get("namespace", "default")
    user = [i for i, r in enumerate(routes) if chaos_route_run(r) is None]
    names = {str(routes[i].get("name")) for i in user if routes[i].get("name")}
    unknown = [n for n in selection.routes if n not in names]
    if unknown:
        raise TargetError(
            f"virtual service {vs_ref(vs)} has no HTTP route named {unknown[0]!r}; "
            f"its named routes are {sorted(names)!r}"
        )
    chosen, skipped = [], []
    for i in user:
        route = routes[i]
        if selection.routes and route.get("name") not in selection.routes:
            continue
        destinations = [d.get("destination") or {} for d in route.get("route") or []]
        if selection.destination_host is not None and not any(
            _host_matches(str(d.get("host", "")), selection.destination_host, namespace)
            and selection.destination_subset in (None, d.get("subset"))
            for d in destinations
        ):
            continue
        if "delegate" in route:
            target = route["delegate"]
            raise TargetError(
                f"route {route_label(route, i)!r} of virtual service {vs_ref(vs)} delegates to "
                f"{target.get('namespace', namespace)}/{target.get('name')}; inject into that "
                "delegate virtual service instead"
            )
        if not destinations:
            if selection.routes:
                raise TargetError(
                    f"route {route_label(route, i)!r} of virtual service {vs_ref(vs)} is a "
                    "redirect or direct response with no destination to fault; select a route "
                    "that forwards to a service"
                )
            skipped.append(route_label(route, i))
            continue
        chosen.append(i)
    if not chosen:
        raise TargetError(
            f"the route selection {selection.describe()} matches no HTTP route of virtual "
            f"service {vs_ref(vs)}; its routes are "
            f"{[route_label(routes[i], i) for i in user]!r}"
        )
    return chosen, skipped


def _next_index(routes: Sequence[Mapping[str, Any]], run_id: str) -> int:
    used = [
        int(m.group("n"))
        for r in routes
        if (m := _ROUTE_NAME.fullmatch(str(r.get("name") or ""))) and m.group("run") == run_id
    ]
    return max(used, default=-1) + 1


def _already_faulted_by(routes: Sequence[Mapping[str, Any]], index: int, run_id: str) -> bool:
    """Whether the chaos copies directly before a route include one of this run."""
    i = index - 1
    while i >= 0 and (run := chaos_route_run(routes[i])) is not None:
        if run == run_id:
            return True
        i -= 1
    return False


def inject(
    vs: Mapping[str, Any],
    fault: Fault,
    scope: Scope,
    selection: Selection,
    marker: Marker,
) -> Injection:
    """Return ``vs`` with a scoped copy carrying ``fault`` before each selected route."""
    spec = vs.get("spec") or {}
    routes = spec.get("http") or []
    if not routes:
        kinds = [k for k in ("tcp", "tls") if spec.get(k)]
        extra = f" (it only has {' and '.join(kinds)} routes)" if kinds else ""
        raise TargetError(
            f"virtual service {vs_ref(vs)} has no HTTP routes{extra}; faults can only be "
            "injected into HTTP routes"
        )
    chosen, skipped = _selected(routes, selection, vs)
    run_id = marker.run_id
    n = _next_index(routes, run_id)
    copies: dict[int, dict[str, Any]] = {}
    faulted = []
    for i in chosen:
        original = routes[i]
        label = route_label(original, i)
        if _already_faulted_by(routes, i, run_id):
            raise TargetError(
                f"route {label!r} of virtual service {vs_ref(vs)} already carries a fault of run "
                f"{run_id!r}; remove it first or select other routes"
            )
        matches = [
            combine_entry(entry, scope, where=f"route {label!r} of virtual service {vs_ref(vs)}")
            for entry in original.get("match") or [{}]
        ]
        name = f"chaos-{run_id}-{n}"
        n += 1
        scoped: dict[str, Any] = {"name": name}
        if scope.condition() is not None or original.get("match"):
            scoped["match"] = matches
        scoped.update(
            {k: copy.deepcopy(v) for k, v in original.items() if k not in ("name", "match")}
        )
        scoped["fault"] = fault.to_istio()
        copies[i] = scoped
        faulted.append(
            FaultedRoute(
                name=name,
                original=label,
                destinations=tuple(
                    "/".join(
                        str(p)
                        for p in (d["destination"].get("host"), d["destination"].get("subset"))
                        if p
                    )
                    for d in original.get("route") or []
                ),
                fault=scoped["fault"],
            )
        )
    new = copy.deepcopy(dict(vs))
    new_routes: list[Any] = []
    for i, route in enumerate(new["spec"]["http"]):
        if i in copies:
            new_routes.append(copies[i])
        new_routes.append(route)
    new["spec"]["http"] = new_routes
    recorded = runs(new)
    entry = recorded.get(run_id) or {"owner": marker.owner, "created": marker.created, "routes": []}
    entry["expires"] = max(str(entry.get("expires") or ""), marker.expires)
    entry["routes"] = [*entry.get("routes", []), *(f.name for f in faulted)]
    recorded[run_id] = entry
    metadata = new.setdefault("metadata", {})
    metadata.setdefault("annotations", {})[RUNS_ANNOTATION] = _encode(recorded)
    return Injection(new, tuple(faulted), tuple(skipped))


def remove(
    vs: Mapping[str, Any], run_id: str | None = None, routes: Collection[str] | None = None
) -> Removal:
    """Return ``vs`` without the chaos routes of ``run_id`` (of every run when None).

    ``routes`` narrows the removal to those copies (undoing one injection of a run).
    """

    def doomed(route: Mapping[str, Any]) -> bool:
        run = chaos_route_run(route)
        return (
            run is not None
            and run_id in (None, run)
            and (routes is None or route.get("name") in routes)
        )

    new = copy.deepcopy(dict(vs))
    spec = new.get("spec") or {}
    current = spec.get("http") or []
    removed = tuple(r["name"] for r in current if doomed(r))
    runs_seen = {chaos_route_run(r) or "" for r in current if doomed(r)}
    if "http" in spec:
        spec["http"] = [r for r in current if not doomed(r)]
    recorded = runs(new)
    for run in [r for r in recorded if run_id in (None, r)]:
        left = [
            n for n in recorded[run].get("routes", []) if routes is not None and n not in routes
        ]
        if left:
            recorded[run]["routes"] = left
        else:
            runs_seen.add(run)
            del recorded[run]
    annotations = (new.get("metadata") or {}).get("annotations")
    if annotations is not None and RUNS_ANNOTATION in annotations:
        if recorded:
            annotations[RUNS_ANNOTATION] = _encode(recorded)
        else:
            del annotations[RUNS_ANNOTATION]
            if not annotations:
                del new["metadata"]["annotations"]
    return Removal(new, removed, tuple(sorted(runs_seen)))
