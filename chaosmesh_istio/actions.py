"""Chaos Toolkit actions: inject header-scoped faults into VirtualServices, remove them, and
start and stop the load (exported from ``load`` so that every action is found here)."""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import logging
import os
from typing import Any

import yaml

from chaosmesh_istio import faults, ledger, liveness, rollback, sentinel, settings
from chaosmesh_istio.errors import InvalidArgument, MeshError
from chaosmesh_istio.kube import Update, VirtualServices, check_target, open_virtual_services
from chaosmesh_istio.load import start_load, stop_load
from chaosmesh_istio.scoping import Scope, make_scope
from chaosmesh_istio.settings import Configuration, Secrets, expiry, owner
from chaosmesh_istio.spec import Fault, Selection, make_fault, make_selection

__all__ = [
    "inject_abort",
    "inject_delay",
    "inject_fault",
    "remove_faults",
    "start_load",
    "stop_load",
]

logger = logging.getLogger("chaostoolkit").getChild("chaosmesh_istio")


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{name} must be true or false, got {value!r}")
    return value


def _yaml(vs: dict[str, Any]) -> list[str]:
    shown = {
        "metadata": {"annotations": (vs.get("metadata") or {}).get("annotations") or {}},
        "spec": vs.get("spec"),
    }
    # libyaml's dumper: the pure-Python one takes ~10 ms per object, which adds up at scale.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text = yaml.dump(shown, Dumper=dumper, sort_keys=False, width=100)
    return str(text).splitlines(keepends=True)


def virtual_service_diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    """A unified diff of a VirtualService's spec and annotations, as YAML."""
    ref = faults.vs_ref(before)
    return "".join(
        difflib.unified_diff(_yaml(before), _yaml(after), f"{ref} (before)", f"{ref} (after)")
    )


def _sentinel_settings(configuration: Configuration) -> float | None:
    """The sentinel's grace in seconds, or None when the sentinel is turned off.

    ``chaosmesh_sentinel`` (default true; the environment variable CHAOSMESH_SENTINEL=0
    turns it off when the configuration does not say) and ``chaosmesh_sentinel_grace``
    (seconds the runner may be gone before the sentinel removes the faults, default 10).
    """
    enabled = settings.setting(configuration, "chaosmesh_sentinel")
    if enabled is None:
        enabled = os.environ.get("CHAOSMESH_SENTINEL", "1").lower() not in ("0", "false", "no")
    if not isinstance(enabled, bool):
        raise InvalidArgument(f"chaosmesh_sentinel must be true or false, got {enabled!r}")
    grace = settings.setting(configuration, "chaosmesh_sentinel_grace", 10.0)
    if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
        raise InvalidArgument(
            f"chaosmesh_sentinel_grace must be a number of seconds (0 or more), got {grace!r}"
        )
    return float(grace) if enabled else None


def _rollback_partial(vs: VirtualServices, written: list[tuple[str, str, list[str]]]) -> None:
    """Undo the VirtualServices already written when another one of the same call failed."""
    undo = rollback.removal_change
    outcomes = vs.update_many(
        [
            (name, namespace, functools.partial(undo, run=None, names=names), None)
            for name, namespace, names in written
        ]
    )
    for (name, namespace, _), outcome in zip(written, outcomes, strict=True):
        if isinstance(outcome, Exception):
            logger.error(
                "could not undo the fault in virtual service %s/%s: %s", namespace, name, outcome
            )


