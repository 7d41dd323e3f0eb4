"""Remove leftover faults found by their markers: expired runs, one run, or every run.

This is the backstop of the rollback guarantees (a runner killed by SIGKILL, OOM or a lost
node): ``chaosmesh-istio cleanup --expired`` in a CronJob. It finds chaos routes by their
``chaos-<run-id>-<n>`` names and runs by the ``chaosmesh-istio.io/runs`` annotation, and
removes them with :func:`chaosmesh_istio.rollback.remove_run`, which keeps everybody
else's routes and edits and reads every VirtualService back.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from chaosmesh_istio import faults, rollback, settings
from chaosmesh_istio.errors import InvalidArgument, NotFound, RollbackNotVerified
from chaosmesh_istio.kube import VirtualServices, open_virtual_services
from chaosmesh_istio.settings import Configuration, Secrets, check_namespace

__all__ = ["Leftover", "cleanup", "is_expired", "leftovers"]

logger = logging.getLogger("chaostoolkit").getChild("chaosmesh_istio.cleanup")

#: One run found in one VirtualService: namespace, name, run id, routes, expires, owner.
Leftover = dict[str, Any]


def is_expired(expires: object, now: dt.datetime) -> bool:
    """Whether a run's recorded expiry is past; a missing or unreadable one counts as past."""
    if not isinstance(expires, str):
        return True
    try:
        when = dt.datetime.fromisoformat(expires)
    except ValueError:
        return True
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when <= now


def leftovers(vs: Mapping[str, Any]) -> list[Leftover]:
    """Every run present in a VirtualService: by its chaos routes or its annotation entry."""
    meta = vs.get("metadata") or {}
    annotated = faults.runs(vs)
    routes: dict[str, list[str]] = {run: [] for run in annotated}
    for route in (vs.get("spec") or {}).get("http") or []:
        run = faults.chaos_route_run(route)
        if run is not None:
            routes.setdefault(run, []).append(str(route["name"]))
    return [
        {
            "namespace": meta.get("namespace", "default"),
            "name": meta.get("name"),
            "virtual_service": faults.vs_ref(vs),
            "run_id": run,
            "routes": names,
            "expires": annotated.get(run, {}).get("expires"),
            "owner": annotated.get(run, {}).get("owner"),
            "annotated": run in annotated,
        }
        for run, names in sorted(routes.items())
    ]


def _check_mode(expired: object, run: object, all_runs: object) -> str | None:
    for name, flag in (("expired", expired), ("all_runs", all_runs)):
        if not isinstance(flag, bool):
            raise InvalidArgument(f"{name} must be true or false, got {flag!r}")
    chosen = [m for m, on in (("expired", expired), ("run_id", run), ("all_runs", all_runs)) if on]
    if len(chosen) != 1:
        raise InvalidArgument(
            f"cleanup needs exactly one of expired, run_id or all_runs, got {chosen or 'none'!r}"
        )
    if run is None:
        return None
    return settings.run_id({"chaosmesh_run_id": run})


def cleanup(
    expired: bool = False,
    run_id: str | None = None,
    all_runs: bool = False,
    namespace: str | None = "default",
    all_namespaces: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
    now: dt.datetime | None = None,
) -> list[Leftover]:
    """Remove the faults of expired runs, of ``run_id``, or of every run; return what went.

    Exactly one of ``expired``, ``run_id`` and ``all_runs``. A run counts as expired when
    its annotation entry's ``expires`` is past, or when its routes have no annotation entry
    at all. Looks in ``namespace``, or everywhere with ``all_namespaces``. Every touched
    VirtualService is read back; anything left raises :class:`RollbackNotVerified`.
    """
    wanted_run = _check_mode(expired, run_id, all_runs)
    if not isinstance(all_namespaces, bool):
        raise InvalidArgument(f"all_namespaces must be true or false, got {all_namespaces!r}")
    if all_namespaces and namespace not in (None, "default"):
        raise InvalidArgument(
            f"namespace {namespace!r} and all_namespaces were both given; pick one namespace "
            "or all of them"
        )
    ns = None if all_namespaces else check_namespace(namespace or "default", configuration)
    moment = now or dt.datetime.now(dt.UTC)
    client = open_virtual_services(configuration, secrets)
    doomed = [
        found
        for vs in client.select(ns)
        for found in leftovers(vs)
        if (expired and (not found["annotated"] or is_expired(found["expires"], moment)))
        or (wanted_run is not None and found["run_id"] == wanted_run)
        or all_runs
    ]
    removed: list[Leftover] = []
    for found in doomed:
        answer = rollback.remove_run(
            found["name"], found["namespace"], None, found["run_id"], configuration, secrets
        )
        routes = [r for entry in answer for r in entry["routes"]]
        result = {
            "virtual_service": found["virtual_service"],
            "run_id": found["run_id"],
            "routes": routes,
            "expires": found["expires"],
            "owner": found["owner"],
        }
        removed.append(result)
        logger.info(
            "removed %d routes of run %s from %s",
            len(routes),
            found["run_id"],
            found["virtual_service"],
        )
    _verify(client, removed)
    return removed


def _verify(client: VirtualServices, removed: list[Leftover]) -> None:
    """Read every touched VirtualService back: none of the removed runs may be there."""
    for done in removed:
        namespace, _, name = done["virtual_service"].partition("/")
        try:
            current = client.get(name, namespace)
        except NotFound:
            continue  # deleted meanwhile, and its faults with it
        left = [f for f in leftovers(current) if f["run_id"] == done["run_id"]]
        if left:
            raise RollbackNotVerified(
                f"virtual service {done['virtual_service']} still has run "
                f"{done['run_id']!r} (routes {left[0]['routes']!r}) after cleanup; run the "
                "cleanup again or remove them with kubectl"
            )
