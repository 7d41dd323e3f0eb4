"""What to inject and where: faults and route selections built from user arguments (pure).

Every builder validates its arguments and raises InvalidArgument with one sentence naming
the argument, the bad value and what to write instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from chaosmesh_istio.durations import bounded_duration, format_duration
from chaosmesh_istio.errors import InvalidArgument

__all__ = [
    "GRPC_STATUSES",
    "Abort",
    "Delay",
    "Fault",
    "Selection",
    "make_fault",
    "make_selection",
    "parse_percentage",
]

GRPC_STATUSES = (
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
_MIN_DELAY_NS = 1_000_000
_MAX_DELAY_NS = 3600 * 10**9


@dataclass(frozen=True)
class Delay:
    fixed_delay: str
    percentage: float


@dataclass(frozen=True)
class Abort:
    percentage: float
    http_status: int | None = None
    grpc_status: str | None = None


@dataclass(frozen=True)
class Fault:
    """An Istio HTTPFaultInjection: a delay, an abort, or both (sampled independently)."""

    delay: Delay | None = None
    abort: Abort | None = None

    def to_istio(self) -> dict[str, Any]:
        fault: dict[str, Any] = {}
        if self.delay is not None:
            fault["delay"] = {
                "fixedDelay": self.delay.fixed_delay,
                "percentage": {"value": self.delay.percentage},
            }
        if self.abort is not None:
            abort: dict[str, Any] = (
                {"httpStatus": self.abort.http_status}
                if self.abort.http_status is not None
                else {"grpcStatus": self.abort.grpc_status}
            )
            abort["percentage"] = {"value": self.abort.percentage}
            fault["abort"] = abort
        return fault


@dataclass(frozen=True)
class Selection:
    """Which HTTP routes to fault: all by default, else by name and/or destination."""

    routes: tuple[str, ...] = ()
    destination_host: str | None = None
    destination_subset: str | None = None

    def describe(self) -> str:
        parts = []
        if self.routes:
            parts.append(f"routes={list(self.routes)!r}")
        if self.destination_host is not None:
            parts.append(f"destination_host={self.destination_host!r}")
        if self.destination_subset is not None:
            parts.append(f"destination_subset={self.destination_subset!r}")
        return "(" + ", ".join(parts) + ")" if parts else "(all routes)"


def parse_percentage(name: str, value: object) -> float:
    """A percentage in (0, 100]; numeric strings are accepted (they come from --var)."""
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or not 0 < number <= 100:
        raise InvalidArgument(
            f"{name} must be a number greater than 0 and at most 100, got {value!r}"
        )
    return number


def _parse_delay(value: object) -> str:
    try:
        return format_duration(bounded_duration("delay", value, _MIN_DELAY_NS, _MAX_DELAY_NS))
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None


def _parse_http_status(value: object) -> int:
    status: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        status = value
    elif isinstance(value, str) and value.strip().isdigit():
        status = int(value)
    if status is None or not 200 <= status <= 599:
        raise InvalidArgument(
            f"abort_status must be an HTTP status code between 200 and 599, got {value!r}"
        )
    return status


def _parse_grpc_status(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= len(GRPC_STATUSES):
        return GRPC_STATUSES[value - 1]
    if isinstance(value, str) and value.strip().upper() in GRPC_STATUSES:
        return value.strip().upper()
    raise InvalidArgument(
        f"abort_grpc_status must be a gRPC status name such as 'UNAVAILABLE' "
        f"(or its code 1-16), got {value!r}"
    )


def make_fault(
    delay: object = None,
    delay_percentage: object = 100.0,
    abort_status: object = None,
    abort_grpc_status: object = None,
    abort_percentage: object = 100.0,
) -> Fault:
    """Build and validate a fault from the activity arguments."""
    if delay is None and abort_status is None and abort_grpc_status is None:
        raise InvalidArgument(
            "no fault given: set delay (for example '2s'), abort_status (for example 503) "
            "or abort_grpc_status (for example 'UNAVAILABLE')"
        )
    if abort_status is not None and abort_grpc_status is not None:
        raise InvalidArgument(
            f"abort_status {abort_status!r} and abort_grpc_status {abort_grpc_status!r} were "
            "both given; an abort has one status, so set only one of them"
        )
    fault_delay = None
    if delay is not None:
        fault_delay = Delay(
            _parse_delay(delay), parse_percentage("delay_percentage", delay_percentage)
        )
    fault_abort = None
    if abort_status is not None or abort_grpc_status is not None:
        percentage = parse_percentage("abort_percentage", abort_percentage)
        if abort_status is not None:
            fault_abort = Abort(percentage, http_status=_parse_http_status(abort_status))
        else:
            fault_abort = Abort(percentage, grpc_status=_parse_grpc_status(abort_grpc_status))
    return Fault(fault_delay, fault_abort)


def _names(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if (
        not isinstance(items, list | tuple)
        or not items
        or not all(isinstance(i, str) and i for i in items)
    ):
        raise InvalidArgument(
            f"routes must be a route name or a non-empty list of route names, got {value!r}"
        )
    return tuple(items)


def _optional_text(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
        raise InvalidArgument(f"{name} must be a non-empty name without spaces, got {value!r}")
    return value


def make_selection(
    routes: object = None, destination_host: object = None, destination_subset: object = None
) -> Selection:
    """Build and validate a route selection from the activity arguments."""
    subset = _optional_text("destination_subset", destination_subset)
    host = _optional_text("destination_host", destination_host)
    if subset is not None and host is None:
        raise InvalidArgument(
            f"destination_subset {subset!r} needs destination_host: a subset only has a "
            "meaning for one service"
        )
    return Selection(_names(routes), host, subset)
