"""The arguments of the chaosmesh control, checked (see ``chaosmesh_istio.controls``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chaosmesh_istio.errors import InvalidArgument

__all__ = ["ControlOptions", "control_options"]

_ARGUMENTS = ("safeguards", "interval", "namespaces", "preflight", "report", "reports_dir")


@dataclass(frozen=True)
class ControlOptions:
    safeguards: list[dict[str, Any]]
    interval: float
    namespaces: list[str]
    preflight: bool
    report: bool
    reports_dir: str | None


def control_options(arguments: Mapping[str, Any]) -> ControlOptions:
    unknown = sorted(set(arguments) - set(_ARGUMENTS))
    if unknown:
        raise InvalidArgument(
            f"unknown argument(s) {unknown!r} for the chaosmesh control; it takes "
            f"{', '.join(_ARGUMENTS)}"
        )
    guards = arguments.get("safeguards") or []
    if not isinstance(guards, list) or not all(isinstance(g, dict) for g in guards):
        raise InvalidArgument(f"safeguards must be a list of probe activities, got {guards!r}")
    for guard in guards:
        if guard.get("type") != "probe" or "provider" not in guard or "tolerance" not in guard:
            raise InvalidArgument(
                f"safeguard {guard.get('name')!r} must be a probe with a provider and a tolerance"
            )
    interval = arguments.get("interval", 1.0)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        raise InvalidArgument(f"interval must be a positive number of seconds, got {interval!r}")
    namespaces = arguments.get("namespaces") or []
    if not isinstance(namespaces, list) or not all(isinstance(n, str) for n in namespaces):
        raise InvalidArgument(f"namespaces must be a list of namespace names, got {namespaces!r}")
    preflight = arguments.get("preflight", True)
    if not isinstance(preflight, bool):
        raise InvalidArgument(f"preflight must be true or false, got {preflight!r}")
    report = arguments.get("report", True)
    if not isinstance(report, bool):
        raise InvalidArgument(f"report must be true or false, got {report!r}")
    reports_dir = arguments.get("reports_dir")
    if reports_dir is not None and (not isinstance(reports_dir, str) or not reports_dir):
        raise InvalidArgument(f"reports_dir must be a directory path, got {reports_dir!r}")
    return ControlOptions(guards, float(interval), namespaces, preflight, report, reports_dir)
