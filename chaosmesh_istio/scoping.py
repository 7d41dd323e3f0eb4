"""Scopes: which requests a fault may hurt, as an Istio header condition (pure).

Three modes: ``header`` (any header, exact / prefix / regex), ``baggage`` (a
``chaos-run=<value>`` member of the W3C ``baggage`` header, which OpenTelemetry-instrumented
services propagate through every hop) and ``none`` (all traffic, only when explicitly
allowed).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chaosmesh_istio.errors import InvalidArgument, TargetError
from chaosmesh_istio.regex import compile_re2, re2_escape

__all__ = ["BAGGAGE_KEY", "Scope", "combine_entry", "make_scope"]

BAGGAGE_KEY = "chaos-run"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")
_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?")
_BAGGAGE_VALUE = re.compile(r"[A-Za-z0-9._~-]+")
_MATCH_KINDS = ("exact", "prefix", "regex")


@dataclass(frozen=True)
class Scope:
    """A header condition, plus the value the load must send to satisfy it."""

    mode: str
    header: str = ""
    match: str = "exact"
    value: str = ""
    send_value: str = ""

    def condition(self) -> dict[str, str] | None:
        return None if self.mode == "none" else {self.match: self.value}


def make_scope(
    run_id: str,
    scope: object = "header",
    header: object = "x-chaos-run",
    header_value: object = None,
    header_match: object = "exact",
    allow_unscoped: object = False,
) -> Scope:
    """Build and validate a scope; ``header_value`` defaults to the run id."""
    if scope == "none":
        if allow_unscoped is not True:
            raise InvalidArgument(
                "scope 'none' would fault every request, real users included; set "
                "allow_unscoped to true if that is really what you want"
            )
        return Scope("none")
    if scope not in ("header", "baggage"):
        raise InvalidArgument(f"scope must be 'header', 'baggage' or 'none', got {scope!r}")
    if header_value is not None and (not isinstance(header_value, str) or not header_value):
        raise InvalidArgument(f"header_value must be a non-empty string, got {header_value!r}")
    value = run_id if header_value is None else header_value
    if scope == "baggage":
        if not _BAGGAGE_VALUE.fullmatch(value):
            raise InvalidArgument(
                f"header_value {value!r} cannot be a baggage member value; use letters, digits "
                "and '.', '_', '~', '-' only"
            )
        pattern = rf"(.*,)?\s*{BAGGAGE_KEY}\s*=\s*{re2_escape(value)}\s*(;[^,]*)?(,.*)?"
        return Scope("baggage", "baggage", "regex", pattern, f"{BAGGAGE_KEY}={value}")
    if not isinstance(header, str) or not _TOKEN.fullmatch(header.lower()):
        raise InvalidArgument(
            f"header must be an HTTP header name (letters, digits and -, no spaces or ':'), "
            f"got {header!r}"
        )
    name = header.lower()
    if header_match not in _MATCH_KINDS:
        raise InvalidArgument(
            f"header_match must be 'exact', 'prefix' or 'regex', got {header_match!r}"
        )
    if header_match == "regex":
        try:
            compiled = compile_re2(value)
        except ValueError as exc:
            raise InvalidArgument(f"header_value: {exc}; write a valid RE2 pattern") from None
        if not compiled.fullmatch(run_id):
            raise InvalidArgument(
                f"header_value regex {value!r} does not match the run id {run_id!r}, which is "
                "what the experiment traffic sends; widen the pattern"
            )
        return Scope("header", name, "regex", value, run_id)
    if not _VALUE.fullmatch(value):
        raise InvalidArgument(
            f"header_value {value!r} is not a valid header value; use printable ASCII without "
            "leading or trailing spaces"
        )
    send = value if header_match == "exact" else value + run_id
    return Scope("header", name, str(header_match), value, send)


def _satisfies(condition: Mapping[str, Any], value: str) -> bool:
    """Whether a header value satisfies an Istio StringMatch (empty = presence)."""
    if not condition:
        return True
    if "exact" in condition:
        return bool(condition["exact"] == value)
    if "prefix" in condition:
        return value.startswith(str(condition["prefix"]))
    if "regex" in condition:
        try:
            return bool(compile_re2(str(condition["regex"])).fullmatch(value))
        except ValueError:
            return False
    return False


def _implies(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool | None:
    """Whether every value satisfying ``a`` satisfies ``b``; None when undecidable here."""
    if dict(a) == dict(b) or not b:
        return True
    if "exact" in a:
        return _satisfies(b, str(a["exact"]))
    if "prefix" in a and "prefix" in b:
        return str(a["prefix"]).startswith(str(b["prefix"]))
    return None


def combine_entry(entry: Mapping[str, Any], scope: Scope, where: str) -> dict[str, Any]:
    """One match entry AND the scope, as a single Istio match entry.

    When the entry already has a condition on the scope's header, the result is the
    stricter of the two if one implies the other; otherwise the combination cannot be
    expressed (or can never match) and TargetError says so.
    """
    combined = copy.deepcopy(dict(entry))
    ours = scope.condition()
    if ours is None:
        return combined
    header = scope.header
    headers = combined.setdefault("headers", {})
    theirs = headers.get(header)
    if theirs is not None:
        if _implies(ours, theirs):
            headers[header] = ours
        elif not _implies(theirs, ours):
            raise TargetError(
                f"{where} already matches header {header!r} with {dict(theirs)!r}, which cannot "
                f"be combined with the scope {ours!r}; scope the fault with another header "
                "or select other routes"
            )
    else:
        headers[header] = ours
    without = (combined.get("withoutHeaders") or {}).get(header)
    if without is not None and _implies(ours, without):
        raise TargetError(
            f"{where} only matches requests without header {header!r} matching "
            f"{dict(without)!r}, so a fault scoped on {ours!r} could never fire; scope the "
            "fault with another header or select other routes"
        )
    return combined
