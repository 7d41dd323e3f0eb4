"""Chaos Toolkit probes: live chaos routes, Istio metrics in Prometheus, and the load's numbers.

The metrics and load probes live in ``metrics`` and ``load``; they are exported here so
that experiments and ``chaos discover`` find every probe in one module.
"""

from __future__ import annotations

from typing import Any

from chaosmesh_istio import faults
from chaosmesh_istio.errors import InvalidArgument
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
from chaosmesh_istio.timeouts import (
    check_factor,
    check_route_name,
    route_timeout_ns,
    scale_duration,
)

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
    "route_timeout",
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


def route_timeout(
    virtual_service: str,
    namespace: str = "default",
    route: str | None = None,
    factor: float = 1.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> str:
    """The timeout a VirtualService route declares, times `factor`, as a duration ("900ms").

    Reads `http[].timeout` of the route named `route` (or of the VirtualService's only HTTP
    route) so that timeout experiments derive their delays from the live configuration:
    factor 0.9, 1 and 1.1 give delays just below, at and just above the timeout, for
    example as dynamic configuration values. Rounded to the millisecond. Raises when the
    VirtualService or route does not exist or the route declares no timeout.
    """
    if virtual_service is None:
        raise InvalidArgument(
            "route_timeout needs virtual_service, the VirtualService whose route timeout to read"
        )
    _, ns, _ = check_target(virtual_service, namespace, None, configuration)
    wanted, scale = check_route_name(route), check_factor(factor)
    vs = open_virtual_services(configuration, secrets).get(virtual_service, ns)
    return scale_duration(route_timeout_ns(vs, wanted), scale)
