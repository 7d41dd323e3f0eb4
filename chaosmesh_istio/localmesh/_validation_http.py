"""Validation of a VirtualService's HTTP routes, following Istio's webhook
(pkg/config/validation/virtualservice.go and validation.go) and Envoy's own limits."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from chaosmesh_istio.localmesh._validation_core import UINT32_MAX, Checker
from chaosmesh_istio.localmesh._validation_headers import check_cors, check_header_operations
from chaosmesh_istio.localmesh._validation_match import (
    check_destination,
    check_match,
    check_weights,
)
from chaosmesh_istio.localmesh._validation_names import is_dns1123_label, is_dns1123_subdomain
from chaosmesh_istio.spec import GRPC_STATUSES

__all__ = ["check_http_route"]

_HTTP_ROUTE = frozenset(
    {
        "name",
        "match",
        "route",
        "redirect",
        "directResponse",
        "delegate",
        "rewrite",
        "timeout",
        "retries",
        "fault",
        "mirror",
        "mirrors",
        "mirrorPercent",
        "mirrorPercentage",
        "corsPolicy",
        "headers",
    }
)
_ROUTE_DESTINATION = frozenset({"destination", "weight", "headers"})
_REDIRECT = frozenset({"uri", "authority", "port", "derivePort", "scheme", "redirectCode"})
_DIRECT_RESPONSE = frozenset({"status", "body"})
_BODY = frozenset({"string", "bytes"})
_DELEGATE = frozenset({"name", "namespace"})
_REWRITE = frozenset({"uri", "authority", "uriRegexRewrite"})
_REGEX_REWRITE = frozenset({"match", "rewrite"})
_RETRY = frozenset(
    {
        "attempts",
        "perTryTimeout",
        "retryOn",
        "retryRemoteLocalities",
        "retryIgnorePreviousHosts",
        "backoff",
    }
)
_FAULT = frozenset({"delay", "abort"})
_DELAY = frozenset({"fixedDelay", "exponentialDelay", "percentage", "percent"})
_ABORT = frozenset({"httpStatus", "grpcStatus", "http2Error", "percentage"})
_PERCENT = frozenset({"value"})
_MIRROR_POLICY = frozenset({"destination", "percentage"})

_RETRY_ON = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "envoy-ratelimited",
        "http3-post-connect-failure",
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)
# Istio accepts OK too (a "successful" abort); the fault model refuses it as pointless.
_GRPC_CODES = frozenset({"OK", *GRPC_STATUSES})
_HTTP_STATUS_CODES = frozenset(status.value for status in HTTPStatus)
_MAX_BODY = 1024 * 1024


def check_http_route(
    c: Checker, value: Any, path: str, *, delegate_vs: bool, gateway_bound: bool
) -> None:
    """Check one HTTPRoute; ``delegate_vs`` when the VirtualService has no hosts."""
    route = c.obj(value, path, _HTTP_ROUTE)
    if route is None:
        return
    c.text(route, path, "name")
    _check_conflicts(c, route, path, delegate_vs)
    for index, entry in enumerate(c.items(route, path, "match")):
        check_match(c, entry, f"{path}.match[{index}]", gateway_bound)
    destinations = c.items(route, path, "route")
    weights = []
    for index, item in enumerate(destinations):
        weights.append(_check_route_destination(c, item, f"{path}.route[{index}]"))
    check_weights(c, f"{path}.route", weights)
    _check_redirect(c, route, path)
    _check_direct_response(c, route, path)
    delegate = c.child(route, path, "delegate", _DELEGATE)
    if delegate is not None:
        name = c.text(delegate, f"{path}.delegate", "name", required=True)
        if name is not None and not is_dns1123_subdomain(name):
            c.invalid(f"{path}.delegate.name", name, "must be a DNS-1123 subdomain")
        namespace = c.text(delegate, f"{path}.delegate", "namespace")
        if namespace and not is_dns1123_label(namespace):
            c.invalid(f"{path}.delegate.namespace", namespace, "must be a DNS-1123 label")
    _check_rewrite(c, route, path)
    c.duration(route, path, "timeout")
    _check_retries(c, route, path)
    _check_fault(c, route, path)
    check_destination(c, route.get("mirror"), f"{path}.mirror")
    for index, item in enumerate(c.items(route, path, "mirrors")):
        mirror = c.obj(item, f"{path}.mirrors[{index}]", _MIRROR_POLICY)
        if mirror is not None:
            if mirror.get("destination") is None:
                c.required(f"{path}.mirrors[{index}].destination")
            check_destination(c, mirror.get("destination"), f"{path}.mirrors[{index}].destination")
            _check_percent(c, mirror, f"{path}.mirrors[{index}]", "percentage", strict=False)
    c.integer(route, path, "mirrorPercent", 0, 100)
    _check_percent(c, route, path, "mirrorPercentage", strict=False)
    check_cors(c, route, path)
    check_header_operations(c, route, path)


def _check_conflicts(c: Checker, route: Mapping[str, Any], path: str, delegate_vs: bool) -> None:
    present = {key for key, value in route.items() if value is not None}
    has_routes = isinstance(route.get("route"), list) and bool(route["route"])
    if "delegate" in present and delegate_vs:
        c.invalid(f"{path}.delegate", "object", "delegate HTTP route cannot contain delegate")
    if "delegate" in present and not delegate_vs:
        # A root route only hands over to its delegate; Istio allows nothing else to route.
        for key in ("redirect", "route"):
            if key in present:
                c.invalid(f"{path}.{key}", "object", "root HTTP route must not specify " + key)
    elif "redirect" in present:
        if has_routes:
            c.invalid(
                f"{path}.redirect", "object", "HTTP route cannot contain both route and redirect"
            )
        for key in ("fault", "rewrite", "directResponse"):
            if key in present:
                c.invalid(
                    f"{path}.{key}", "object", f"HTTP route cannot contain both {key} and redirect"
                )
    elif "directResponse" in present:
        if has_routes:
            c.invalid(
                f"{path}.directResponse",
                "object",
                "HTTP route cannot contain both route and directResponse",
            )
        for key in ("fault", "rewrite"):
            if key in present:
                c.invalid(
                    f"{path}.{key}",
                    "object",
                    f"HTTP route cannot contain both {key} and directResponse",
                )
    elif not has_routes:
        c.required(f"{path}.route", "HTTP route, redirect or directResponse is required")
    if "mirror" in present and route.get("mirrors"):
        c.invalid(f"{path}.mirrors", "array", "HTTP route cannot contain both mirror and mirrors")


def _check_route_destination(c: Checker, value: Any, path: str) -> int | None:
    item = c.obj(value, path, _ROUTE_DESTINATION)
    if item is None:
        return None
    if item.get("destination") is None:
        c.required(f"{path}.destination")
    check_destination(c, item.get("destination"), f"{path}.destination")
    check_header_operations(c, item, path)
    return c.integer(item, path, "weight", 0)


def _check_redirect(c: Checker, route: Mapping[str, Any], path: str) -> None:
    redirect = c.child(route, path, "redirect", _REDIRECT)
    if redirect is None:
        return
    path = f"{path}.redirect"
    if not any(redirect.get(key) for key in ("uri", "authority", "port", "derivePort", "scheme")):
        c.required(path, "redirect must specify uri, authority, scheme, port or derivePort")
    c.text(redirect, path, "uri")
    c.text(redirect, path, "authority")
    if redirect.get("port") is not None and redirect.get("derivePort") is not None:
        c.invalid(
            f"{path}.derivePort",
            redirect["derivePort"],
            "only one of port or derivePort may be set",
        )
    c.integer(redirect, path, "port", 1, 65535)
    c.enum(redirect, path, "derivePort", ("FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"))
    c.enum(redirect, path, "scheme", ("http", "https"))
    code = c.integer(redirect, path, "redirectCode", 0, UINT32_MAX)
    if code and not 300 <= code <= 399:
        c.invalid(f"{path}.redirectCode", code, "not a valid redirect code, must be 3xx")


def _check_direct_response(c: Checker, route: Mapping[str, Any], path: str) -> None:
    response = c.child(route, path, "directResponse", _DIRECT_RESPONSE)
    if response is None:
        return
    path = f"{path}.directResponse"
    # Istio lets 600 through but Envoy rejects it (status < 600): refuse it here.
    status = c.integer(response, path, "status", 0, UINT32_MAX, required=True)
    if status is not None and not 200 <= status <= 599:
        c.invalid(f"{path}.status", status, "status must be between 200 and 599")
    body = c.child(response, path, "body", _BODY)
    if body is None:
        return
    if body.get("string") is not None and body.get("bytes") is not None:
        c.invalid(f"{path}.body", "object", "only one of string or bytes may be set")
    size = len((c.text(body, f"{path}.body", "string") or "").encode())
    encoded = c.text(body, f"{path}.body", "bytes")
    if encoded is not None:
        try:
            size += len(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            c.invalid(f"{path}.body.bytes", encoded, "must be base64 encoded")
    if size > _MAX_BODY:
        c.invalid(f"{path}.body", "object", "direct response body must be less than 1MB")


def _check_rewrite(c: Checker, route: Mapping[str, Any], path: str) -> None:
    rewrite = c.child(route, path, "rewrite", _REWRITE)
    if rewrite is None:
        return
    path = f"{path}.rewrite"
    uri = c.text(rewrite, path, "uri")
    authority = c.text(rewrite, path, "authority")
    regex_rewrite = c.child(rewrite, path, "uriRegexRewrite", _REGEX_REWRITE)
    if uri and rewrite.get("uriRegexRewrite") is not None:
        c.invalid(path, "object", "rewrite may only contain one of uri or uriRegexRewrite")
    if not uri and rewrite.get("uriRegexRewrite") is None and not authority:
        c.required(path, "rewrite must specify at least one of uri, uriRegexRewrite or authority")
    if regex_rewrite is not None:
        sub = f"{path}.uriRegexRewrite"
        match = c.text(regex_rewrite, sub, "match")
        replacement = c.text(regex_rewrite, sub, "rewrite")
        if not match or not replacement:
            c.required(sub, "uriRegexRewrite requires both match and rewrite")
        if match:
            c.regex(f"{sub}.match", match)
    if authority:
        headers = route.get("headers")
        request = headers.get("request") if isinstance(headers, Mapping) else None
        for operation in ("set", "add"):
            ops = request.get(operation) if isinstance(request, Mapping) else None
            if isinstance(ops, Mapping) and any(k.lower() in ("host", ":authority") for k in ops):
                c.invalid(
                    f"{path}.authority", authority, "authority header cannot be set multiple times"
                )


def _check_retries(c: Checker, route: Mapping[str, Any], path: str) -> None:
    retries = c.child(route, path, "retries", _RETRY)
    if retries is None:
        return
    path = f"{path}.retries"
    attempts = c.integer(retries, path, "attempts")
    if attempts is not None and attempts < 0:
        c.invalid(f"{path}.attempts", attempts, "attempts cannot be negative")
    c.duration(retries, path, "perTryTimeout")
    c.duration(retries, path, "backoff")
    c.flag(retries, path, "retryRemoteLocalities")
    c.flag(retries, path, "retryIgnorePreviousHosts")
    retry_on = c.text(retries, path, "retryOn")
    if not attempts and any(
        retries.get(key) is not None
        for key in ("perTryTimeout", "retryOn", "retryRemoteLocalities")
    ):
        c.invalid(
            f"{path}.attempts",
            attempts or 0,
            "http retry policy configured when attempts are set to 0 (disabled)",
        )
    if retry_on:
        for policy in retry_on.split(","):
            # Istio does not trim spaces: "5xx, reset" is refused, as it is here.
            is_status = policy.isascii() and policy.isdigit() and int(policy) in _HTTP_STATUS_CODES
            if not is_status and policy not in _RETRY_ON:
                c.invalid(f"{path}.retryOn", policy, "not a valid retryOn policy")


def _check_percent(
    c: Checker, obj: Mapping[str, Any], path: str, key: str, *, strict: bool
) -> None:
    percent = c.child(obj, path, key, _PERCENT)
    if percent is None:
        return
    value = c.number(percent, f"{path}.{key}", "value")
    if value is None:
        return
    if not 0.0 <= value <= 100.0:
        c.invalid(f"{path}.{key}.value", value, "percentage must be in range [0, 100]")
    elif strict and 0.0 < value < 0.0001:
        # Envoy's fractional percent cannot express less than one in a million.
        c.invalid(
            f"{path}.{key}.value", value, "percentage is neither 0.0, nor in range [0.0001, 100.0]"
        )


def _check_fault(c: Checker, route: Mapping[str, Any], path: str) -> None:
    fault = c.child(route, path, "fault", _FAULT)
    if fault is None:
        return
    path = f"{path}.fault"
    if fault.get("delay") is None and fault.get("abort") is None:
        c.required(path, "HTTP fault injection must have an abort and/or a delay")
    delay = c.child(fault, path, "delay", _DELAY)
    if delay is not None:
        sub = f"{path}.delay"
        if delay.get("exponentialDelay") is not None:
            c.invalid(
                f"{sub}.exponentialDelay",
                delay["exponentialDelay"],
                "exponentialDelay not supported yet",
            )
        else:
            c.duration(delay, sub, "fixedDelay", required=True)
        _check_percent(c, delay, sub, "percentage", strict=True)
        c.integer(delay, sub, "percent", 0, 100)
    abort = c.child(fault, path, "abort", _ABORT)
    if abort is not None:
        sub = f"{path}.abort"
        kinds = [k for k in ("httpStatus", "grpcStatus", "http2Error") if abort.get(k) is not None]
        if not kinds:
            c.required(sub, "one of httpStatus or grpcStatus is required")
        elif len(kinds) > 1:
            c.invalid(sub, "object", "only one of httpStatus, grpcStatus or http2Error may be set")
        status = c.integer(abort, sub, "httpStatus")
        if status is not None and not 200 <= status <= 599:
            c.invalid(f"{sub}.httpStatus", status, "httpStatus must be between 200 and 599")
        grpc = c.text(abort, sub, "grpcStatus")
        if grpc is not None and grpc not in _GRPC_CODES:
            c.unsupported(f"{sub}.grpcStatus", grpc, _GRPC_CODES)
        if c.text(abort, sub, "http2Error") is not None:
            c.invalid(
                f"{sub}.http2Error",
                abort["http2Error"],
                "HTTP/2 abort fault injection not supported yet",
            )
        _check_percent(c, abort, sub, "percentage", strict=True)
