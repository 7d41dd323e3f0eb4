"""Durations as Istio writes them: Go-style strings such as ``5s``, ``250ms``, ``1m30s``."""

from __future__ import annotations

import re

__all__ = ["bounded_duration", "format_duration", "parse_duration_ns"]

_NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")


def parse_duration_ns(text: str) -> int:
    """Parse a Go duration ("1m30s", "100ms", "1.5s", "2h") into nanoseconds.

    Raises ValueError when the text is not a Go duration.
    """
    body = text
    sign = 1
    if body[:1] in ("+", "-"):
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if body == "0":
        return 0
    if not body:
        raise ValueError(f"invalid duration {text!r}")
    total = 0
    pos = 0
    while pos < len(body):
        part = _DURATION_PART.match(body, pos)
        if part is None or not (part.group(1) or part.group(2)):
            raise ValueError(f"invalid duration {text!r}")
        whole, frac, unit = part.group(1), part.group(2) or "", part.group(3)
        if not unit:
            raise ValueError(f"missing unit in duration {text!r}")
        scale = _NS_PER_UNIT.get(unit)
        if scale is None:
            raise ValueError(f"unknown unit {unit!r} in duration {text!r}")
        total += int(whole or "0") * scale
        if frac:
            # Integer arithmetic keeps "0.001s" exactly 1ms, as Go does.
            total += int(frac) * scale // 10 ** len(frac)
        pos = part.end()
    return sign * total


def format_duration(nanoseconds: int) -> str:
    """Write a duration in the shortest exact Go-style form (``5s``, ``250ms``, ``1500us``)."""
    for unit, scale in (
        ("h", 3600 * 10**9),
        ("m", 60 * 10**9),
        ("s", 10**9),
        ("ms", 10**6),
        ("us", 10**3),
    ):
        if nanoseconds % scale == 0:
            return f"{nanoseconds // scale}{unit}"
    return f"{nanoseconds}ns"


def bounded_duration(name: str, value: object, minimum: int, maximum: int) -> int:
    """A user's duration in nanoseconds; ValueError (one sentence) when invalid or out of bounds."""
    try:
        ns = parse_duration_ns(value) if isinstance(value, str) else None
    except ValueError:
        ns = None
    if ns is None:
        raise ValueError(
            f"{name} {value!r} is not a duration: write a number with a unit, such as '5s' or "
            "'250ms' (units ns, us, ms, s, m, h)"
        )
    if not minimum <= ns <= maximum:
        raise ValueError(
            f"{name} must be between {format_duration(minimum)} and {format_duration(maximum)}, "
            f"got {value!r}"
        )
    return ns
