"""A route's own timeout, read from a VirtualService, and durations scaled from it (pure).

Timeout experiments inject delays just below, at and just above the timeout a caller's
route declares (``http[].timeout``), so the delays follow the configuration instead of
being copied into the experiment by hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from chaosmesh_istio.durations import format_duration, parse_duration_ns
from chaosmesh_istio.errors import InvalidArgument, TargetError
from chaosmesh_istio.faults import chaos_route_run, route_label, vs_ref

__all__ = ["check_factor", "check_route_name", "route_timeout_ns", "scale_duration"]

_MS = 1_000_000


def _user_routes(vs: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any]]]:
    routes = (vs.get("spec") or {}).get("http") or []
    return [(i, r) for i, r in enumerate(routes) if chaos_route_run(r) is None]


def check_route_name(route: object) -> str | None:
    """A route name, or None for the VirtualService's only route."""
    if route is not None and (not isinstance(route, str) or not route):
        raise InvalidArgument(f"route must be the name of an HTTP route, got {route!r}")
    return route


def check_factor(factor: object) -> float:
    """A finite factor above zero."""
    if (
        isinstance(factor, bool)
        or not isinstance(factor, int | float)
        or not math.isfinite(factor)
        or factor <= 0
    ):
        raise InvalidArgument(f"factor must be a number above 0 such as 0.9, got {factor!r}")
    return float(factor)


def route_timeout_ns(vs: Mapping[str, Any], route: str | None = None) -> int:
    """The timeout in nanoseconds of the HTTP route named ``route``, or of the only one.

    Chaos copies are not the user's routes and are ignored. Raises TargetError when the
    route does not exist, is not the only one (without ``route``) or declares no timeout.
    """
    route = check_route_name(route)
    ref = vs_ref(vs)
    routes = _user_routes(vs)
    labels = [route_label(r, i) for i, r in routes]
    if route is None:
        if len(routes) != 1:
            raise TargetError(
                f"virtual service {ref} has {len(routes)} HTTP routes {labels!r}; name the "
                "one whose timeout to read with route"
            )
        index, chosen = routes[0]
    else:
        found = [(i, r) for i, r in routes if r.get("name") == route]
        if not found:
            raise TargetError(
                f"virtual service {ref} has no HTTP route named {route!r}; its routes are "
                f"{labels!r}"
            )
        index, chosen = found[0]
    label = route_label(chosen, index)
    raw = chosen.get("timeout")
    try:
        timeout = parse_duration_ns(raw) if isinstance(raw, str) else None
    except ValueError:
        timeout = None
    if raw is None or timeout == 0:
        raise TargetError(
            f"route {label!r} of virtual service {ref} declares no timeout; set "
            "http[].timeout on it, or give the delays explicitly"
        )
    if timeout is None or timeout < 0:
        raise TargetError(
            f"route {label!r} of virtual service {ref} has timeout {raw!r}, which is not a "
            "duration such as '1s' or '500ms'"
        )
    return timeout


def scale_duration(nanoseconds: int, factor: object) -> str:
    """``nanoseconds * factor`` to the nearest millisecond, as a Go duration ("900ms")."""
    scaled = round(nanoseconds * check_factor(factor) / _MS) * _MS
    if scaled < _MS:
        raise InvalidArgument(
            f"factor {factor!r} makes {format_duration(nanoseconds)} shorter than 1ms; use a "
            "larger factor"
        )
    return format_duration(scaled)