def inject_fault(
    virtual_service: str | None = None,
    namespace: str = "default",
    delay: str | None = None,
    delay_percentage: float = 100.0,
    abort_status: int | None = None,
    abort_grpc_status: str | None = None,
    abort_percentage: float = 100.0,
    scope: str = "header",
    header: str = "x-chaos-run",
    header_value: str | None = None,
    header_match: str = "exact",
    routes: list[str] | None = None,
    destination_host: str | None = None,
    destination_subset: str | None = None,
    label_selector: str | None = None,
    ttl: str = "15m",
    allow_unscoped: bool = False,
    dry_run: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Inject a header-scoped delay and/or abort into VirtualService HTTP routes.

    For every selected route (all HTTP routes, or those named in `routes`, or those
    forwarding to `destination_host`/`destination_subset`) a copy carrying the fault is
    inserted before it; only requests carrying the scope header hit the copy. By default
    the scope is the header `x-chaos-run: <run id>`; `scope="baggage"` matches the member
    `chaos-run=<value>` of the W3C `baggage` header instead. Target one VirtualService by
    `virtual_service` or several by `label_selector`. All arguments are checked before
    anything is written. `ttl` is how long the fault may live if the runner dies.
    Returns the run id, the `header` and `header_value` the experiment traffic must send,
    the faulted routes, the VirtualService diff and `live`: when the callers' proxies
    applied the fault (see `chaosmesh_proxy_admin_urls`); with `dry_run` nothing is written.
    """
    rid = settings.run_id(configuration)
    name, ns, selector = check_target(virtual_service, namespace, label_selector, configuration)
    fault = make_fault(delay, delay_percentage, abort_status, abort_grpc_status, abort_percentage)
    chosen_scope = make_scope(rid, scope, header, header_value, header_match, allow_unscoped)
    selection = make_selection(routes, destination_host, destination_subset)
    now = dt.datetime.now(dt.UTC)
    marker = faults.Marker(
        rid, owner(configuration), now.strftime("%Y-%m-%dT%H:%M:%SZ"), expiry(ttl, now)
    )
    dry = _flag("dry_run", dry_run)
    guard = _sentinel_settings(configuration)
    check = liveness.live_check(configuration)
    client = open_virtual_services(configuration, secrets)
    targets = client.targets(name, ns, selector)
    planned = [faults.inject(t, fault, chosen_scope, selection, marker) for t in targets]
    result = _describe(rid, chosen_scope, fault, selection, marker, dry)
    if dry:
        for target, plan in zip(targets, planned, strict=True):
            _add_target(result, target, plan, virtual_service_diff(target, plan.virtual_service))
        return result
    if guard is not None:
        # Started before the first write, so that a runner killed mid-injection (SIGKILL,
        # OOM) still leaves a watchdog behind that removes the fault.
        result["sentinel_pid"] = sentinel.spawn(
            rid,
            [(t["metadata"].get("namespace", ns), t["metadata"]["name"]) for t in targets],
            marker.expires,
            os.getpid(),
            guard,
            configuration,
            secrets,
        )
    updates: list[Update] = []
    for target, plan in zip(targets, planned, strict=True):
        meta = target["metadata"]
        names = [f.name for f in plan.faulted]

        def change(current: dict[str, Any], names: list[str] = names) -> dict[str, Any] | None:
            present = {r.get("name") for r in current.get("spec", {}).get("http") or []}
            if set(names) <= present:
                return None  # an earlier attempt whose answer was lost already wrote it
            return faults.inject(current, fault, chosen_scope, selection, marker).virtual_service

        # Recorded before any write: if an answer is lost or a signal lands mid-write, the
        # run's controls still know where to clean up.
        ledger.record(rid, meta.get("namespace", ns), meta["name"])
        updates.append((meta["name"], meta.get("namespace", ns), change, target))
    outcomes = client.update_many(updates)
    written: list[tuple[str, str, list[str]]] = []
    failures: list[Exception] = []
    for target, plan, outcome in zip(targets, planned, outcomes, strict=True):
        if isinstance(outcome, Exception):
            failures.append(outcome)
            continue
        meta = target["metadata"]
        written.append((meta["name"], meta.get("namespace", ns), [f.name for f in plan.faulted]))
        _add_target(result, target, plan, virtual_service_diff(*outcome))
        logger.info(
            "injected %s into %s routes %s for run %s",
            fault.to_istio(),
            faults.vs_ref(target),
            [f.name for f in plan.faulted],
            rid,
        )
    if failures:
        _rollback_partial(client, written)  # all or nothing: undo what did get written
        raise failures[0]
    result["written_at"] = dt.datetime.now(dt.UTC).isoformat()
    # The clock of the experiment starts when the proxies apply the fault, not at the write.
    try:
        result["live"] = liveness.wait_live(result["routes"], check)
    except MeshError:
        _rollback_partial(client, written)  # a fault that never took effect is not left behind
        raise
    return result


def _describe(
    rid: str, scope: Scope, fault: Fault, selection: Selection, marker: faults.Marker, dry: bool
) -> dict[str, Any]:
    return {
        "run_id": rid,
        "scope": scope.mode,
        "header": scope.header or None,
        "header_value": scope.send_value or None,
        "header_match": {scope.match: scope.value} if scope.mode != "none" else None,
        "fault": fault.to_istio(),
        "selection": selection.describe(),
        "expires": marker.expires,
        "owner": marker.owner,
        "dry_run": dry,
        "virtual_services": [],
        "routes": [],
        "faulted": [],
        "skipped": [],
        "diff": "",
    }


def _add_target(
    result: dict[str, Any], target: dict[str, Any], plan: faults.Injection, diff: str
) -> None:
    ref = faults.vs_ref(target)
    result["virtual_services"].append(ref)
    result["routes"].extend(f.name for f in plan.faulted)
    result["faulted"].extend({"virtual_service": ref, **f.to_dict()} for f in plan.faulted)
    result["skipped"].extend({"virtual_service": ref, "route": s} for s in plan.skipped)
    result["diff"] += diff


def inject_delay(
    virtual_service: str | None = None,
    namespace: str = "default",
    delay: str | None = None,
    percentage: float = 100.0,
    scope: str = "header",
    header: str = "x-chaos-run",
    header_value: str | None = None,
    header_match: str = "exact",
    routes: list[str] | None = None,
    destination_host: str | None = None,
    destination_subset: str | None = None,
    label_selector: str | None = None,
    ttl: str = "15m",
    allow_unscoped: bool = False,
    dry_run: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Delay `percentage` % of the scoped requests by `delay` (for example "2s").

    A thin wrapper of `inject_fault`: same targeting, scope and result.
    """
    if delay is None:
        raise InvalidArgument("inject_delay needs delay, for example '2s' or '500ms'")
    return inject_fault(
        virtual_service, namespace, delay=delay, delay_percentage=percentage, scope=scope,
        header=header, header_value=header_value, header_match=header_match, routes=routes,
        destination_host=destination_host, destination_subset=destination_subset,
        label_selector=label_selector, ttl=ttl, allow_unscoped=allow_unscoped, dry_run=dry_run,
        configuration=configuration, secrets=secrets,
    )  # fmt: skip


def inject_abort(
    virtual_service: str | None = None,
    namespace: str = "default",
    status: int | None = None,
    percentage: float = 100.0,
    scope: str = "header",
    header: str = "x-chaos-run",
    header_value: str | None = None,
    header_match: str = "exact",
    routes: list[str] | None = None,
    destination_host: str | None = None,
    destination_subset: str | None = None,
    label_selector: str | None = None,
    ttl: str = "15m",
    allow_unscoped: bool = False,
    dry_run: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Abort `percentage` % of the scoped requests with HTTP `status` (for example 503).

    A thin wrapper of `inject_fault`: same targeting, scope and result.
    """
    if status is None:
        raise InvalidArgument("inject_abort needs status, an HTTP status such as 503")
    return inject_fault(
        virtual_service, namespace, abort_status=status, abort_percentage=percentage,
        scope=scope, header=header, header_value=header_value, header_match=header_match,
        routes=routes, destination_host=destination_host, destination_subset=destination_subset,
        label_selector=label_selector, ttl=ttl, allow_unscoped=allow_unscoped, dry_run=dry_run,
        configuration=configuration, secrets=secrets,
    )  # fmt: skip


def remove_faults(
    virtual_service: str | None = None,
    namespace: str = "default",
    label_selector: str | None = None,
    run_id: str | None = None,
    all_runs: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Remove the chaos routes of this run (or of `run_id`, or of every run with `all_runs`).

    Without `virtual_service` or `label_selector`, every VirtualService of the namespace is
    cleaned. Only the routes the run added and its annotation entry are removed; anything
    else, including edits made meanwhile by others, is kept. Every VirtualService is read
    back afterwards: if a removed route is still there, this raises. With
    `chaosmesh_proxy_admin_urls` set, it also waits until the proxies stop applying them.
    """
    name, ns, selector = check_target(
        virtual_service, namespace, label_selector, configuration, required=False
    )
    every = _flag("all_runs", all_runs)
    if every and run_id is not None:
        raise InvalidArgument(
            f"run_id {run_id!r} and all_runs were both given; pick one run or all of them"
        )
    run = (
        None
        if every
        else settings.run_id(configuration if run_id is None else {"chaosmesh_run_id": run_id})
    )
    check = liveness.live_check(configuration)
    removed = rollback.remove_run(name, ns, selector, run, configuration, secrets)
    gone = liveness.wait_gone([r for vs in removed for r in vs["routes"]], check)
    return {"run_id": run, "all_runs": every, "removed": removed, "verified": True, "gone": gone}
