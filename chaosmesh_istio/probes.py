"""Chaos Toolkit probes: live chaos routes, Istio metrics in Prometheus, and the load's numbers.

The metrics and load probes live in ``metrics`` and ``load``; they are exported here so
that experiments and ``chaos discover`` find every probe in one module.
"""

from __future__ import annotations

from typing import Any

from chaosmesh_istio import faults
from chaosmesh_istio.kube import check_target, open_virtual_services
from chaosmesh_istio.load import (
    load_latency_quantile,
    load_request_rate,
    load_stats,
    load_success_rate,
)
from chaosmesh_istio.metrics import (
    error_rate,
    fault_fired,
    fault_injected_requests,
    latency_quantile,
    prometheus_query,
    request_rate,
    success_rate,
)
from chaosmesh_istio.settings import Configuration, Secrets

__all__ = [
    "active_fault_count",
    "active_faults",
    "error_rate",
    "fault_fired",
    "fault_injected_requests",
    "latency_quantile",
    "load_latency_quantile",
    "load_request_rate",
    "load_stats",
    "load_success_rate",
    "prometheus_query",
    "request_rate",
    "success_rate",
]


def active_faults(
    virtual_service: str | None = None,
    namespace: str = "default",
    label_selector: str | None = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> list[dict[str, Any]]:
    """List the chaos routes present in VirtualServices: run id, route, fault, owner, expiry.

    Without `virtual_service` or `label_selector`, every VirtualService of the namespace is
    inspected. An empty list means no fault of any run is live there.
    """
    name, ns, selector = check_target(
        virtual_service, namespace, label_selector, configuration, required=False
    )
    client = open_virtual_services(configuration, secrets)
    targets = client.targets(name, ns, selector) if name or selector else client.select(ns)
    return [found for target in targets for found in faults.active_runs(target)]


def active_fault_count(
    virtual_service: str | None = None,
    namespace: str = "default",
    label_selector: str | None = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> int:
    """Count the chaos routes present in VirtualServices (0 means no fault is live).

    Takes the same targets as `active_faults`; handy with a tolerance of 0 in a steady-state
    hypothesis.
    """
    return len(active_faults(virtual_service, namespace, label_selector, configuration, secrets))
