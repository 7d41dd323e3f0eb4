"""Validation of a VirtualService's match conditions and destinations, following Istio's
webhook (validateHTTPRouteMatchRequest, validateGatewayNames, validateDestination)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from chaosmesh_istio.localmesh._validation_core import Checker
from chaosmesh_istio.localmesh._validation_names import (
    fqdn_error,
    is_dns1123_label,
    istio_label_ok,
    wildcard_domain_error,
)

__all__ = [
    "HEADER_NAME",
    "STRING_MATCH_FIELDS",
    "check_destination",
    "check_gateway_names",
    "check_match",
    "check_string_match",
    "check_weights",
]

HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~A-Za-z0-9]+")
STRING_MATCH_FIELDS = frozenset({"exact", "prefix", "regex"})
_MATCH = frozenset(
    {
        "name",
        "uri",
        "scheme",
        "method",
        "authority",
        "headers",
        "port",
        "sourceLabels",
        "gateways",
        "queryParams",
        "ignoreUriCase",
        "withoutHeaders",
        "sourceNamespace",
        "statPrefix",
    }
)
_DESTINATION = frozenset({"host", "subset", "port"})
_PORT_SELECTOR = frozenset({"number"})
_PSEUDO_HEADERS = frozenset({":method", ":scheme", ":authority", ":path", ":status"})
_JWT_CLAIM = re.compile(r"@request\.auth\.claims(\.[^.\[\]]+|\[[^\[\]]+\])+")


def check_string_match(
    c: Checker, value: Any, path: str, *, empty_prefix: bool = False, star: bool = False
) -> None:
    """Check a StringMatch: at most one of exact/prefix/regex; ``{}`` means "present"."""
    match = c.obj(value, path, STRING_MATCH_FIELDS)
    if match is None:
        return
    kinds = [kind for kind in ("exact", "prefix", "regex") if match.get(kind) is not None]
    if len(kinds) > 1:
        c.invalid(path, "object", "only one of exact, prefix or regex may be set")
    prefix = c.text(match, path, "prefix")
    if prefix == "" and not empty_prefix:
        c.invalid(f"{path}.prefix", prefix, "prefix string match should not be empty")
    c.text(match, path, "exact")
    regex = c.text(match, path, "regex")
    # "*" is not RE2: Istio translates it to a presence match where it allows it.
    if regex is not None and not (star and regex == "*"):
        c.regex(f"{path}.regex", regex)


def _check_header_name(c: Checker, path: str, name: str, gateway_bound: bool) -> None:
    if not name:
        c.invalid(path, name, "header name cannot be empty")
    elif _JWT_CLAIM.fullmatch(name):
        if not gateway_bound:
            c.invalid(path, name, "JWT claim based routing is only supported for gateways")
    elif name not in _PSEUDO_HEADERS and not HEADER_NAME.fullmatch(name):
        c.invalid(path, name, "not a valid header name")


def check_match(c: Checker, value: Any, path: str, gateway_bound: bool) -> None:
    match = c.obj(value, path, _MATCH)
    if match is None:
        return
    c.text(match, path, "name")
    c.text(match, path, "statPrefix")
    c.flag(match, path, "ignoreUriCase")
    if match.get("uri") is not None:
        # Envoy accepts an empty path prefix but not an empty header prefix.
        check_string_match(c, match["uri"], f"{path}.uri", empty_prefix=True)
    for key in ("scheme", "method", "authority"):
        if match.get(key) is not None:
            check_string_match(c, match[key], f"{path}.{key}", star=True)
    for key in ("headers", "withoutHeaders", "queryParams"):
        conditions = match.get(key)
        if conditions is None:
            continue
        if not isinstance(conditions, Mapping):
            c.wrong_type(f"{path}.{key}", conditions, "object")
            continue
        for name, condition in conditions.items():
            item_path = f"{path}.{key}[{name}]"
            if key != "queryParams":
                _check_header_name(c, item_path, name, gateway_bound)
            elif not name:
                c.invalid(item_path, name, "query parameter name cannot be empty")
            if condition is None:
                c.invalid(item_path, None, f"{key} match {name} cannot be null")
            else:
                check_string_match(c, condition, item_path, star=key == "withoutHeaders")
    c.integer(match, path, "port", 0, 65535)
    c.labels(match, path, "sourceLabels")
    check_gateway_names(c, match, path)
    namespace = c.text(match, path, "sourceNamespace")
    if namespace and not is_dns1123_label(namespace):
        c.invalid(f"{path}.sourceNamespace", namespace, "sourceNamespace match is invalid")


def check_gateway_names(c: Checker, obj: Mapping[str, Any], path: str) -> list[str]:
    """Check ``obj["gateways"]``: "mesh", "name", "namespace/name" or a legacy FQDN."""
    names = []
    for item_path, name in c.strings(obj, path, "gateways"):
        names.append(name)
        namespace, slash, gateway = name.partition("/")
        if not slash:
            error = fqdn_error(name)
            if error:
                c.invalid(item_path, name, error)
        elif not namespace or not gateway:
            c.invalid(item_path, name, "config namespace and gateway name cannot be empty")
        elif not is_dns1123_label(namespace):
            c.invalid(item_path, name, f"invalid value for namespace: {namespace!r}")
        elif not istio_label_ok(gateway):
            c.invalid(item_path, name, f"invalid value for gateway name: {gateway!r}")
    return names


def check_destination(c: Checker, value: Any, path: str) -> None:
    """Check a Destination: host, optional subset and port."""
    if value is None:
        return
    destination = c.obj(value, path, _DESTINATION)
    if destination is None:
        return
    host = c.text(destination, path, "host", required=True)
    if host == "*":
        c.invalid(f"{path}.host", host, "invalid destination host *")
    elif host is not None:
        error = wildcard_domain_error(host)
        if error:
            c.invalid(f"{path}.host", host, error)
    subset = c.text(destination, path, "subset")
    if subset is not None and not istio_label_ok(subset):
        c.invalid(f"{path}.subset", subset, "subset name is invalid")
    port = c.child(destination, path, "port", _PORT_SELECTOR)
    if port is not None:
        c.integer(port, f"{path}.port", "number", 1, 65535, required=True)


def check_weights(c: Checker, path: str, weights: list[int | None]) -> None:
    """Istio normalizes weights, so it only refuses several destinations weighing 0 in all."""
    if len(weights) > 1 and all(not weight for weight in weights):
        c.invalid(path, "array", "total destination weight = 0")
