"""The data plane against Istio's documented routing semantics, end to end: a real control
plane, a real data plane process and echo upstreams, all on 127.0.0.1."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.conftest import LocalMesh
from tests.dataplane_support import DataPlane, EchoFarm, free_port, run_dataplane

ECHOES = [
    "reviews-v1",
    "reviews-v2",
    "reviews-v3",
    "ratings-v1",
    "flaky-v1",
    "shadow-v1",
    "details-prod",
]
FQDN = "reviews.default.svc.cluster.local"


def _instance(farm: EchoFarm, name: str, app: str, version: str) -> dict[str, Any]:
    return {
        "address": farm[name].address,
        "workload": name,
        "labels": {"app": app, "version": version},
    }


@pytest.fixture(scope="module")
def farm() -> Iterator[EchoFarm]:
    echoes = EchoFarm(ECHOES)
    try:
        echoes.start()
        yield echoes
    finally:
        echoes.stop()


@pytest.fixture(scope="module")
def dp(
    local_mesh: LocalMesh, farm: EchoFarm, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DataPlane]:
    listeners = [
        {
            "name": "ingress",
            "port": 0,
            "gateway": "istio-system/ingressgateway",
            "workload": "istio-ingressgateway",
            "namespace": "istio-system",
            "labels": {"app": "istio-ingressgateway"},
        },
        {
            "name": "frontend",
            "port": 0,
            "gateway": "mesh",
            "workload": "frontend-v1",
            "namespace": "default",
            "labels": {"app": "frontend", "version": "v1"},
        },
        {
            "name": "productpage",
            "port": 0,
            "gateway": "mesh",
            "workload": "productpage-v1",
            "namespace": "default",
            "labels": {"app": "productpage", "version": "v1"},
        },
    ]
    services = [
        {
            "name": "reviews",
            "namespace": "default",
            "instances": [
                _instance(farm, f"reviews-{v}", "reviews", v) for v in ("v1", "v2", "v3")
            ],
        },
        {
            "name": "ratings",
            "namespace": "default",
            "instances": [_instance(farm, "ratings-v1", "ratings", "v1")],
        },
        {
            "name": "flaky",
            "namespace": "default",
            "instances": [_instance(farm, "flaky-v1", "flaky", "v1")],
        },
        {
            "name": "shadow",
            "namespace": "default",
            "instances": [_instance(farm, "shadow-v1", "shadow", "v1")],
        },
        {
            "name": "details",
            "namespace": "prod",
            "instances": [_instance(farm, "details-prod", "details", "v1")],
        },
        {
            "name": "dead",
            "namespace": "default",
            "instances": [
                {
                    "address": f"127.0.0.1:{free_port()}",
                    "workload": "dead-v1",
                    "labels": {"app": "dead", "version": "v1"},
                }
            ],
        },
    ]
    with run_dataplane(
        tmp_path_factory.mktemp("dataplane"), local_mesh, listeners, services
    ) as plane:
        yield plane


@pytest.fixture(autouse=True)
def clean(dp: DataPlane, farm: EchoFarm) -> Iterator[None]:
    farm.reset()
    yield
    dp.delete_all()
    farm.reset()


def to(
    host: str = "reviews", subset: str | None = None, weight: int | None = None, **extra: Any
) -> dict[str, Any]:
    destination: dict[str, Any] = {"host": host}
    if subset:
        destination["subset"] = subset
    out: dict[str, Any] = {"destination": destination, **extra}
    if weight is not None:
        out["weight"] = weight
    return out


def subsets_dr(dp: DataPlane, host: str = "reviews") -> None:
    dp.dr(
        host,
        {
            "host": host,
            "subsets": [{"name": v, "labels": {"version": v}} for v in ("v1", "v2", "v3")],
        },
    )


def instance(answer: requests.Response) -> str:
    assert answer.status_code == 200, answer.text
    return str(answer.json()["instance"])


def v1_unless(match: list[dict[str, Any]], dp: DataPlane) -> None:
    """Matching requests go to reviews-v2, the others to reviews-v1."""
    subsets_dr(dp)
    dp.vs(
        "reviews",
        {
            "hosts": ["reviews"],
            "http": [
                {"match": match, "route": [to(subset="v2")]},
                {"route": [to(subset="v1")]},
            ],
        },
    )


# -- hosts and the default route --------------------------------------------------------


def test_default_route_round_robins_over_all_instances(dp: DataPlane) -> None:
    seen = {instance(dp.get("/", "reviews")) for _ in range(6)}
    assert seen == {"reviews-v1", "reviews-v2", "reviews-v3"}


@pytest.mark.parametrize(
    "host",
    ["reviews", "reviews:9080", "reviews.default", "reviews.default.svc", FQDN, f"{FQDN}:9080"],
)
def test_service_host_forms(dp: DataPlane, host: str) -> None:
    answer = dp.get("/x", host)
    assert instance(answer).startswith("reviews-")
    assert answer.json()["host"] == host  # the authority reaches the upstream unchanged


def test_short_name_of_another_namespace_is_unknown(dp: DataPlane) -> None:
    assert dp.get("/", "details").status_code == 404
    assert instance(dp.get("/", "details.prod")) == "details-prod"


def test_unknown_host_is_404_nr(dp: DataPlane) -> None:
    answer = dp.get("/", "nowhere", headers={"x-chaos-group": "t-nr"})
    assert answer.status_code == 404
    assert (
        dp.count(
            chaos_group="t-nr",
            response_flags="NR",
            response_code="404",
            destination_service="unknown",
            reporter="source",
        )
        == 1
    )


def test_no_matching_route_is_404_nr(dp: DataPlane) -> None:
    dp.vs(
        "reviews",
        {
            "hosts": ["reviews"],
            "http": [{"match": [{"uri": {"prefix": "/only"}}], "route": [to()]}],
        },
    )
    assert dp.get("/other", "reviews", headers={"x-chaos-group": "t-nr2"}).status_code == 404
    assert dp.count(chaos_group="t-nr2", response_flags="NR", destination_service=FQDN) == 1


def test_oldest_virtual_service_wins_for_a_host(dp: DataPlane) -> None:
    subsets_dr(dp)
    dp.vs("first", {"hosts": ["reviews"], "http": [{"route": [to(subset="v1")]}]})
    dp.vs("second", {"hosts": ["reviews"], "http": [{"route": [to(subset="v2")]}]})
    assert instance(dp.get("/", "reviews")) == "reviews-v1"


def test_virtual_service_in_another_namespace_by_fqdn(dp: DataPlane) -> None:
    dp.vs(
        "reviews-prod",
        {
            "hosts": [FQDN],
            "http": [{"route": [to(FQDN)], "headers": {"request": {"set": {"x-via": "prod-vs"}}}}],
        },
        namespace="prod",
    )
    assert dp.get("/", "reviews").json()["headers"]["x-via"] == "prod-vs"


# -- matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "hit", "miss"),
    [
        ({"exact": "a"}, "a", "ab"),
        ({"prefix": "ab"}, "abc", "xab"),
        ({"regex": "a[0-9]+"}, "a42", "a42b"),  # RE2 full match, not search
    ],
)
def test_header_match_kinds(dp: DataPlane, condition: dict[str, str], hit: str, miss: str) -> None:
    v1_unless([{"headers": {"x-user": condition}}], dp)
    assert instance(dp.get("/", "reviews", headers={"x-user": hit})) == "reviews-v2"
    assert instance(dp.get("/", "reviews", headers={"x-user": miss})) == "reviews-v1"
    assert instance(dp.get("/", "reviews")) == "reviews-v1"


@pytest.mark.parametrize(
    ("condition", "hit", "miss"),
    [
        ({"exact": "/api/v1"}, "/api/v1?q=1", "/api/v1/x"),  # exact ignores the query
        ({"prefix": "/api"}, "/api/anything", "/ap"),
        ({"regex": "/items/[0-9]+"}, "/items/12", "/items/12/x"),
    ],
)
def test_uri_match_kinds(dp: DataPlane, condition: dict[str, str], hit: str, miss: str) -> None:
    v1_unless([{"uri": condition}], dp)
    assert instance(dp.get(hit, "reviews")) == "reviews-v2"
    assert instance(dp.get(miss, "reviews")) == "reviews-v1"


def test_ignore_uri_case(dp: DataPlane) -> None:
    v1_unless([{"uri": {"prefix": "/Api"}, "ignoreUriCase": True}], dp)
    assert instance(dp.get("/aPI/x", "reviews")) == "reviews-v2"


def test_method_match(dp: DataPlane) -> None:
    v1_unless([{"method": {"exact": "POST"}}], dp)
    answer = dp.client.post(
        dp.url("frontend") + "/", headers={"Host": "reviews"}, data=b"hi", timeout=5
    )
    assert instance(answer) == "reviews-v2"
    assert answer.json()["body"] == "hi"
    assert instance(dp.get("/", "reviews")) == "reviews-v1"


def test_query_params_match(dp: DataPlane) -> None:
    v1_unless([{"queryParams": {"debug": {"exact": "1"}, "id": {"regex": "[0-9]+"}}}], dp)
    assert instance(dp.get("/p?debug=1&id=7", "reviews")) == "reviews-v2"
    assert instance(dp.get("/p?debug=1&id=x", "reviews")) == "reviews-v1"
    assert instance(dp.get("/p?id=7", "reviews")) == "reviews-v1"


def test_without_headers(dp: DataPlane) -> None:
    v1_unless([{"withoutHeaders": {"x-canary": {}}}], dp)
    assert instance(dp.get("/", "reviews")) == "reviews-v2"
    assert instance(dp.get("/", "reviews", headers={"x-canary": "1"})) == "reviews-v1"


def test_conditions_of_one_entry_are_and(dp: DataPlane) -> None:
    v1_unless([{"uri": {"prefix": "/a"}, "headers": {"x-user": {"exact": "u"}}}], dp)
    assert instance(dp.get("/a", "reviews", headers={"x-user": "u"})) == "reviews-v2"
    assert instance(dp.get("/a", "reviews")) == "reviews-v1"
    assert instance(dp.get("/b", "reviews", headers={"x-user": "u"})) == "reviews-v1"


def test_match_entries_are_or(dp: DataPlane) -> None:
    v1_unless([{"uri": {"prefix": "/a"}}, {"headers": {"x-user": {"exact": "u"}}}], dp)
    assert instance(dp.get("/a", "reviews")) == "reviews-v2"
    assert instance(dp.get("/b", "reviews", headers={"x-user": "u"})) == "reviews-v2"
    assert instance(dp.get("/b", "reviews")) == "reviews-v1"


def test_first_matching_route_wins(dp: DataPlane) -> None:
    subsets_dr(dp)
    dp.vs(
        "reviews",
        {
            "hosts": ["reviews"],
            "http": [
                {"match": [{"uri": {"prefix": "/a"}}], "route": [to(subset="v3")]},
                {"match": [{"uri": {"prefix": "/a/b"}}], "route": [to(subset="v2")]},
                {"route": [to(subset="v1")]},
            ],
        },
    )
    assert instance(dp.get("/a/b", "reviews")) == "reviews-v3"


def test_source_labels(dp: DataPlane) -> None:
    v1_unless([{"sourceLabels": {"app": "productpage"}}], dp)
    assert instance(dp.get("/", "reviews", listener="productpage")) == "reviews-v2"
    assert instance(dp.get("/", "reviews", listener="frontend")) == "reviews-v1"


# -- destinations -----------------------------------------------------------------------


def test_subsets_through_destination_rule(dp: DataPlane) -> None:
    subsets_dr(dp)
    dp.vs("reviews", {"hosts": ["reviews"], "http": [{"route": [to(subset="v3")]}]})
    assert {instance(dp.get("/", "reviews")) for _ in range(5)} == {"reviews-v3"}


def test_weights_follow_a_binomial(dp: DataPlane) -> None:
    subsets_dr(dp)
    dp.vs(
        "reviews",
        {
            "hosts": ["reviews"],
            "http": [{"route": [to(subset="v1", weight=80), to(subset="v2", weight=20)]}],
        },
    )
    n = 1000
    counts = Counter(instance(dp.get("/", "reviews")) for _ in range(n))
    sigma = math.sqrt(n * 0.8 * 0.2)
    # 99.999% interval: at 99% one CI run in a hundred would fail by chance alone.
    assert abs(counts["reviews-v1"] - 800) <= 4.42 * sigma
    assert counts["reviews-v1"] + counts["reviews-v2"] == n


def test_zero_weight_destination_gets_nothing(dp: DataPlane) -> None:
    subsets_dr(dp)
    dp.vs(
        "reviews",
        {
            "hosts": ["reviews"],
            "http": [{"route": [to(subset="v1", weight=100), to(subset="v2", weight=0)]}],
        },
    )
    assert {instance(dp.get("/", "reviews")) for _ in range(20)} == {"reviews-v1"}


def test_unknown_subset_is_503_nc(dp: DataPlane) -> None:
    dp.vs("reviews", {"hosts": ["reviews"], "http": [{"route": [to(subset="v9")]}]})
    assert dp.get("/", "reviews", headers={"x-chaos-group": "t-nc"}).status_code == 503
    assert dp.count(chaos_group="t-nc", response_flags="NC", response_code="503") == 1


def test_subset_without_instances_is_503_uh(dp: DataPlane) -> None:
    dp.dr("reviews", {"host": "reviews", "subsets": [{"name": "v9", "labels": {"version": "v9"}}]})
    dp.vs("reviews", {"hosts": ["reviews"], "http": [{"route": [to(subset="v9")]}]})
    answer = dp.get("/", "reviews", headers={"x-chaos-group": "t-uh"})
    assert (answer.status_code, answer.text) == (503, "no healthy upstream")
    assert dp.count(chaos_group="t-uh", response_flags="UH") == 1


# -- rewrites, headers, redirects, direct responses ------------------------------------


def test_rewrite_replaces_the_matched_prefix(dp: DataPlane) -> None:
    dp.vs(
        "reviews",
        {
            "hosts": ["reviews"],
            "http": [
                {
                    "match": [{"uri": {"prefix": "/old"}}],
                    "rewrite": {"uri": "/new"},
                    "route": [to()],
                }
            ],
        },
    )
    seen = dp.get("/old/page?x=1", "reviews").json()
    assert seen["path"] == "/new/page?x=1"
    assert seen["headers"]["x-envoy-original-path"] == "/old/page?x=1"


def test_rewrite_of_an_exact_match_replaces_the_path(dp: DataPlane) -> None:
    dp.vs(
        "reviews",
        {
            "hosts": ["reviews"],
            "http": [
                {
                    "match": [{"uri": {"exact": "/login"}}],
                    "rewrite": {"uri": "/auth/login"},
                    "route": [to()],
                }
            ],
        },
    )
    assert dp.get("/login?next=1", "reviews").json()["path"] == "/auth/login?next=1"


def test_uri_regex_rewrite(dp: DataPlane) -> None:
    dp.vs(
        "reviews",
        {
            "hosts": ["reviews"],
            "http": [
                {
                    "rewrite": {"uriRegexRewrite": {"match": "^/v1/(.*)$", "rewrite": "/v2/\\1"}},
                    "route": [to()],
                }
            ],
        },
    )
    assert dp.get("/v1/items?a=b", "reviews").json()["path"] == "/v2/items?a=b"


def test_rewrite_authority(dp: DataPlane) -> None:
    dp.vs(
        "reviews",
        {
            "hosts": ["reviews"],
            "http": [{"rewrite": {"authority": "reviews.internal"}, "route": [to()]}],
        },
    )
    assert dp.get("/", "reviews").json()["host"] == "reviews.internal"


def test_request_and_response_header_operations(dp: DataPlane) -> None:
    dp.vs(
        "reviews",
        {
            "hosts": ["reviews"],
            "http": [
                {
                    "route": [to()],
                    "headers": {
                        "request": {
                            "set": {"x-set": "s"},
                            "add": {"x-add": "a"},
                            "remove": ["x-drop"],
                        },
                        "response": {
                            "set": {"x-echo": "replaced"},
                            "add": {"x-extra": "e"},
                            "remove": ["x-envoy-upstream-service-time"],
                        },
                    },
                }
            ],
        },
    )
    answer = dp.get("/", "reviews", headers={"x-drop": "1", "x-set": "old"})
    seen = answer.json()["headers"]
    assert (seen["x-set"], seen["x-add"], "x-drop" in seen) == ("s", "a", False)
    assert answer.headers["x-echo"] == "replaced"
    assert answer.headers["x-extra"] == "e"
    assert "x-envoy-upstream-service-time" not in answer.headers


def test_destination_level_headers(dp: DataPlane) -> None:
    subsets_dr(dp)
    dp.vs(
        "reviews",
        {
            "hosts": ["reviews"],
            "http": [
                {
                    "route": [
                        to(
                            subset="v1",
                            headers={
                                "request": {"set": {"x-dest": "v1"}},
                                "response": {"set": {"x-from": "v1"}},
                            },
                        )
                    ]
                }
            ],
        },
    )
    answer = dp.get("/", "reviews")
    assert answer.json()["headers"]["x-dest"] == "v1"
    assert answer.headers["x-from"] == "v1"


def test_redirect(dp: DataPlane) -> None:
    dp.vs(
        "reviews",
        {
            "hosts": ["reviews"],
            "http": [
                {"match": [{"uri": {"prefix": "/a"}}], "redirect": {"uri": "/b"}},
                {
                    "redirect": {
                        "authority": "example.com",
                        "scheme": "https",
                        "port": 8443,
                        "redirectCode": 302,
                    }
                },
            ],
        },
    )
    first = dp.get("/a?q=1", "reviews", allow_redirects=False)
    assert (first.status_code, first.headers["location"]) == (301, "http://reviews/b?q=1")
    second = dp.get("/c", "reviews", allow_redirects=False)
    assert (second.status_code, second.headers["location"]) == (302, "https://example.com:8443/c")


def test_direct_response(dp: DataPlane) -> None:
    dp.vs(
        "reviews",
        {
            "hosts": ["reviews"],
            "http": [{"directResponse": {"status": 418, "body": {"string": "teapot"}}}],
        },
    )
    answer = dp.get("/", "reviews")
    assert (answer.status_code, answer.text) == (418, "teapot")


def test_request_id_is_generated_or_kept(dp: DataPlane) -> None:
    generated = dp.get("/", "reviews").json()["headers"]["x-request-id"]
    assert len(generated) == 36
    kept = dp.get("/", "reviews", headers={"x-request-id": "abc"}).json()["headers"]
    assert kept["x-request-id"] == "abc"


# -- faults -----------------------------------------------------------------------------


def _fault_vs(dp: DataPlane, fault: dict[str, Any], **route: Any) -> None:
    dp.vs(
        "reviews",
        {
            "hosts": ["reviews"],
            "http": [{"fault": fault, "route": [to(route.pop("host", "reviews"))], **route}],
        },
    )


def test_delay_is_accurate(dp: DataPlane) -> None:
    _fault_vs(dp, {"delay": {"fixedDelay": "300ms", "percentage": {"value": 100}}})
    elapsed = []
    for _ in range(3):
        start = time.perf_counter()
        assert dp.get("/", "reviews", headers={"x-chaos-group": "t-di"}).status_code == 200
        elapsed.append(time.perf_counter() - start)
    assert 0.300 <= min(elapsed) < 0.310
    assert dp.count(chaos_group="t-di", response_flags="DI", reporter="source") == 3


def _give_up(dp: DataPlane, group: str, after: float, host: str = "reviews") -> None:
    """A caller whose own timeout fires before the answer comes."""
    with pytest.raises(requests.exceptions.ReadTimeout):
        dp.client.get(
            dp.url("frontend") + "/",
            headers={"Host": host, "x-chaos-group": group},
            timeout=(5, after),
        )


def _count_soon(dp: DataPlane, within: float, **labels: str) -> float:
    deadline = time.monotonic() + within
    while (found := dp.count(**labels)) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


def test_caller_giving_up_during_a_delay_is_reported_at_once_as_di_dc(dp: DataPlane) -> None:
    # Envoy reports a downstream disconnect when it happens: code 0 and DC next to DI.
    # The delay is 3 s; the report must come long before the delay would have ended.
    _fault_vs(dp, {"delay": {"fixedDelay": "3s", "percentage": {"value": 100}}})
    start = time.monotonic()
    _give_up(dp, "t-didc", after=0.2)
    labels = {"chaos_group": "t-didc", "reporter": "source"}
    assert _count_soon(dp, 1.0, response_flags="DI,DC", response_code="0", **labels) == 1
    assert time.monotonic() - start < 2.0
    # Nothing was forwarded and nothing else was reported for it.
    time.sleep(0.2)
    assert dp.count(**labels) == 1
    assert dp.count(chaos_group="t-didc", reporter="destination") == 0


def test_caller_giving_up_on_a_slow_upstream_is_dc_on_both_sides(
    dp: DataPlane, farm: EchoFarm
) -> None:
    _flaky_vs(dp)
    farm["flaky-v1"].delay = 2.0
    _give_up(dp, "t-dc", after=0.2, host="flaky")
    source = _count_soon(
        dp, 1.0, chaos_group="t-dc", reporter="source", response_code="0", response_flags="DC"
    )
    destination = _count_soon(
        dp, 1.0, chaos_group="t-dc", reporter="destination", response_code="0", response_flags="DC"
    )
    assert (source, destination) == (1, 1)


def test_abort_status_body_and_fi_flag(dp: DataPlane) -> None:
    _fault_vs(dp, {"abort": {"httpStatus": 503, "percentage": {"value": 100}}})
    answer = dp.get("/", "reviews", headers={"x-chaos-group": "t-fi"})
    assert (answer.status_code, answer.text) == (503, "fault filter abort")
    assert (
        dp.count(
            chaos_group="t-fi",
            response_flags="FI",
            response_code="503",
            reporter="source",
            destination_service=FQDN,
        )
        == 1
    )
    # The fault fired at the source: no destination ever saw the request.
    assert dp.count(chaos_group="t-fi", reporter="destination") == 0


def test_abort_missing_percentage_means_all(dp: DataPlane) -> None:
    _fault_vs(dp, {"abort": {"httpStatus": 500}})
    assert {dp.get("/", "reviews").status_code for _ in range(10)} == {500}


def test_abort_zero_percent_never_fires(dp: DataPlane) -> None:
    _fault_vs(dp, {"abort": {"httpStatus": 500, "percentage": {"value": 0}}})
    assert {dp.get("/", "reviews").status_code for _ in range(20)} == {200}


def test_grpc_abort(dp: DataPlane) -> None:
    _fault_vs(dp, {"abort": {"grpcStatus": "UNAVAILABLE"}})
    answer = dp.get("/", "reviews")
    assert answer.status_code == 200
    assert answer.headers["grpc-status"] == "14"
    assert answer.headers["content-type"] == "application/grpc"


def test_delay_and_abort_flags_together(dp: DataPlane) -> None:
    _fault_vs(dp, {"delay": {"fixedDelay": "1ms"}, "abort": {"httpStatus": 429}})
    assert dp.get("/", "reviews", headers={"x-chaos-group": "t-both"}).status_code == 429
    assert dp.count(chaos_group="t-both", response_flags="DI,FI", response_code="429") == 1


def test_delay_and_abort_are_sampled_independently(dp: DataPlane) -> None:
    _fault_vs(
        dp,
        {
            "delay": {"fixedDelay": "1ms", "percentage": {"value": 50}},
            "abort": {"httpStatus": 500, "percentage": {"value": 50}},
        },
    )
    n = 400
    for _ in range(n):
        dp.get("/", "reviews", headers={"x-chaos-group": "t-ind"})
    sigma = math.sqrt(n * 0.25 * 0.75)
    for flags in ("DI,FI", "DI", "FI", "-"):
        observed = dp.count(chaos_group="t-ind", reporter="source", response_flags=flags)
        assert abs(observed - n / 4) <= 4.42 * sigma, (flags, observed)  # 99.999%


def test_legacy_integer_percent(dp: DataPlane) -> None:
    _fault_vs(
        dp,
        {
            "delay": {"fixedDelay": "1ms", "percent": 0},
            "abort": {"httpStatus": 500, "percentage": {"value": 0}},
        },
    )
    dp.get("/", "reviews", headers={"x-chaos-group": "t-legacy"})
    assert dp.count(chaos_group="t-legacy", reporter="source", response_flags="-") == 1


def test_fault_disables_the_routes_retries(dp: DataPlane, farm: EchoFarm) -> None:
    _fault_vs(
        dp,
        {"abort": {"httpStatus": 500, "percentage": {"value": 0}}},
        host="flaky",
        retries={"attempts": 3, "retryOn": "5xx"},
    )
    farm["flaky-v1"].fail_times = 1
    assert dp.get("/", "reviews").status_code == 503
    assert len(farm["flaky-v1"].seen) == 1


def test_fault_disables_the_routes_timeout(dp: DataPlane, farm: EchoFarm) -> None:
    _fault_vs(
        dp,
        {"delay": {"fixedDelay": "1ms", "percentage": {"value": 0}}},
        host="flaky",
        timeout="50ms",
    )
    farm["flaky-v1"].delay = 0.2
    assert instance(dp.get("/", "reviews")) == "flaky-v1"


def test_injected_abort_is_never_retried(dp: DataPlane, farm: EchoFarm) -> None:
    _fault_vs(dp, {"abort": {"httpStatus": 503}}, host="flaky")
    assert dp.get("/", "reviews").status_code == 503
    assert farm["flaky-v1"].seen == []


# -- retries and timeouts ---------------------------------------------------------------


def _flaky_vs(dp: DataPlane, **route: Any) -> None:
    dp.vs("flaky", {"hosts": ["flaky"], "http": [{"route": [to("flaky")], **route}]})


def test_retry_recovers_from_a_real_503(dp: DataPlane, farm: EchoFarm) -> None:
    _flaky_vs(dp, retries={"attempts": 2, "retryOn": "5xx"})
    farm["flaky-v1"].fail_times = 1
    answer = dp.get("/", "flaky")
    assert instance(answer) == "flaky-v1"
    assert answer.json()["headers"]["x-envoy-attempt-count"] == "2"


def test_retries_exhausted_give_the_last_response_and_urx(dp: DataPlane, farm: EchoFarm) -> None:
    _flaky_vs(dp, retries={"attempts": 2, "retryOn": "gateway-error"})
    farm["flaky-v1"].fail_times = 10
    answer = dp.get("/", "flaky", headers={"x-chaos-group": "t-urx"})
    assert answer.status_code == 503
    assert answer.json()["instance"] == "flaky-v1"  # the upstream's own answer
    assert len(farm["flaky-v1"].seen) == 3
    assert dp.count(chaos_group="t-urx", reporter="source", response_flags="URX") == 1
    assert dp.count(chaos_group="t-urx", reporter="destination", response_code="503") == 3


def test_default_retry_policy_without_virtual_service(dp: DataPlane, farm: EchoFarm) -> None:
    farm["flaky-v1"].fail_times = 2
    assert instance(dp.get("/", "flaky")) == "flaky-v1"
    assert len(farm["flaky-v1"].seen) == 3


def test_default_retry_policy_ignores_500(dp: DataPlane, farm: EchoFarm) -> None:
    farm["flaky-v1"].fail_times, farm["flaky-v1"].fail_status = 1, 500
    assert dp.get("/", "flaky", headers={"x-chaos-group": "t-500"}).status_code == 500
    assert dp.count(chaos_group="t-500", reporter="source", response_flags="-") == 1


def test_zero_attempts_disable_retries(dp: DataPlane, farm: EchoFarm) -> None:
    _flaky_vs(dp, retries={"attempts": 0})
    farm["flaky-v1"].fail_times = 1
    assert dp.get("/", "flaky").status_code == 503
    assert len(farm["flaky-v1"].seen) == 1


@pytest.mark.parametrize(
    ("retry_on", "status"),
    [("retriable-4xx", 409), ("418", 418), ("retriable-status-codes,429", 429)],
)
def test_retry_on_status_codes(dp: DataPlane, farm: EchoFarm, retry_on: str, status: int) -> None:
    _flaky_vs(dp, retries={"attempts": 1, "retryOn": retry_on})
    farm["flaky-v1"].fail_times, farm["flaky-v1"].fail_status = 1, status
    assert instance(dp.get("/", "flaky")) == "flaky-v1"


def test_gateway_error_does_not_retry_500(dp: DataPlane, farm: EchoFarm) -> None:
    _flaky_vs(dp, retries={"attempts": 2, "retryOn": "gateway-error"})
    farm["flaky-v1"].fail_times, farm["flaky-v1"].fail_status = 1, 500
    assert dp.get("/", "flaky").status_code == 500
    assert len(farm["flaky-v1"].seen) == 1


def test_route_timeout_is_504_ut(dp: DataPlane, farm: EchoFarm) -> None:
    _flaky_vs(dp, timeout="100ms")
    farm["flaky-v1"].delay = 1.0
    start = time.perf_counter()
    answer = dp.get("/", "flaky", headers={"x-chaos-group": "t-ut"})
    assert time.perf_counter() - start < 0.9
    assert (answer.status_code, answer.text) == (504, "upstream request timeout")
    assert dp.count(chaos_group="t-ut", reporter="source", response_flags="UT") == 1


def test_per_try_timeout(dp: DataPlane, farm: EchoFarm) -> None:
    _flaky_vs(dp, retries={"attempts": 1, "perTryTimeout": "100ms", "retryOn": "5xx"})
    farm["flaky-v1"].delay = 0.5
    answer = dp.get("/", "flaky", headers={"x-chaos-group": "t-pt"})
    assert answer.status_code == 504
    assert len(farm["flaky-v1"].seen) == 2
    assert dp.count(chaos_group="t-pt", reporter="source", response_flags="UT,URX") == 1


def test_connect_failure_is_uf_then_urx(dp: DataPlane) -> None:
    answer = dp.get("/", "dead", headers={"x-chaos-group": "t-uf"})
    assert answer.status_code == 503
    assert "connection failure" in answer.text
    assert dp.count(chaos_group="t-uf", reporter="source", response_flags="UF,URX") == 1
    dp.vs(
        "dead", {"hosts": ["dead"], "http": [{"route": [to("dead")], "retries": {"attempts": 0}}]}
    )
    assert dp.get("/", "dead", headers={"x-chaos-group": "t-uf2"}).status_code == 503
    assert dp.count(chaos_group="t-uf2", reporter="source", response_flags="UF") == 1


# -- mirrors ----------------------------------------------------------------------------


def _wait_seen(farm: EchoFarm, name: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while len(farm[name].seen) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return farm[name].seen


def test_mirror_reaches_the_shadow(dp: DataPlane, farm: EchoFarm) -> None:
    subsets_dr(dp)
    dp.vs(
        "reviews",
        {
            "hosts": ["reviews"],
            "http": [
                {
                    "route": [to(subset="v1")],
                    "mirror": {"host": "shadow"},
                    "mirrorPercentage": {"value": 100},
                }
            ],
        },
    )
    assert instance(dp.get("/m?x=1", "reviews:9080")) == "reviews-v1"
    (shadowed,) = _wait_seen(farm, "shadow-v1", 1)
    assert (shadowed["path"], shadowed["host"]) == ("/m?x=1", "reviews-shadow:9080")


def test_mirrors_with_zero_percentage_send_nothing(dp: DataPlane, farm: EchoFarm) -> None:
    dp.vs(
        "reviews",
        {
            "hosts": ["reviews"],
            "http": [
                {
                    "route": [to()],
                    "mirrors": [{"destination": {"host": "shadow"}, "percentage": {"value": 0}}],
                }
            ],
        },
    )
    for _ in range(10):
        dp.get("/", "reviews")
    time.sleep(0.1)
    assert farm["shadow-v1"].seen == []


def test_slow_mirror_never_delays_the_response(dp: DataPlane, farm: EchoFarm) -> None:
    dp.vs(
        "reviews",
        {
            "hosts": ["reviews"],
            "http": [{"route": [to()], "mirrors": [{"destination": {"host": "shadow"}}]}],
        },
    )
    farm["shadow-v1"].delay = 1.0
    start = time.perf_counter()
    assert dp.get("/", "reviews").status_code == 200
    assert time.perf_counter() - start < 0.9


# -- gateways ---------------------------------------------------------------------------


def test_gateway_virtual_service_is_not_applied_to_mesh(dp: DataPlane) -> None:
    subsets_dr(dp)
    dp.vs(
        "bookinfo",
        {
            "hosts": ["bookinfo.example.com", "reviews"],
            "gateways": ["istio-system/ingressgateway"],
            "http": [{"route": [to(subset="v3")]}],
        },
    )
    assert instance(dp.get("/", "bookinfo.example.com", listener="ingress")) == "reviews-v3"
    # Mesh traffic to reviews keeps the default route over every instance.
    seen = {instance(dp.get("/", "reviews")) for _ in range(6)}
    assert seen == {"reviews-v1", "reviews-v2", "reviews-v3"}


def test_mesh_virtual_service_is_not_applied_to_the_gateway(dp: DataPlane) -> None:
    dp.vs("reviews", {"hosts": ["reviews"], "http": [{"route": [to()]}]})
    assert dp.get("/", "reviews", listener="ingress").status_code == 404


def test_gateway_name_relative_to_the_vs_namespace_and_match_gateways(dp: DataPlane) -> None:
    subsets_dr(dp)
    dp.vs(
        "bookinfo",
        {
            "hosts": ["*.example.com", "reviews"],
            "gateways": ["ingressgateway", "mesh"],
            "http": [
                {"match": [{"gateways": ["mesh"]}], "route": [to(subset="v1")]},
                # Destination hosts are relative to the VirtualService's namespace.
                {"route": [to("reviews.default", subset="v2")]},
            ],
        },
        namespace="istio-system",
    )
    assert instance(dp.get("/", "shop.example.com", listener="ingress")) == "reviews-v2"
    assert dp.get("/", "reviews", listener="ingress").status_code == 200
    # Short host "reviews" in istio-system is not the default namespace's reviews.
    assert {instance(dp.get("/", "reviews")) for _ in range(6)} == {
        "reviews-v1",
        "reviews-v2",
        "reviews-v3",
    }


def test_gateway_without_virtual_service_is_404(dp: DataPlane) -> None:
    assert dp.get("/", "reviews", listener="ingress").status_code == 404


# -- metrics and admin ------------------------------------------------------------------


def test_metric_labels_of_a_routed_request(dp: DataPlane) -> None:
    dp.get("/", "ratings", headers={"x-chaos-group": 'odd "group" \\ name'})
    series = [
        s
        for n, s, _ in dp.metrics()
        if n == "istio_requests_total" and s["chaos_group"] == 'odd "group" \\ name'
    ]
    by_reporter = {s["reporter"]: s for s in series}
    assert set(by_reporter) == {"source", "destination"}
    source = by_reporter["source"]
    assert source["source_workload"] == "frontend-v1"
    assert source["source_app"] == "frontend"
    assert source["destination_service"] == "ratings.default.svc.cluster.local"
    assert source["destination_service_name"] == "ratings"
    assert source["destination_workload"] == "ratings-v1"
    assert source["destination_version"] == "v1"
    assert source["response_flags"] == "-"
    assert source["request_protocol"] == "http"
    assert source["connection_security_policy"] == "unknown"


def test_group_label_defaults_to_unknown_and_histogram_is_consistent(dp: DataPlane) -> None:
    dp.get("/", "ratings")
    samples = dp.metrics()
    counts = {
        tuple(sorted(s.items())): v
        for n, s, v in samples
        if n == "istio_request_duration_milliseconds_count"
    }
    totals = {tuple(sorted(s.items())): v for n, s, v in samples if n == "istio_requests_total"}
    assert counts == totals
    assert any(dict(k)["chaos_group"] == "unknown" for k in totals)
    inf = [
        v
        for n, s, v in samples
        if n == "istio_request_duration_milliseconds_bucket" and s["le"] == "+Inf"
    ]
    assert sum(inf) == sum(totals.values())


def test_version_wait_for_times_out_with_408(dp: DataPlane) -> None:
    answer = dp.client.get(
        f"{dp.admin}/version", params={"wait_for": dp.version() + 1000, "timeout": 0.1}, timeout=5
    )
    assert answer.status_code == 408


def test_config_dump_and_readiness(dp: DataPlane) -> None:
    dp.vs("reviews", {"hosts": ["reviews"], "http": [{"route": [to()]}]})
    dump = dp.client.get(f"{dp.admin}/config_dump", timeout=5).json()
    assert list(dump["virtual_services"]) == ["default/reviews"]
    assert dp.client.get(f"{dp.admin}/healthz/ready", timeout=5).status_code == 200
