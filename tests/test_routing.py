"""Tests of Istio request-routing semantics (chaosmesh_istio.localmesh.routing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from chaosmesh_istio.localmesh.routing import (
    Request,
    gateway_matches,
    host_matches,
    match_entry_matches,
    route_matches,
    select_route,
    string_matches,
)

FIXTURES = Path(__file__).parent / "fixtures" / "virtualservices.yaml"

STRING_CASES = [
    ({"exact": "jason"}, "jason", False, True),
    ({"exact": "jason"}, "Jason", False, False),
    ({"exact": "jason"}, "JASON", True, True),
    ({"exact": "jason"}, None, False, False),
    ({"exact": ""}, "", False, True),
    ({"exact": ""}, "x", False, False),
    ({"prefix": "/api"}, "/api/v1", False, True),
    ({"prefix": "/api"}, "/ap", False, False),
    ({"prefix": "/API"}, "/api/v1", True, True),
    ({"regex": "v[0-9]+"}, "v12", False, True),
    ({"regex": "v[0-9]+"}, "xv12", False, False),  # full match, not search
    ({"regex": "v[0-9]+"}, "v12x", False, False),
    ({"regex": "V[0-9]+"}, "v1", True, False),  # Envoy ignores case-insensitivity for regexes
    ({"regex": ".*"}, "", False, True),
    ({"regex": "*"}, "anything", False, True),  # Istio's presence shorthand
    ({"regex": "*"}, None, False, False),
    ({}, "", False, True),
    ({}, None, False, False),
    ({"regex": "(unclosed"}, "(unclosed", False, False),
]


@pytest.mark.parametrize(("cond", "value", "ignore_case", "expected"), STRING_CASES)
def test_string_matches(
    cond: dict[str, Any], value: str | None, ignore_case: bool, expected: bool
) -> None:
    assert string_matches(cond, value, ignore_case) is expected


ENTRY_CASES = [
    # (case, match entry, request, expected)
    ("uri-exact", {"uri": {"exact": "/login"}}, Request(path="/login"), True),
    ("uri-exact-ignores-query", {"uri": {"exact": "/login"}}, Request(path="/login?next=/"), True),
    ("uri-exact-other", {"uri": {"exact": "/login"}}, Request(path="/login/"), False),
    ("uri-prefix", {"uri": {"prefix": "/static/"}}, Request(path="/static/app.js"), True),
    ("uri-prefix-miss", {"uri": {"prefix": "/static/"}}, Request(path="/static"), False),
    ("uri-prefix-sees-query", {"uri": {"prefix": "/a?x"}}, Request(path="/a?x=1"), True),
    ("uri-regex", {"uri": {"regex": "/api/v[0-9]+/.*"}}, Request(path="/api/v2/items"), True),
    (
        "uri-regex-ignores-query",
        {"uri": {"regex": "/api/v[0-9]+"}},
        Request(path="/api/v2?a=b"),
        True,
    ),
    ("uri-regex-full", {"uri": {"regex": "/api"}}, Request(path="/api/v2"), False),
    (
        "ignore-case-exact",
        {"uri": {"exact": "/Blog"}, "ignoreUriCase": True},
        Request(path="/BLOG"),
        True,
    ),
    (
        "ignore-case-prefix",
        {"uri": {"prefix": "/Blog"}, "ignoreUriCase": True},
        Request(path="/blog/1"),
        True,
    ),
    ("case-sensitive-by-default", {"uri": {"prefix": "/Blog"}}, Request(path="/blog/1"), False),
    (
        "ignore-case-not-for-regex",
        {"uri": {"regex": "/Blog"}, "ignoreUriCase": True},
        Request(path="/blog"),
        False,
    ),
    ("uri-empty-condition", {"uri": {}}, Request(path="/anything"), True),
    (
        "header-exact",
        {"headers": {"end-user": {"exact": "jason"}}},
        Request(headers={"end-user": "jason"}),
        True,
    ),
    (
        "header-exact-miss",
        {"headers": {"end-user": {"exact": "jason"}}},
        Request(headers={"end-user": "bob"}),
        False,
    ),
    ("header-absent", {"headers": {"end-user": {"exact": "jason"}}}, Request(), False),
    (
        "header-name-case-insensitive",
        {"headers": {"End-User": {"exact": "a"}}},
        Request(headers={"end-user": "a"}),
        True,
    ),
    (
        "header-prefix",
        {"headers": {"x-v": {"prefix": "beta"}}},
        Request(headers={"x-v": "beta-2"}),
        True,
    ),
    (
        "header-regex",
        {"headers": {"x-v": {"regex": "beta-[0-9]"}}},
        Request(headers={"x-v": "beta-2"}),
        True,
    ),
    ("header-presence", {"headers": {"x-debug": {}}}, Request(headers={"x-debug": ""}), True),
    ("header-presence-absent", {"headers": {"x-debug": {}}}, Request(), False),
    (
        "header-pseudo-method",
        {"headers": {":method": {"exact": "POST"}}},
        Request(method="POST"),
        True,
    ),
    (
        "header-host-is-authority",
        {"headers": {"host": {"exact": "a.b"}}},
        Request(authority="a.b"),
        True,
    ),
    ("without-headers-absent", {"withoutHeaders": {"x-dry-run": {}}}, Request(), True),
    (
        "without-headers-present",
        {"withoutHeaders": {"x-dry-run": {}}},
        Request(headers={"x-dry-run": "1"}),
        False,
    ),
    (
        "without-headers-value-other",
        {"withoutHeaders": {"x-env": {"exact": "qa"}}},
        Request(headers={"x-env": "prod"}),
        True,
    ),
    (
        "without-headers-value-same",
        {"withoutHeaders": {"x-env": {"exact": "qa"}}},
        Request(headers={"x-env": "qa"}),
        False,
    ),
    (
        "without-headers-missing-is-empty",
        {"withoutHeaders": {"x-env": {"exact": ""}}},
        Request(),
        False,
    ),
    (
        "without-headers-star",
        {"withoutHeaders": {"x-a": {"regex": "*"}}},
        Request(headers={"x-a": "v"}),
        False,
    ),
    ("query-exact", {"queryParams": {"v": {"exact": "2"}}}, Request(path="/x?a=1&v=2"), True),
    ("query-exact-miss", {"queryParams": {"v": {"exact": "2"}}}, Request(path="/x?v=3"), False),
    ("query-absent", {"queryParams": {"v": {"exact": "2"}}}, Request(path="/x"), False),
    (
        "query-exact-empty-is-not-presence",
        {"queryParams": {"debug": {"exact": ""}}},
        Request(path="/x?debug=1"),
        False,
    ),
    (
        "query-exact-empty-bare-key",
        {"queryParams": {"debug": {"exact": ""}}},
        Request(path="/x?debug"),
        True,
    ),
    ("query-presence", {"queryParams": {"debug": {}}}, Request(path="/x?debug=1"), True),
    ("query-regex", {"queryParams": {"id": {"regex": "[0-9]+"}}}, Request(path="/x?id=42"), True),
    ("query-prefix", {"queryParams": {"id": {"prefix": "4"}}}, Request(path="/x?id=42"), True),
    (
        "query-first-value-wins",
        {"queryParams": {"v": {"exact": "1"}}},
        Request(path="/x?v=1&v=2"),
        True,
    ),
    (
        "query-percent-decoded",
        {"queryParams": {"q": {"exact": "a b"}}},
        Request(path="/x?q=a%20b"),
        True,
    ),
    ("method", {"method": {"exact": "POST"}}, Request(method="POST"), True),
    ("method-miss", {"method": {"exact": "POST"}}, Request(method="GET"), False),
    ("method-regex", {"method": {"regex": "PUT|PATCH"}}, Request(method="PATCH"), True),
    ("scheme", {"scheme": {"exact": "https"}}, Request(scheme="https"), True),
    (
        "authority-prefix",
        {"authority": {"prefix": "reviews"}},
        Request(authority="reviews:9080"),
        True,
    ),
    ("port", {"port": 9080}, Request(port=9080), True),
    ("port-miss", {"port": 9080}, Request(port=80), False),
    ("port-from-authority", {"port": 9080}, Request(authority="reviews:9080"), True),
    ("port-default-http", {"port": 80}, Request(authority="reviews"), True),
    ("port-default-https", {"port": 443}, Request(authority="reviews", scheme="https"), True),
    (
        "source-labels",
        {"sourceLabels": {"app": "web"}},
        Request(source_labels={"app": "web", "v": "1"}),
        True,
    ),
    (
        "source-labels-miss",
        {"sourceLabels": {"app": "web", "v": "2"}},
        Request(source_labels={"app": "web", "v": "1"}),
        False,
    ),
    ("source-namespace", {"sourceNamespace": "web"}, Request(source_namespace="web"), True),
    ("source-namespace-miss", {"sourceNamespace": "web"}, Request(source_namespace="api"), False),
    ("gateways-mesh", {"gateways": ["mesh"]}, Request(), True),
    ("gateways-other", {"gateways": ["istio-system/gw"]}, Request(), False),
    (
        "gateways-qualified",
        {"gateways": ["istio-system/gw"]},
        Request(gateway="istio-system/gw"),
        True,
    ),
    (
        "and-all-hold",
        {"uri": {"prefix": "/a"}, "headers": {"x": {"exact": "1"}}},
        Request(path="/a/b", headers={"x": "1"}),
        True,
    ),
    (
        "and-one-fails",
        {"uri": {"prefix": "/a"}, "headers": {"x": {"exact": "1"}}},
        Request(path="/a/b", headers={"x": "2"}),
        False,
    ),
    ("empty-entry", {}, Request(path="/anything", method="DELETE"), True),
    ("name-and-stat-prefix-ignored", {"name": "n", "statPrefix": "s"}, Request(), True),
]


@pytest.mark.parametrize(
    ("case", "entry", "req", "expected"), ENTRY_CASES, ids=[c[0] for c in ENTRY_CASES]
)
def test_match_entry_semantics(
    case: str, entry: dict[str, Any], req: Request, expected: bool
) -> None:
    assert match_entry_matches(entry, req) is expected, case


def test_gateway_names_without_namespace_are_relative_to_the_virtual_service() -> None:
    entry = {"gateways": ["public"]}
    assert match_entry_matches(entry, Request(gateway="edge/public"), namespace="edge")
    assert not match_entry_matches(entry, Request(gateway="edge/public"), namespace="other")


@pytest.mark.parametrize(
    ("names", "gateway", "expected"),
    [
        (["mesh"], "mesh", True),
        (["ns/gw"], "ns/gw", True),
        (["gw"], "vs-ns/gw", True),
        (["gw.ns.svc.cluster.local"], "ns/gw", True),
        (["ns/gw", "mesh"], "other/gw", False),
        ([], "mesh", False),
    ],
)
def test_gateway_matches(names: list[str], gateway: str, expected: bool) -> None:
    assert gateway_matches(names, "vs-ns", gateway) is expected


OR_ROUTE = {
    "match": [{"uri": {"prefix": "/wpcatalog"}}, {"headers": {"x-legacy": {}}}],
    "route": [{"destination": {"host": "catalog"}}],
}


@pytest.mark.parametrize(
    ("req", "expected"),
    [
        (Request(path="/wpcatalog/1"), True),
        (Request(path="/new", headers={"x-legacy": "1"}), True),
        (Request(path="/new"), False),
    ],
)
def test_match_entries_are_ored(req: Request, expected: bool) -> None:
    assert route_matches(OR_ROUTE, req) is expected


@pytest.mark.parametrize("match", [None, []])
def test_route_without_match_matches_everything(match: list[Any] | None) -> None:
    route: dict[str, Any] = {"route": [{"destination": {"host": "r"}}]}
    if match is not None:
        route["match"] = match
    assert route_matches(route, Request(path="/x", method="PUT"))


ROUTES = [
    {"name": "jason", "match": [{"headers": {"end-user": {"exact": "jason"}}}]},
    {"name": "api", "match": [{"uri": {"prefix": "/api"}}]},
    {"name": "api-v2", "match": [{"uri": {"prefix": "/api/v2"}}]},  # shadowed by "api"
    {"name": "catch-all"},
]


@pytest.mark.parametrize(
    ("req", "expected"),
    [
        (Request(path="/api/v2", headers={"end-user": "jason"}), 0),
        (Request(path="/api/v2"), 1),
        (Request(path="/home"), 3),
    ],
)
def test_first_matching_route_wins(req: Request, expected: int) -> None:
    assert select_route(ROUTES, req) == expected


def test_no_matching_route_gives_none() -> None:
    assert select_route(ROUTES[:3], Request(path="/home")) is None
    assert select_route([], Request()) is None


def test_fixture_routing() -> None:
    docs = {d["metadata"]["name"]: d for d in yaml.safe_load(FIXTURES.read_text())}
    ratings = docs["ratings-by-user"]["spec"]["http"]
    assert select_route(ratings, Request(headers={"end-user": "jason"})) == 0
    assert select_route(ratings, Request(headers={"end-user": "bob"})) == 1
    pages = docs["productpage-paths"]["spec"]["http"]
    assert select_route(pages, Request(path="/api/v1/products/7/reviews")) == 0
    assert select_route(pages, Request(path="/api/v1/products/7", method="POST")) == 2
    assert select_route(pages, Request(path="/static/css/app.css")) == 1
    orders = docs["orders-named-routes"]["spec"]["http"]
    assert select_route(orders, Request(path="/o?preview=1", headers={"x-beta": "true"})) == 0
    assert select_route(orders, Request(source_labels={"app": "mobile-bff"})) == 0
    assert select_route(orders, Request(method="POST")) == 1
    assert select_route(orders, Request(method="POST", headers={"x-dry-run": "1"})) == 2
    edge = docs["bookinfo-edge"]["spec"]["http"]
    assert select_route(edge, Request(path="/login")) == 1
    assert select_route(edge, Request(path="/login", gateway="istio-system/bookinfo-gateway")) == 0
    baggage = docs["details-baggage"]["spec"]["http"]
    assert select_route(baggage, Request(headers={"baggage": "user=1, tenant=b;p=1"})) == 0
    assert select_route(baggage, Request(headers={"baggage": "tenant=bb"})) == 1


HOST_CASES = [
    ("reviews", "bookinfo", "reviews", True),
    ("reviews", "bookinfo", "reviews:9080", True),
    ("reviews", "bookinfo", "reviews.bookinfo", True),
    ("reviews", "bookinfo", "reviews.bookinfo.svc", True),
    ("reviews", "bookinfo", "reviews.bookinfo.svc.cluster.local", True),
    ("reviews", "bookinfo", "REVIEWS.bookinfo.svc.cluster.local.", True),
    ("reviews", "bookinfo", "reviews.other", False),
    ("reviews", "bookinfo", "ratings", False),
    ("reviews.bookinfo.svc.cluster.local", "any", "reviews.bookinfo", True),
    ("reviews.bookinfo.svc.cluster.local", "bookinfo", "reviews", True),
    ("reviews.bookinfo.svc.cluster.local", "any", "reviews.other.svc.cluster.local", False),
    ("*.example.com", "ns", "api.example.com", True),
    ("*.example.com", "ns", "a.b.example.com:8443", True),
    ("*.example.com", "ns", "example.com", False),
    ("*.bookinfo.svc.cluster.local", "ns", "reviews.bookinfo", True),
    ("*", "ns", "anything.at.all", True),
    ("api.example.com", "ns", "api.example.com:443", True),
    ("10.0.0.1", "ns", "10.0.0.1:80", True),
    ("::1", "ns", "[::1]:80", True),
]


@pytest.mark.parametrize(("vs_host", "namespace", "request_host", "expected"), HOST_CASES)
def test_host_matches(vs_host: str, namespace: str, request_host: str, expected: bool) -> None:
    assert host_matches(vs_host, namespace, request_host) is expected


def test_short_request_host_resolves_in_the_client_namespace() -> None:
    assert host_matches("reviews", "bookinfo", "reviews", client_namespace="bookinfo")
    assert not host_matches("reviews", "bookinfo", "reviews", client_namespace="shop")
    assert host_matches("reviews", "bookinfo", "reviews.bookinfo", client_namespace="shop")


_names = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
_values = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=20)
_requests = st.builds(
    Request,
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    path=st.from_regex(r"/[a-z0-9/]{0,12}(\?[a-z]=[a-z0-9]{0,3})?", fullmatch=True),
    headers=st.dictionaries(_names, _values, max_size=4),
    authority=_names,
    port=st.none() | st.integers(1, 65535),
    source_labels=st.dictionaries(_names, _names, max_size=3),
)


@given(_requests)
def test_a_route_without_match_matches_every_request(req: Request) -> None:
    assert route_matches({"route": [{"destination": {"host": "r"}}]}, req)


@given(_names, st.none() | _values)
def test_dot_star_regex_is_equivalent_to_presence(name: str, value: str | None) -> None:
    req = Request(headers={} if value is None else {name: value})
    presence = match_entry_matches({"headers": {name: {}}}, req)
    assert match_entry_matches({"headers": {name: {"regex": ".*"}}}, req) is presence


@given(_names, st.none() | _values)
def test_without_header_presence_negates_header_presence(name: str, value: str | None) -> None:
    req = Request(headers={} if value is None else {name: value})
    assert match_entry_matches({"withoutHeaders": {name: {}}}, req) is not match_entry_matches(
        {"headers": {name: {}}}, req
    )


@given(_values, _values)
def test_exact_and_prefix_agree_with_python(expected: str, actual: str) -> None:
    assert string_matches({"exact": expected}, actual) is (actual == expected)
    assert string_matches({"prefix": expected}, actual) is actual.startswith(expected)


_entries = st.lists(
    st.sampled_from(
        [
            {"uri": {"prefix": "/a"}},
            {"method": {"exact": "POST"}},
            {"headers": {"x-a": {}}},
            {"queryParams": {"q": {"regex": "[0-9]+"}}},
            {"withoutHeaders": {"x-b": {}}},
        ]
    ),
    min_size=1,
    max_size=4,
)


@given(_entries, _requests)
def test_a_route_matches_when_any_entry_matches(
    entries: list[dict[str, Any]], req: Request
) -> None:
    expected = any(match_entry_matches(entry, req) for entry in entries)
    assert route_matches({"match": entries}, req) is expected


@given(st.lists(_entries, max_size=5), _requests)
def test_select_route_returns_the_first_match(
    entry_lists: list[list[dict[str, Any]]], req: Request
) -> None:
    routes = [{"match": entries} for entries in entry_lists]
    chosen = select_route(routes, req)
    matching = [i for i, route in enumerate(routes) if route_matches(route, req)]
    assert chosen == (matching[0] if matching else None)


@given(_names, _names, st.sampled_from(["", ":8080"]))
def test_every_kubernetes_name_of_a_service_matches_its_short_vs_host(
    service: str, namespace: str, port: str
) -> None:
    for form in (
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ):
        assert host_matches(service, namespace, form + port)
