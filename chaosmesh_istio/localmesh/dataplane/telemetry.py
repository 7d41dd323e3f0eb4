"""Istio's standard metrics, hand-rolled: ``istio_requests_total`` and
``istio_request_duration_milliseconds`` in Prometheus text exposition format.

The hot path only adds to a list found by a tuple key; label names and escaping are paid
at scrape time. Label values that do not depend on the request (the source workload, the
destination service and instance) are tuples precomputed per listener and per endpoint.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chaosmesh_istio.localmesh.dataplane.config import Instance, ListenerConfig, Service

__all__ = [
    "BUCKETS",
    "UNKNOWN_DESTINATION",
    "Telemetry",
    "instance_key",
    "service_key",
    "source_key",
]

UNKNOWN = "unknown"
# Istio's default buckets for istio_request_duration_milliseconds.
BUCKETS = (
    0.5,
    1,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
    30000,
    60000,
    300000,
    600000,
    1800000,
    3600000,
)
_SOURCE_LABELS = ("source_workload", "source_workload_namespace", "source_app", "source_version")
_DESTINATION_LABELS = (
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_workload",
    "destination_workload_namespace",
    "destination_app",
    "destination_version",
)
UNKNOWN_DESTINATION = (UNKNOWN,) * len(_DESTINATION_LABELS)
_LE = (*(str(int(b)) if float(b).is_integer() else str(b) for b in BUCKETS), "+Inf")

Key = tuple[str, tuple[str, ...], tuple[str, ...], int, str, str]


def _label(labels: Mapping[str, str], name: str) -> str:
    return labels.get(name) or UNKNOWN


def source_key(listener: ListenerConfig) -> tuple[str, ...]:
    """The source labels of a listener's requests."""
    labels = listener.labels
    return (listener.workload, listener.namespace, _label(labels, "app"), _label(labels, "version"))


def service_key(service: Service | None) -> tuple[str, ...]:
    """Destination labels when only the service is known (no instance was reached)."""
    if service is None:
        return UNKNOWN_DESTINATION
    return (service.fqdn, service.name, service.namespace, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN)


def instance_key(service: Service, instance: Instance) -> tuple[str, ...]:
    """Destination labels of a request that reached ``instance``."""
    labels = instance.labels
    return (
        service.fqdn,
        service.name,
        service.namespace,
        instance.workload,
        service.namespace,
        _label(labels, "app"),
        _label(labels, "version"),
    )


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Telemetry:
    """Counters and histograms keyed by label tuples."""

    def __init__(self, group_label: str) -> None:
        self.group_label = group_label
        # Per key: one count per bucket (the last is +Inf), then the sum in milliseconds.
        self._series: dict[Key, list[float]] = {}

    def record(
        self,
        reporter: str,
        source: tuple[str, ...],
        destination: tuple[str, ...],
        code: int,
        flags: str,
        group: str,
        milliseconds: float,
    ) -> None:
        """Count one request and its duration."""
        key = (reporter, source, destination, code, flags, group)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = [0.0] * (len(BUCKETS) + 2)
        series[bisect_left(BUCKETS, milliseconds)] += 1
        series[-1] += milliseconds

    def _labels(self, key: Key) -> str:
        reporter, source, destination, code, flags, group = key
        pairs = [("reporter", reporter)]
        pairs += zip(_SOURCE_LABELS, source, strict=True)
        pairs += zip(_DESTINATION_LABELS, destination, strict=True)
        pairs += [
            ("request_protocol", "http"),
            ("response_code", str(code)),
            ("response_flags", flags or "-"),
            ("connection_security_policy", "unknown" if reporter == "source" else "none"),
            (self.group_label, group),
        ]
        return ",".join(f'{name}="{_escape(value)}"' for name, value in pairs)

    def render(self) -> str:
        """The metrics in Prometheus text exposition format 0.0.4."""
        counters = ["# TYPE istio_requests_total counter"]
        histogram = ["# TYPE istio_request_duration_milliseconds histogram"]
        name = "istio_request_duration_milliseconds"
        for key, series in list(self._series.items()):
            labels = self._labels(key)
            count = 0.0
            for le, bucket in zip(_LE, series, strict=False):
                count += bucket
                histogram.append(f'{name}_bucket{{{labels},le="{le}"}} {count:.0f}')
            histogram.append(f"{name}_sum{{{labels}}} {series[-1]:.3f}")
            histogram.append(f"{name}_count{{{labels}}} {count:.0f}")
            counters.append(f"istio_requests_total{{{labels}}} {count:.0f}")
        return "\n".join(counters + histogram) + "\n"
