"""Validation of what a VirtualService does to headers (request and response operations, CORS),
following Istio's webhook and Envoy's header value syntax."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from chaosmesh_istio.localmesh._validation_core import Checker
from chaosmesh_istio.localmesh._validation_match import (
    HEADER_NAME,
    STRING_MATCH_FIELDS,
    check_string_match,
)

__all__ = ["check_cors", "check_header_operations"]

_HEADERS = frozenset({"request", "response"})
_HEADER_OPERATIONS = frozenset({"set", "add", "remove"})
_CORS = frozenset(
    {
        "allowOrigins",
        "allowOrigin",
        "allowMethods",
        "allowHeaders",
        "exposeHeaders",
        "maxAge",
        "allowCredentials",
        "unmatchedPreflights",
    }
)
_CORS_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*"}
)
_HEADER_VALUE_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def check_cors(c: Checker, route: Mapping[str, Any], path: str) -> None:
    """Check ``route["corsPolicy"]``."""
    cors = c.child(route, path, "corsPolicy", _CORS)
    if cors is None:
        return
    path = f"{path}.corsPolicy"
    for index, origin in enumerate(c.items(cors, path, "allowOrigins")):
        origin_path = f"{path}.allowOrigins[{index}]"
        check_string_match(c, origin, origin_path)
        if isinstance(origin, Mapping) and not any(origin.get(k) for k in STRING_MATCH_FIELDS):
            c.invalid(origin_path, "object", "not a valid match type for CORS allow origins")
    c.strings(cors, path, "allowOrigin")
    for item_path, method in c.strings(cors, path, "allowMethods"):
        if method not in _CORS_METHODS:
            c.unsupported(item_path, method, _CORS_METHODS)
    for key in ("allowHeaders", "exposeHeaders"):
        for item_path, name in c.strings(cors, path, key):
            if name != "*" and not HEADER_NAME.fullmatch(name):
                c.invalid(item_path, name, "not a valid header name")
    max_age = c.duration(cors, path, "maxAge")
    if max_age is not None and max_age % 1_000_000_000:
        c.invalid(
            f"{path}.maxAge",
            cors["maxAge"],
            "max_age duration is accurate only to seconds precision",
        )
    c.flag(cors, path, "allowCredentials")
    c.enum(cors, path, "unmatchedPreflights", ("UNSPECIFIED", "FORWARD", "IGNORE"))


def check_header_operations(c: Checker, obj: Mapping[str, Any], path: str) -> None:
    """Check ``obj["headers"]``: request and response set/add/remove."""
    headers = c.child(obj, path, "headers", _HEADERS)
    if headers is None:
        return
    for side in ("request", "response"):
        ops = c.child(headers, f"{path}.headers", side, _HEADER_OPERATIONS)
        if ops is None:
            continue
        sub = f"{path}.headers.{side}"
        for operation in ("set", "add"):
            for name, value in c.string_map(ops, sub, operation).items():
                _check_header_operation(c, f"{sub}.{operation}", name, side == "request")
                _check_header_value(c, f"{sub}.{operation}[{name}]", value)
        for item_path, name in c.strings(ops, sub, "remove"):
            _check_header_operation(c, item_path, name, authority_ok=False)


def _check_header_operation(c: Checker, path: str, name: str, authority_ok: bool) -> None:
    lowered = name.lower()
    if not name:
        c.invalid(path, name, "header name cannot be empty")
    elif authority_ok and lowered in ("host", ":authority"):
        return
    elif lowered == "host":
        c.invalid(path, name, "cannot set Host header")
    elif name.startswith(":"):
        c.invalid(path, name, 'header cannot have ":" prefix')


def _check_header_value(c: Checker, path: str, value: str) -> None:
    if _HEADER_VALUE_FORBIDDEN.search(value):
        c.invalid(path, value, "header value contains control characters")
        return
    # Envoy reads %VAR% as a variable and %% as a literal percent: a lone % is refused.
    pos = 0
    while (start := value.find("%", pos)) != -1:
        if value.startswith("%%", start):
            pos = start + 2
            continue
        end = value.find("%", start + 1)
        if end == -1:
            c.invalid(path, value, "un-terminated variable expression (use %% for a literal %)")
            return
        pos = end + 1
