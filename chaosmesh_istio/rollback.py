"""Removing a run's faults and proving they are gone.

One implementation for every path that removes faults: the ``remove_faults`` action, the
controls' guaranteed removal, ``chaosmesh-istio cleanup`` and the sentinel. Only the
routes carrying the run's marker and its annotation entry are removed, through guarded
patches, so edits made meanwhile by anyone else are kept; every VirtualService is then
read back.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from chaosmesh_istio import faults
from chaosmesh_istio.errors import NotFound, RollbackNotVerified
from chaosmesh_istio.kube import VirtualServices, open_virtual_services
from chaosmesh_istio.settings import Configuration, Secrets

__all__ = ["removal_change", "remove_run", "verify_removed"]

logger = logging.getLogger("chaostoolkit").getChild("chaosmesh_istio.rollback")


def removal_change(
    current: dict[str, Any], run: str | None, names: list[str] | None = None
) -> dict[str, Any] | None:
    """The VirtualService without the run's routes (every run's when None), or None if clean."""
    removal = faults.remove(current, run, names)
    return removal.virtual_service if removal.removed or removal.runs else None


def remove_run(
    name: str | None,
    namespace: str,
    label_selector: str | None,
    run: str | None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> list[dict[str, Any]]:
    """Remove and verify; targets: one by name, by selector, or every one of the namespace.

    Returns ``[{virtual_service, routes}]`` for each VirtualService that had routes removed;
    raises RollbackNotVerified when a route of the run is still there afterwards.
    """
    client = open_virtual_services(configuration, secrets)
    try:
        if name or label_selector:
            targets = client.targets(name, namespace, label_selector)
        else:
            targets = client.select(namespace)
    except NotFound:
        if name is None:
            raise
        targets = []  # a deleted VirtualService carries no fault
    outcomes = client.update_many(
        [
            (
                t["metadata"]["name"],
                t["metadata"].get("namespace", namespace),
                functools.partial(removal_change, run=run),
                t,
            )
            for t in targets
        ]
    )
    removed = []
    failures: list[Exception] = []
    for target, outcome in zip(targets, outcomes, strict=True):
        if isinstance(outcome, NotFound):
            continue  # deleted meanwhile: it carries no fault
        if isinstance(outcome, Exception):
            failures.append(outcome)
            continue
        gone = faults.remove(outcome[0], run).removed
        if gone:
            removed.append({"virtual_service": faults.vs_ref(target), "routes": list(gone)})
            logger.info("removed %s from %s", list(gone), faults.vs_ref(target))
    if failures:
        # Every other target was still cleaned: one stubborn object never stops the rest.
        raise failures[0]
    if name:
        verify_removed(client, targets, run)
    else:
        # One list reads every target back at once: the same check as a read per object.
        listed = client.select(namespace, label_selector)
        wanted = {(t["metadata"].get("namespace"), t["metadata"]["name"]) for t in targets}
        verify_removed(
            client,
            [
                o
                for o in listed
                if (o["metadata"].get("namespace"), o["metadata"]["name"]) in wanted
            ],
            run,
            fresh=True,
        )
    return removed


def verify_removed(
    client: VirtualServices, targets: list[dict[str, Any]], run: str | None, fresh: bool = False
) -> None:
    """Read every target back (or, when `fresh`, trust `targets` as just read); raise if a
    route of the run (of any run when None) is left."""
    for target in targets:
        meta = target["metadata"]
        try:
            current = target if fresh else client.get(meta["name"], meta["namespace"])
        except NotFound:
            continue
        left = [f["route"] for f in faults.active_runs(current) if run in (None, f["run_id"])]
        if left:
            raise RollbackNotVerified(
                f"virtual service {faults.vs_ref(current)} still has chaos routes {left!r} after "
                "removal; run 'chaosmesh-istio cleanup' or remove them with kubectl"
            )
