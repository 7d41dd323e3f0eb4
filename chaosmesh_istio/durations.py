"""Durations as Istio writes them: Go-style strings such as ``5s``, ``250ms``, ``1m30s``."""

from __future__ import annotations

import re

__all__ = ["format_duration", "parse_duration"]

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_WHOLE = re.compile(r"(?:(?:\d+(?:\.\d+)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+")


def parse_duration(text: object) -> int:
    """Return the duration in nanoseconds; raise ValueError on anything Istio would refuse."""
    if not isinstance(text, str) or not _WHOLE.fullmatch(text):
        raise ValueError(
            f"invalid duration {text!r}: write a number with a unit, such as '5s' "
            "or '250ms' (units: ns, us, ms, s, m, h; no spaces, no sign)"
        )
    total = 0
    for number, unit in _PART.findall(text):
        whole, _, frac = number.partition(".")
        scale = _UNITS_NS[unit]
        total += int(whole or 0) * scale
        if frac:
            total += int(frac) * scale // 10 ** len(frac)
    return total


def format_duration(nanoseconds: int) -> str:
    """Write a duration in the shortest exact Go-style form (``5s``, ``250ms``, ``1.5s``)."""
    if nanoseconds % 10**9 == 0:
        return f"{nanoseconds // 10**9}s"
    if nanoseconds % 10**6 == 0:
        return f"{nanoseconds // 10**6}ms"
    if nanoseconds % 10**3 == 0:
        return f"{nanoseconds // 10**3}us"
    return f"{nanoseconds}ns"
