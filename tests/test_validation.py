"""Tests of the local control plane's Istio-like validation."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from chaosmesh_istio.localmesh.validation import (
    FieldError,
    parse_duration,
    validate,
    validate_destination_rule,
    validate_virtual_service,
)

FIXTURES = Path(__file__).parent / "fixtures" / "virtualservices.yaml"


def _dest(host: str = "reviews", **extra: Any) -> dict[str, Any]:
    return {"destination": {"host": host, **extra}}


def _route(**extra: Any) -> dict[str, Any]:
    """A valid HTTP route to reviews, with ``extra`` fields merged in."""
    return {"route": [_dest()], **extra}


def _vs(spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "default", **metadata},
        "spec": spec,
    }


def _http(*routes: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"hosts": ["reviews"], "http": list(routes), **spec}


def _dr(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": spec,
    }


def _fixtures() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = yaml.safe_load(FIXTURES.read_text())
    return loaded


@pytest.mark.parametrize("obj", _fixtures(), ids=lambda o: o["metadata"]["name"])
def test_fixture_virtual_services_are_valid(obj: dict[str, Any]) -> None:
    assert validate("VirtualService", obj) == []


def test_fixtures_cover_the_required_scenarios() -> None:
    text = FIXTURES.read_text()
    docs = _fixtures()
    assert len(docs) >= 8
    for needle in (
        "weight: 90",
        "exact: jason",
        "regex:",
        "prefix:",
        "retryOn",
        "timeout",
        "mirrorPercentage",
        "rewrite",
        "fault",
        "redirect",
        "directResponse",
        "- mesh",
        "catch-all",
        "delegate",
    ):
        assert needle in text, needle


VALID_SPECS = [
    (
        "canary",
        _http(
            {"route": [_dest(subset="v1") | {"weight": 90}, _dest(subset="v2") | {"weight": 10}]}
        ),
    ),
    ("one-destination-weight-zero", _http({"route": [_dest() | {"weight": 0}]})),
    (
        "weights-not-summing-to-100",
        _http({"route": [_dest() | {"weight": 1}, _dest() | {"weight": 2}]}),
    ),
    ("header-exact", _http(_route(match=[{"headers": {"x-user": {"exact": "jason"}}}]))),
    ("header-presence", _http(_route(match=[{"headers": {"x-user": {}}}]))),
    ("header-uppercase-name", _http(_route(match=[{"headers": {"X-User": {"exact": "a"}}}]))),
    ("uri-regex", _http(_route(match=[{"uri": {"regex": "/api/v[0-9]+/.*"}}]))),
    ("uri-empty-prefix", _http(_route(match=[{"uri": {"prefix": ""}}]))),
    ("or-entries", _http(_route(match=[{"uri": {"prefix": "/a"}}, {"uri": {"exact": "/b"}}]))),
    (
        "query-params",
        _http(_route(match=[{"queryParams": {"v": {"exact": ""}, "w": {"prefix": "x"}}}])),
    ),
    ("without-headers-star", _http(_route(match=[{"withoutHeaders": {"x-a": {"regex": "*"}}}]))),
    (
        "match-everything",
        _http(
            _route(
                match=[
                    {
                        "name": "m",
                        "method": {"exact": "GET"},
                        "scheme": {"exact": "http"},
                        "authority": {"prefix": "reviews"},
                        "port": 9080,
                        "sourceLabels": {"app": "web"},
                        "gateways": ["mesh"],
                        "ignoreUriCase": True,
                        "sourceNamespace": "web",
                        "statPrefix": "reviews",
                    }
                ]
            )
        ),
    ),
    (
        "retries",
        _http(
            _route(
                retries={
                    "attempts": 3,
                    "perTryTimeout": "500ms",
                    "retryOn": "5xx,gateway-error,429,retriable-status-codes",
                    "retryRemoteLocalities": True,
                }
            )
        ),
    ),
    ("retries-disabled", _http(_route(retries={"attempts": 0}))),
    ("timeout-compound", _http(_route(timeout="1m30s"))),
    (
        "fault-delay-and-abort",
        _http(
            _route(
                fault={
                    "delay": {"fixedDelay": "5s", "percentage": {"value": 0.5}},
                    "abort": {"httpStatus": 503, "percentage": {"value": 100}},
                }
            )
        ),
    ),
    ("fault-grpc-abort", _http(_route(fault={"abort": {"grpcStatus": "UNAVAILABLE"}}))),
    (
        "fault-delay-percent-int",
        _http(_route(fault={"delay": {"fixedDelay": "1ms", "percent": 50}})),
    ),
    (
        "mirror",
        _http(_route(mirror={"host": "reviews", "subset": "v2"}, mirrorPercentage={"value": 5})),
    ),
    (
        "mirrors",
        _http(_route(mirrors=[{"destination": {"host": "shadow"}, "percentage": {"value": 1}}])),
    ),
    ("rewrite-authority", _http(_route(rewrite={"authority": "reviews.internal"}))),
    (
        "rewrite-regex",
        _http(_route(rewrite={"uriRegexRewrite": {"match": "^/v1/(.*)", "rewrite": "/\\1"}})),
    ),
    (
        "redirect-derive-port",
        _http({"redirect": {"scheme": "https", "derivePort": "FROM_REQUEST_PORT"}}),
    ),
    (
        "direct-response-bytes",
        _http({"directResponse": {"status": 200, "body": {"bytes": "aGVsbG8="}}}),
    ),
    (
        "headers-ops",
        _http(
            _route(
                headers={
                    "request": {"set": {"x-a": "1", "host": "h"}, "remove": ["x-b"]},
                    "response": {"add": {"x-c": "100%%"}},
                }
            )
        ),
    ),
    (
        "cors",
        _http(
            _route(
                corsPolicy={
                    "allowOrigins": [{"exact": "https://a.example"}],
                    "allowMethods": ["GET", "POST"],
                    "allowHeaders": ["x-a"],
                    "maxAge": "24h",
                    "allowCredentials": False,
                }
            )
        ),
    ),
    ("delegate-vs", {"http": [_route(match=[{"uri": {"prefix": "/r"}}])]}),
    (
        "root-with-delegate",
        _http(
            {
                "match": [{"uri": {"prefix": "/r"}}],
                "delegate": {"name": "reviews-delegate", "namespace": "bookinfo"},
            }
        ),
    ),
    (
        "gateway-wildcard-host",
        {"hosts": ["*"], "gateways": ["istio-system/gw"], "http": [_route()]},
    ),
    ("wildcard-host", {"hosts": ["*.example.com"], "http": [_route()]}),
    ("ip-host", {"hosts": ["10.0.0.1"], "http": [_route()]}),
    ("export-to", _http(_route(), exportTo=[".", "other-ns"])),
    (
        "tcp",
        {
            "hosts": ["mongo"],
            "tcp": [
                {"match": [{"port": 27017}], "route": [_dest("mongo", port={"number": 27017})]}
            ],
        },
    ),
    (
        "tls",
        {
            "hosts": ["*.example.com"],
            "tls": [
                {
                    "match": [{"sniHosts": ["a.example.com"], "port": 443}],
                    "route": [_dest("a.example.com")],
                }
            ],
        },
    ),
    (
        "jwt-claim-on-gateway",
        {
            "hosts": ["api.example.com"],
            "gateways": ["ns/gw"],
            "http": [
                _route(match=[{"headers": {"@request.auth.claims.group": {"exact": "admin"}}}])
            ],
        },
    ),
]


@pytest.mark.parametrize(("case", "spec"), VALID_SPECS, ids=[c for c, _ in VALID_SPECS])
def test_valid_virtual_services_are_accepted(case: str, spec: dict[str, Any]) -> None:
    assert validate("VirtualService", _vs(spec)) == []


INVALID_SPECS = [
    # (case, spec, field, reason, message fragment)
    ("no-routes", {"hosts": ["reviews"]}, "spec.http", "FieldValueRequired", "http, tcp or tls"),
    (
        "hosts-not-list",
        {"hosts": "reviews", "http": [_route()]},
        "spec.hosts",
        "FieldValueTypeInvalid",
        "must be of type array",
    ),
    (
        "host-not-string",
        {"hosts": [7], "http": [_route()]},
        "spec.hosts[0]",
        "FieldValueTypeInvalid",
        "must be of type string",
    ),
    (
        "bad-host",
        {"hosts": ["re views"], "http": [_route()]},
        "spec.hosts[0]",
        "FieldValueInvalid",
        "invalid",
    ),
    (
        "star-host-on-mesh",
        {"hosts": ["*"], "http": [_route()]},
        "spec.hosts[0]",
        "FieldValueInvalid",
        "mesh",
    ),
    (
        "duplicate-hosts",
        {"hosts": ["*.example.com", "a.example.com"], "http": [_route()]},
        "spec.hosts[1]",
        "FieldValueDuplicate",
        "a.example.com",
    ),
    (
        "unknown-spec-field",
        _http(_route(), host="x"),
        "spec.host",
        "FieldValueNotSupported",
        "unknown field",
    ),
    (
        "unknown-route-field",
        _http(_route(fualt={})),
        "spec.http[0].fualt",
        "FieldValueNotSupported",
        '"fault"',
    ),
    (
        "unknown-match-field",
        _http(_route(match=[{"url": {"prefix": "/"}}])),
        "spec.http[0].match[0].url",
        "FieldValueNotSupported",
        "unknown field",
    ),
    ("no-action", _http({"name": "x"}), "spec.http[0].route", "FieldValueRequired", "redirect"),
    (
        "route-and-redirect",
        _http(_route(redirect={"uri": "/x"})),
        "spec.http[0].redirect",
        "FieldValueInvalid",
        "both route and redirect",
    ),
    (
        "fault-and-redirect",
        _http({"redirect": {"uri": "/x"}, "fault": {"abort": {"httpStatus": 500}}}),
        "spec.http[0].fault",
        "FieldValueInvalid",
        "fault and redirect",
    ),
    (
        "route-and-direct-response",
        _http(_route(directResponse={"status": 200})),
        "spec.http[0].directResponse",
        "FieldValueInvalid",
        "route and directResponse",
    ),
    (
        "root-delegate-with-route",
        _http(_route(delegate={"name": "d"})),
        "spec.http[0].route",
        "FieldValueInvalid",
        "root HTTP route",
    ),
    (
        "delegate-in-delegate-vs",
        {"http": [_route(delegate={"name": "d"})]},
        "spec.http[0].delegate",
        "FieldValueInvalid",
        "cannot contain delegate",
    ),
    (
        "delegate-vs-with-gateways",
        {"gateways": ["ns/gw"], "http": [_route()]},
        "spec.gateways",
        "FieldValueInvalid",
        "delegate virtual service",
    ),
    (
        "delegate-without-name",
        _http({"delegate": {"namespace": "x"}}),
        "spec.http[0].delegate.name",
        "FieldValueRequired",
        "",
    ),
    (
        "mirror-and-mirrors",
        _http(_route(mirror={"host": "a"}, mirrors=[{"destination": {"host": "b"}}])),
        "spec.http[0].mirrors",
        "FieldValueInvalid",
        "mirror and mirrors",
    ),
    (
        "destination-host-missing",
        _http({"route": [{"destination": {"subset": "v1"}}]}),
        "spec.http[0].route[0].destination.host",
        "FieldValueRequired",
        "",
    ),
    (
        "destination-missing",
        _http({"route": [{"weight": 100}]}),
        "spec.http[0].route[0].destination",
        "FieldValueRequired",
        "",
    ),
    (
        "destination-star",
        _http({"route": [_dest("*")]}),
        "spec.http[0].route[0].destination.host",
        "FieldValueInvalid",
        "invalid destination host",
    ),
    (
        "bad-subset",
        _http({"route": [_dest(subset="v_1")]}),
        "spec.http[0].route[0].destination.subset",
        "FieldValueInvalid",
        "subset name",
    ),
    (
        "port-out-of-range",
        _http({"route": [_dest(port={"number": 70000})]}),
        "spec.http[0].route[0].destination.port.number",
        "FieldValueInvalid",
        "65535",
    ),
    (
        "weight-negative",
        _http({"route": [_dest() | {"weight": -1}]}),
        "spec.http[0].route[0].weight",
        "FieldValueInvalid",
        "between 0",
    ),
    (
        "weight-bool",
        _http({"route": [_dest() | {"weight": True}]}),
        "spec.http[0].route[0].weight",
        "FieldValueTypeInvalid",
        "integer",
    ),
    (
        "weight-float",
        _http({"route": [_dest() | {"weight": 50.0}]}),
        "spec.http[0].route[0].weight",
        "FieldValueTypeInvalid",
        "integer",
    ),
    (
        "weights-all-zero",
        _http({"route": [_dest() | {"weight": 0}, _dest() | {"weight": 0}]}),
        "spec.http[0].route",
        "FieldValueInvalid",
        "total destination weight = 0",
    ),
    (
        "uri-two-kinds",
        _http(_route(match=[{"uri": {"exact": "/a", "prefix": "/a"}}])),
        "spec.http[0].match[0].uri",
        "FieldValueInvalid",
        "only one of",
    ),
    (
        "uri-bad-regex",
        _http(_route(match=[{"uri": {"regex": "/a(b"}}])),
        "spec.http[0].match[0].uri.regex",
        "FieldValueInvalid",
        "RE2",
    ),
    (
        "uri-lookahead-regex",
        _http(_route(match=[{"uri": {"regex": "(?=a)b"}}])),
        "spec.http[0].match[0].uri.regex",
        "FieldValueInvalid",
        "RE2",
    ),
    (
        "header-empty-prefix",
        _http(_route(match=[{"headers": {"x-a": {"prefix": ""}}}])),
        "spec.http[0].match[0].headers[x-a].prefix",
        "FieldValueInvalid",
        "should not be empty",
    ),
    (
        "header-star-regex",
        _http(_route(match=[{"headers": {"x-a": {"regex": "*"}}}])),
        "spec.http[0].match[0].headers[x-a].regex",
        "FieldValueInvalid",
        "RE2",
    ),
    (
        "header-bad-name",
        _http(_route(match=[{"headers": {"x a": {"exact": "1"}}}])),
        "spec.http[0].match[0].headers[x a]",
        "FieldValueInvalid",
        "header name",
    ),
    (
        "header-null",
        _http(_route(match=[{"headers": {"x-a": None}}])),
        "spec.http[0].match[0].headers[x-a]",
        "FieldValueInvalid",
        "cannot be null",
    ),
    (
        "query-empty-regex",
        _http(_route(match=[{"queryParams": {"q": {"regex": ""}}}])),
        "spec.http[0].match[0].queryParams[q].regex",
        "FieldValueInvalid",
        "should not be empty",
    ),
    (
        "string-match-not-object",
        _http(_route(match=[{"method": "GET"}])),
        "spec.http[0].match[0].method",
        "FieldValueTypeInvalid",
        "object",
    ),
    (
        "ignore-uri-case-string",
        _http(_route(match=[{"ignoreUriCase": "true"}])),
        "spec.http[0].match[0].ignoreUriCase",
        "FieldValueTypeInvalid",
        "boolean",
    ),
    (
        "match-port-zero-ok-but-bad",
        _http(_route(match=[{"port": 65536}])),
        "spec.http[0].match[0].port",
        "FieldValueInvalid",
        "65535",
    ),
    (
        "source-labels-bad-value",
        _http(_route(match=[{"sourceLabels": {"app": "a b"}}])),
        "spec.http[0].match[0].sourceLabels[app]",
        "FieldValueInvalid",
        "label value",
    ),
    (
        "source-namespace-bad",
        _http(_route(match=[{"sourceNamespace": "Web_NS"}])),
        "spec.http[0].match[0].sourceNamespace",
        "FieldValueInvalid",
        "sourceNamespace",
    ),
    (
        "gateway-bad-namespace",
        _http(_route(), gateways=["Bad_NS/gw"]),
        "spec.gateways[0]",
        "FieldValueInvalid",
        "namespace",
    ),
    (
        "jwt-claim-on-mesh",
        _http(_route(match=[{"headers": {"@request.auth.claims.g": {"exact": "a"}}}])),
        "spec.http[0].match[0].headers[@request.auth.claims.g]",
        "FieldValueInvalid",
        "JWT",
    ),
    (
        "timeout-not-duration",
        _http(_route(timeout="10")),
        "spec.http[0].timeout",
        "FieldValueInvalid",
        "missing unit",
    ),
    (
        "timeout-zero",
        _http(_route(timeout="0s")),
        "spec.http[0].timeout",
        "FieldValueInvalid",
        "1ms",
    ),
    (
        "timeout-sub-ms",
        _http(_route(timeout="1.5ms")),
        "spec.http[0].timeout",
        "FieldValueInvalid",
        "ms precision",
    ),
    (
        "timeout-number",
        _http(_route(timeout=5)),
        "spec.http[0].timeout",
        "FieldValueTypeInvalid",
        "string",
    ),
    (
        "retries-negative",
        _http(_route(retries={"attempts": -1})),
        "spec.http[0].retries.attempts",
        "FieldValueInvalid",
        "negative",
    ),
    (
        "retries-without-attempts",
        _http(_route(retries={"perTryTimeout": "1s"})),
        "spec.http[0].retries.attempts",
        "FieldValueInvalid",
        "attempts are set to 0",
    ),
    (
        "retry-on-unknown",
        _http(_route(retries={"attempts": 2, "retryOn": "5xx,sometimes"})),
        "spec.http[0].retries.retryOn",
        "FieldValueInvalid",
        '"sometimes"',
    ),
    (
        "retry-on-spaces",
        _http(_route(retries={"attempts": 2, "retryOn": "5xx, reset"})),
        "spec.http[0].retries.retryOn",
        "FieldValueInvalid",
        '" reset"',
    ),
    (
        "retry-on-unknown-status",
        _http(_route(retries={"attempts": 2, "retryOn": "599"})),
        "spec.http[0].retries.retryOn",
        "FieldValueInvalid",
        "599",
    ),
    (
        "per-try-timeout-tiny",
        _http(_route(retries={"attempts": 2, "perTryTimeout": "500us"})),
        "spec.http[0].retries.perTryTimeout",
        "FieldValueInvalid",
        "1ms",
    ),
    (
        "fault-empty",
        _http(_route(fault={})),
        "spec.http[0].fault",
        "FieldValueRequired",
        "abort and/or",
    ),
    (
        "abort-status-high",
        _http(_route(fault={"abort": {"httpStatus": 700}})),
        "spec.http[0].fault.abort.httpStatus",
        "FieldValueInvalid",
        "Invalid value: 700: httpStatus",
    ),
    (
        "abort-status-600",
        _http(_route(fault={"abort": {"httpStatus": 600}})),
        "spec.http[0].fault.abort.httpStatus",
        "FieldValueInvalid",
        "between 200 and 599",
    ),
    (
        "abort-status-low",
        _http(_route(fault={"abort": {"httpStatus": 199}})),
        "spec.http[0].fault.abort.httpStatus",
        "FieldValueInvalid",
        "between 200 and 599",
    ),
    (
        "abort-status-string",
        _http(_route(fault={"abort": {"httpStatus": "503"}})),
        "spec.http[0].fault.abort.httpStatus",
        "FieldValueTypeInvalid",
        "integer",
    ),
    (
        "abort-no-kind",
        _http(_route(fault={"abort": {"percentage": {"value": 5}}})),
        "spec.http[0].fault.abort",
        "FieldValueRequired",
        "httpStatus or grpcStatus",
    ),
    (
        "abort-two-kinds",
        _http(_route(fault={"abort": {"httpStatus": 500, "grpcStatus": "INTERNAL"}})),
        "spec.http[0].fault.abort",
        "FieldValueInvalid",
        "only one of",
    ),
    (
        "abort-grpc-unknown",
        _http(_route(fault={"abort": {"grpcStatus": "BROKEN"}})),
        "spec.http[0].fault.abort.grpcStatus",
        "FieldValueNotSupported",
        "UNAVAILABLE",
    ),
    (
        "abort-http2",
        _http(_route(fault={"abort": {"http2Error": "REFUSED_STREAM"}})),
        "spec.http[0].fault.abort.http2Error",
        "FieldValueInvalid",
        "not supported",
    ),
    (
        "abort-percentage-high",
        _http(_route(fault={"abort": {"httpStatus": 503, "percentage": {"value": 101}}})),
        "spec.http[0].fault.abort.percentage.value",
        "FieldValueInvalid",
        "[0, 100]",
    ),
    (
        "abort-percentage-tiny",
        _http(_route(fault={"abort": {"httpStatus": 503, "percentage": {"value": 1e-5}}})),
        "spec.http[0].fault.abort.percentage.value",
        "FieldValueInvalid",
        "0.0001",
    ),
    (
        "abort-percentage-string",
        _http(_route(fault={"abort": {"httpStatus": 503, "percentage": {"value": "5"}}})),
        "spec.http[0].fault.abort.percentage.value",
        "FieldValueTypeInvalid",
        "number",
    ),
    (
        "delay-missing-fixed",
        _http(_route(fault={"delay": {"percentage": {"value": 5}}})),
        "spec.http[0].fault.delay.fixedDelay",
        "FieldValueRequired",
        "",
    ),
    (
        "delay-exponential",
        _http(_route(fault={"delay": {"exponentialDelay": "1s"}})),
        "spec.http[0].fault.delay.exponentialDelay",
        "FieldValueInvalid",
        "not supported",
    ),
    (
        "delay-percent-high",
        _http(_route(fault={"delay": {"fixedDelay": "1s", "percent": 101}})),
        "spec.http[0].fault.delay.percent",
        "FieldValueInvalid",
        "between 0 and 100",
    ),
    (
        "mirror-percentage-high",
        _http(_route(mirror={"host": "a"}, mirrorPercentage={"value": 150})),
        "spec.http[0].mirrorPercentage.value",
        "FieldValueInvalid",
        "[0, 100]",
    ),
    (
        "mirrors-no-destination",
        _http(_route(mirrors=[{"percentage": {"value": 5}}])),
        "spec.http[0].mirrors[0].destination",
        "FieldValueRequired",
        "",
    ),
    (
        "redirect-empty",
        _http({"redirect": {"redirectCode": 301}}),
        "spec.http[0].redirect",
        "FieldValueRequired",
        "redirect must specify",
    ),
    (
        "redirect-code",
        _http({"redirect": {"uri": "/x", "redirectCode": 200}}),
        "spec.http[0].redirect.redirectCode",
        "FieldValueInvalid",
        "3xx",
    ),
    (
        "redirect-scheme",
        _http({"redirect": {"scheme": "ftp"}}),
        "spec.http[0].redirect.scheme",
        "FieldValueNotSupported",
        '"https"',
    ),
    (
        "redirect-derive-port",
        _http({"redirect": {"derivePort": "FROM_NOWHERE"}}),
        "spec.http[0].redirect.derivePort",
        "FieldValueNotSupported",
        "FROM_REQUEST_PORT",
    ),
    (
        "direct-response-status",
        _http({"directResponse": {"status": 100}}),
        "spec.http[0].directResponse.status",
        "FieldValueInvalid",
        "200 and 599",
    ),
    (
        "direct-response-no-status",
        _http({"directResponse": {"body": {"string": "x"}}}),
        "spec.http[0].directResponse.status",
        "FieldValueRequired",
        "",
    ),
    (
        "direct-response-bad-bytes",
        _http({"directResponse": {"status": 200, "body": {"bytes": "!!"}}}),
        "spec.http[0].directResponse.body.bytes",
        "FieldValueInvalid",
        "base64",
    ),
    (
        "rewrite-empty",
        _http(_route(rewrite={})),
        "spec.http[0].rewrite",
        "FieldValueRequired",
        "at least one",
    ),
    (
        "rewrite-both-uri-kinds",
        _http(_route(rewrite={"uri": "/a", "uriRegexRewrite": {"match": "a", "rewrite": "b"}})),
        "spec.http[0].rewrite",
        "FieldValueInvalid",
        "only contain one",
    ),
    (
        "rewrite-regex-incomplete",
        _http(_route(rewrite={"uriRegexRewrite": {"match": "a"}})),
        "spec.http[0].rewrite.uriRegexRewrite",
        "FieldValueRequired",
        "both match and rewrite",
    ),
    (
        "rewrite-authority-twice",
        _http(_route(rewrite={"authority": "a"}, headers={"request": {"set": {"host": "b"}}})),
        "spec.http[0].rewrite.authority",
        "FieldValueInvalid",
        "multiple times",
    ),
    (
        "headers-remove-host",
        _http(_route(headers={"request": {"remove": ["Host"]}})),
        "spec.http[0].headers.request.remove[0]",
        "FieldValueInvalid",
        "Host",
    ),
    (
        "headers-response-pseudo",
        _http(_route(headers={"response": {"set": {":status": "200"}}})),
        "spec.http[0].headers.response.set",
        "FieldValueInvalid",
        ":",
    ),
    (
        "headers-bad-value",
        _http(_route(headers={"request": {"set": {"x-a": "50%"}}})),
        "spec.http[0].headers.request.set[x-a]",
        "FieldValueInvalid",
        "variable",
    ),
    (
        "headers-value-not-string",
        _http(_route(headers={"request": {"set": {"x-a": 1}}})),
        "spec.http[0].headers.request.set[x-a]",
        "FieldValueTypeInvalid",
        "string",
    ),
    (
        "cors-method",
        _http(_route(corsPolicy={"allowMethods": ["FETCH"]})),
        "spec.http[0].corsPolicy.allowMethods[0]",
        "FieldValueNotSupported",
        "GET",
    ),
    (
        "cors-max-age-ms",
        _http(_route(corsPolicy={"maxAge": "1500ms"})),
        "spec.http[0].corsPolicy.maxAge",
        "FieldValueInvalid",
        "seconds precision",
    ),
    (
        "export-to-duplicate",
        _http(_route(), exportTo=[".", "default"]),
        "spec.exportTo[1]",
        "FieldValueDuplicate",
        "",
    ),
    (
        "export-to-star-and-more",
        _http(_route(), exportTo=["*", "a"]),
        "spec.exportTo",
        "FieldValueInvalid",
        "public",
    ),
    (
        "tcp-no-route",
        {"hosts": ["db"], "tcp": [{"match": [{"port": 5432}]}]},
        "spec.tcp[0].route",
        "FieldValueRequired",
        "TCP route",
    ),
    (
        "tcp-bad-subnet",
        {
            "hosts": ["db"],
            "tcp": [{"match": [{"destinationSubnets": ["10.0.0.0/33"]}], "route": [_dest("db")]}],
        },
        "spec.tcp[0].match[0].destinationSubnets[0]",
        "FieldValueInvalid",
        "CIDR",
    ),
    (
        "tls-no-match",
        {"hosts": ["a.example.com"], "tls": [{"route": [_dest("a.example.com")]}]},
        "spec.tls[0].match",
        "FieldValueRequired",
        "at least one match",
    ),
    (
        "tls-sni-outside-hosts",
        {
            "hosts": ["a.example.com"],
            "tls": [
                {"match": [{"sniHosts": ["b.example.com"]}], "route": [_dest("a.example.com")]}
            ],
        },
        "spec.tls[0].match[0].sniHosts[0]",
        "FieldValueInvalid",
        "SNI host",
    ),
]


@pytest.mark.parametrize(
    ("case", "spec", "field", "reason", "fragment"),
    INVALID_SPECS,
    ids=[case[0] for case in INVALID_SPECS],
)
def test_invalid_virtual_services_are_rejected(
    case: str, spec: dict[str, Any], field: str, reason: str, fragment: str
) -> None:
    errors = validate("VirtualService", _vs(spec))
    matching = [e for e in errors if e.field == field and e.reason == reason]
    assert matching, f"{case}: no {reason} on {field} in {errors}"
    assert any(fragment in e.message for e in matching), matching


METADATA_CASES = [
    ({"namespace": "default"}, "metadata.name", "FieldValueRequired"),
    ({"name": "Reviews"}, "metadata.name", "FieldValueInvalid"),
    ({"name": "a" * 254}, "metadata.name", "FieldValueInvalid"),
    ({"name": "r", "namespace": "my.ns"}, "metadata.namespace", "FieldValueInvalid"),
    ({"name": "r", "labels": {"app": 1}}, "metadata.labels[app]", "FieldValueTypeInvalid"),
    ({"name": "r", "labels": {"bad key!": "x"}}, "metadata.labels", "FieldValueInvalid"),
    ({"name": "r", "labels": {"app": "-x"}}, "metadata.labels[app]", "FieldValueInvalid"),
    (
        {"name": "r", "annotations": {"a": ["x"]}},
        "metadata.annotations[a]",
        "FieldValueTypeInvalid",
    ),
    ({"name": "r", "annotations": "x"}, "metadata.annotations", "FieldValueTypeInvalid"),
    ({"name": "r", "color": "blue"}, "metadata.color", "FieldValueNotSupported"),
]


@pytest.mark.parametrize(("metadata", "field", "reason"), METADATA_CASES)
def test_metadata_rules(metadata: dict[str, Any], field: str, reason: str) -> None:
    obj = _vs(_http(_route()))
    obj["metadata"] = metadata
    assert any(e.field == field and e.reason == reason for e in validate("VirtualService", obj))


def test_valid_metadata_with_labels_and_annotations() -> None:
    obj = _vs(
        _http(_route()),
        labels={"app.kubernetes.io/name": "reviews", "tier": ""},
        annotations={"chaos.example.com/run": "r-1", "note": "any text: ok"},
        resourceVersion="12",
        uid="abc",
        generation=3,
    )
    assert validate("VirtualService", obj) == []


TOP_LEVEL_CASES = [
    ("apiVersion", "networking.istio.io/v2", "apiVersion", "FieldValueNotSupported"),
    ("kind", "DestinationRule", "kind", "FieldValueNotSupported"),
    ("spec", None, "spec", "FieldValueRequired"),
    ("spec", [], "spec", "FieldValueTypeInvalid"),
    ("metadata", None, "metadata", "FieldValueRequired"),
    ("extra", 1, "extra", "FieldValueNotSupported"),
]


@pytest.mark.parametrize(("key", "value", "field", "reason"), TOP_LEVEL_CASES)
def test_top_level_rules(key: str, value: Any, field: str, reason: str) -> None:
    obj = _vs(_http(_route()))
    obj[key] = value
    assert any(e.field == field and e.reason == reason for e in validate("VirtualService", obj))


@pytest.mark.parametrize("version", ["v1", "v1beta1", "v1alpha3"])
def test_all_istio_api_versions_are_accepted(version: str) -> None:
    obj = _vs(_http(_route()))
    obj["apiVersion"] = f"networking.istio.io/{version}"
    assert validate("VirtualService", obj) == []


def test_every_error_is_collected() -> None:
    spec = _http(
        _route(timeout="soon", fault={"abort": {"httpStatus": 700}}, bogus=1),
        {"route": [_dest("*") | {"weight": -5}]},
    )
    fields = {e.field for e in validate("VirtualService", _vs(spec, name="Bad_Name"))}
    assert fields >= {
        "metadata.name",
        "spec.http[0].timeout",
        "spec.http[0].fault.abort.httpStatus",
        "spec.http[0].bogus",
        "spec.http[1].route[0].destination.host",
        "spec.http[1].route[0].weight",
    }


def test_wrong_types_do_not_cascade_into_other_errors() -> None:
    errors = validate("VirtualService", _vs(_http(_route(retries="3"))))
    assert [(e.field, e.reason) for e in errors] == [
        ("spec.http[0].retries", "FieldValueTypeInvalid")
    ]


def test_messages_read_like_kubernetes() -> None:
    errors = validate("VirtualService", _vs(_http(_route(fault={"abort": {"httpStatus": 700}}))))
    assert errors == [
        FieldError(
            "spec.http[0].fault.abort.httpStatus",
            "Invalid value: 700: httpStatus must be between 200 and 599",
        )
    ]
    (type_error,) = validate("VirtualService", _vs({"hosts": "r", "http": [_route()]}))
    assert type_error.message == (
        'Invalid value: "string": spec.hosts in body must be of type array: "string"'
    )


def test_spec_helpers_validate_spec_alone() -> None:
    assert validate_virtual_service(_http(_route())) == []
    assert validate_virtual_service({"hosts": ["r"]})[0].field == "spec.http"
    assert validate_destination_rule({"host": "reviews"}) == []
    assert validate_destination_rule({})[0].field == "spec.host"


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="Gateway"):
        validate("Gateway", {})


def test_validation_does_not_mutate_its_input() -> None:
    obj = _fixtures()[0]
    before = copy.deepcopy(obj)
    validate("VirtualService", obj)
    assert obj == before


VALID_DR_SPECS = [
    {
        "host": "reviews",
        "subsets": [
            {"name": "v1", "labels": {"version": "v1"}},
            {"name": "v2", "labels": {"version": "v2"}},
        ],
    },
    {
        "host": "reviews.default.svc.cluster.local",
        "trafficPolicy": {
            "loadBalancer": {"simple": "LEAST_REQUEST"},
            "connectionPool": {
                "tcp": {
                    "maxConnections": 100,
                    "connectTimeout": "30ms",
                    "tcpKeepalive": {"time": "7200s", "interval": "75s"},
                },
                "http": {
                    "http2MaxRequests": 1000,
                    "maxRequestsPerConnection": 10,
                    "h2UpgradePolicy": "UPGRADE",
                },
            },
            "outlierDetection": {
                "consecutive5xxErrors": 7,
                "interval": "5m",
                "baseEjectionTime": "15m",
                "maxEjectionPercent": 50,
            },
            "tls": {"mode": "ISTIO_MUTUAL"},
            "portLevelSettings": [
                {"port": {"number": 80}, "loadBalancer": {"simple": "ROUND_ROBIN"}}
            ],
        },
    },
    {
        "host": "*.example.com",
        "trafficPolicy": {
            "loadBalancer": {"consistentHash": {"httpCookie": {"name": "user", "ttl": "0.5s"}}}
        },
        "exportTo": ["."],
        "workloadSelector": {"matchLabels": {"app": "gw"}},
    },
    {"host": "ratings", "trafficPolicy": {"connectionPool": {"tcp": {"idleTimeout": "0s"}}}},
]


@pytest.mark.parametrize("spec", VALID_DR_SPECS)
def test_valid_destination_rules_are_accepted(spec: dict[str, Any]) -> None:
    assert validate("DestinationRule", _dr(spec)) == []


INVALID_DR_SPECS = [
    ({"subsets": []}, "spec.host", "FieldValueRequired"),
    ({"host": "a b"}, "spec.host", "FieldValueInvalid"),
    (
        {"host": "r", "subsets": [{"labels": {"v": "1"}}]},
        "spec.subsets[0].name",
        "FieldValueRequired",
    ),
    (
        {"host": "r", "subsets": [{"name": "v1"}, {"name": "v1"}]},
        "spec.subsets[1].name",
        "FieldValueDuplicate",
    ),
    (
        {"host": "r", "subsets": [{"name": "v1", "labels": {"version": 1}}]},
        "spec.subsets[0].labels[version]",
        "FieldValueTypeInvalid",
    ),
    (
        {"host": "r", "subsets": [{"name": "v1", "lables": {}}]},
        "spec.subsets[0].lables",
        "FieldValueNotSupported",
    ),
    ({"host": "r", "trafficPolicy": {}}, "spec.trafficPolicy", "FieldValueRequired"),
    (
        {"host": "r", "trafficPolicy": {"loadBalancer": {"simple": "FASTEST"}}},
        "spec.trafficPolicy.loadBalancer.simple",
        "FieldValueNotSupported",
    ),
    (
        {"host": "r", "trafficPolicy": {"connectionPool": {}}},
        "spec.trafficPolicy.connectionPool",
        "FieldValueRequired",
    ),
    (
        {"host": "r", "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": -1}}}},
        "spec.trafficPolicy.connectionPool.tcp.maxConnections",
        "FieldValueInvalid",
    ),
    (
        {"host": "r", "trafficPolicy": {"connectionPool": {"tcp": {"connectTimeout": "fast"}}}},
        "spec.trafficPolicy.connectionPool.tcp.connectTimeout",
        "FieldValueInvalid",
    ),
    (
        {"host": "r", "trafficPolicy": {"outlierDetection": {"maxEjectionPercent": 120}}},
        "spec.trafficPolicy.outlierDetection.maxEjectionPercent",
        "FieldValueInvalid",
    ),
    (
        {"host": "r", "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": "5"}}},
        "spec.trafficPolicy.outlierDetection.consecutive5xxErrors",
        "FieldValueTypeInvalid",
    ),
    (
        {"host": "r", "trafficPolicy": {"tls": {"mode": "MUTUAL"}}},
        "spec.trafficPolicy.tls.clientCertificate",
        "FieldValueRequired",
    ),
    (
        {
            "host": "r",
            "trafficPolicy": {"portLevelSettings": [{"loadBalancer": {"simple": "RANDOM"}}]},
        },
        "spec.trafficPolicy.portLevelSettings[0].port",
        "FieldValueRequired",
    ),
    (
        {
            "host": "r",
            "trafficPolicy": {"loadBalancer": {"consistentHash": {"maglev": {"tableSize": 1000}}}},
        },
        "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
        "FieldValueInvalid",
    ),
    (
        {"host": "r", "workloadSelector": {"matchLabels": {"app": "*"}}},
        "spec.workloadSelector.matchLabels",
        "FieldValueInvalid",
    ),
]


@pytest.mark.parametrize(("spec", "field", "reason"), INVALID_DR_SPECS)
def test_invalid_destination_rules_are_rejected(
    spec: dict[str, Any], field: str, reason: str
) -> None:
    errors = validate("DestinationRule", _dr(spec))
    assert any(e.field == field and e.reason == reason for e in errors), errors


DURATIONS = [
    ("5s", 5.0),
    ("100ms", 0.1),
    ("1.5s", 1.5),
    ("1m30s", 90.0),
    ("2h", 7200.0),
    ("0", 0.0),
    ("250us", 0.00025),
    ("1h2m3.5s", 3723.5),
    (".5s", 0.5),
    ("-1s", -1.0),
    ("+2m", 120.0),
]


@pytest.mark.parametrize(("text", "seconds"), DURATIONS)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "s", "1.s.", "5 s", "1d", "ms", "1s5", "--1s", "."])
def test_parse_duration_rejects_non_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["ms", "s", "m", "h"]))
def test_parse_duration_scales_units(amount: int, unit: str) -> None:
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    assert parse_duration(f"{amount}{unit}") == pytest.approx(amount * scale)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "hosts",
                    "http",
                    "route",
                    "match",
                    "destination",
                    "host",
                    "weight",
                    "fault",
                    "abort",
                    "delay",
                    "headers",
                    "uri",
                    "exact",
                    "regex",
                    "subsets",
                    "name",
                    "tcp",
                    "tls",
                    "x",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300)
@given(_json)
def test_arbitrary_json_never_crashes_the_validator(spec: Any) -> None:
    for kind in ("VirtualService", "DestinationRule"):
        obj = _vs(spec) if kind == "VirtualService" else _dr(spec)
        errors = validate(kind, obj)
        assert all(isinstance(e, FieldError) and e.field and e.message for e in errors)
