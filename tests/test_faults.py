"""The pure fault model: injection, removal, scoping, argument validation."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from chaosmesh_istio import faults
from chaosmesh_istio.errors import InvalidArgument, TargetError
from chaosmesh_istio.localmesh.routing import Request, select_route
from chaosmesh_istio.scoping import make_scope
from chaosmesh_istio.spec import make_fault, make_selection

RUN = "run-1"
MARKER = faults.Marker(RUN, "sre@host", "2026-01-01T00:00:00Z", "2026-01-01T00:15:00Z")
ABORT = make_fault(abort_status=503)
HEADER = make_scope(RUN)


def vs(*routes: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "reviews", "namespace": "default"}
    if annotations is not None:
        meta["annotations"] = annotations
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": meta,
        "spec": {"hosts": ["reviews"], "http": list(routes)},
    }


def to(host: str, subset: str | None = None, weight: int | None = None) -> dict[str, Any]:
    dest: dict[str, Any] = {"destination": {"host": host}}
    if subset:
        dest["destination"]["subset"] = subset
    if weight is not None:
        dest["weight"] = weight
    return dest


def inject(obj: dict[str, Any], **kwargs: Any) -> faults.Injection:
    return faults.inject(
        obj,
        kwargs.pop("fault", ABORT),
        kwargs.pop("scope", HEADER),
        make_selection(**kwargs),
        MARKER,
    )


def routed(obj: dict[str, Any], **headers: str) -> dict[str, Any] | None:
    routes = obj["spec"]["http"]
    index = select_route(routes, Request(path="/", headers=headers))
    return None if index is None else routes[index]


def test_copy_goes_before_each_route_with_the_scope_and_the_fault() -> None:
    original = vs(
        {"name": "v2", "match": [{"uri": {"prefix": "/v2"}}], "route": [to("reviews", "v2")]},
        {"route": [to("reviews", "v1")]},
    )
    result = inject(original)
    http = result.virtual_service["spec"]["http"]
    assert [r.get("name") for r in http] == [f"chaos-{RUN}-0", "v2", f"chaos-{RUN}-1", None]
    assert http[0]["match"] == [
        {"uri": {"prefix": "/v2"}, "headers": {"x-chaos-run": {"exact": RUN}}}
    ]
    assert http[2]["match"] == [{"headers": {"x-chaos-run": {"exact": RUN}}}]
    assert http[0]["route"] == original["spec"]["http"][0]["route"]
    assert http[0]["fault"] == {"abort": {"httpStatus": 503, "percentage": {"value": 100.0}}}
    assert [f.original for f in result.faulted] == ["v2", "#1"]
    assert original["spec"]["http"][0]["name"] == "v2", "the input must not be mutated"


def test_each_ored_match_entry_gets_the_header() -> None:
    original = vs(
        {
            "match": [{"headers": {"end-user": {"exact": "jason"}}}, {"uri": {"regex": "/a.*"}}],
            "route": [to("reviews", "v2")],
        }
    )
    copy_ = inject(original).virtual_service["spec"]["http"][0]
    assert copy_["match"] == [
        {"headers": {"end-user": {"exact": "jason"}, "x-chaos-run": {"exact": RUN}}},
        {"uri": {"regex": "/a.*"}, "headers": {"x-chaos-run": {"exact": RUN}}},
    ]


def test_annotation_records_run_owner_expiry_and_routes() -> None:
    result = inject(vs({"route": [to("reviews")]}, annotations={"team": "books"}))
    meta = result.virtual_service["metadata"]
    assert meta["annotations"]["team"] == "books"
    runs = json.loads(meta["annotations"][faults.RUNS_ANNOTATION])
    assert runs == {
        RUN: {
            "owner": "sre@host",
            "created": "2026-01-01T00:00:00Z",
            "expires": "2026-01-01T00:15:00Z",
            "routes": [f"chaos-{RUN}-0"],
        }
    }


def test_remove_restores_the_object_and_drops_a_created_annotations_map() -> None:
    original = vs({"route": [to("reviews")]})
    assert faults.remove(inject(original).virtual_service, RUN).virtual_service == original


def test_remove_keeps_edits_made_meanwhile() -> None:
    injected = inject(vs({"route": [to("reviews", "v1")]})).virtual_service
    edited = copy.deepcopy(injected)
    edited["spec"]["http"].append({"name": "new", "route": [to("ratings")]})
    edited["spec"]["http"][1]["timeout"] = "3s"
    edited["metadata"]["annotations"]["flagger"] = "canary"
    after = faults.remove(edited, RUN).virtual_service
    assert after["spec"]["http"] == [
        {"route": [to("reviews", "v1")], "timeout": "3s"},
        {"name": "new", "route": [to("ratings")]},
    ]
    assert after["metadata"]["annotations"] == {"flagger": "canary"}


def test_two_runs_each_remove_only_their_own() -> None:
    other = faults.Marker("run-2", "b@h", "2026-01-01T00:00:00Z", "2026-01-01T00:10:00Z")
    original = vs({"route": [to("reviews")]})
    first = inject(original).virtual_service
    both = faults.inject(first, ABORT, make_scope("run-2"), make_selection(), other)
    names = [r.get("name") for r in both.virtual_service["spec"]["http"]]
    assert names == [f"chaos-{RUN}-0", "chaos-run-2-0", None]
    only_second = faults.remove(both.virtual_service, RUN)
    assert only_second.removed == (f"chaos-{RUN}-0",)
    assert [r.get("name") for r in only_second.virtual_service["spec"]["http"]] == [
        "chaos-run-2-0",
        None,
    ]
    assert faults.remove(only_second.virtual_service, "run-2").virtual_service == original


def test_remove_all_runs_and_active_runs() -> None:
    once = inject(vs({"route": [to("reviews")]})).virtual_service
    other = faults.Marker("run-2", "b@h", "t0", "t1")
    twice = faults.inject(once, ABORT, make_scope("run-2"), make_selection(), other)
    active = faults.active_runs(twice.virtual_service)
    assert [(a["run_id"], a["owner"]) for a in active] == [(RUN, "sre@host"), ("run-2", "b@h")]
    removal = faults.remove(twice.virtual_service)
    assert removal.runs == (RUN, "run-2")
    assert faults.active_runs(removal.virtual_service) == []


def test_same_run_can_inject_twice_into_other_routes_but_not_the_same_route() -> None:
    original = vs({"name": "a", "route": [to("a")]}, {"name": "b", "route": [to("b")]})
    first = inject(original, routes=["a"]).virtual_service
    second = inject(first, routes="b")
    assert [f.name for f in second.faulted] == [f"chaos-{RUN}-1"]
    with pytest.raises(TargetError, match="already carries a fault of run"):
        inject(second.virtual_service, routes=["a"])
    assert faults.remove(second.virtual_service, RUN).virtual_service == original


def test_selection_by_destination_host_and_subset() -> None:
    original = vs(
        {"name": "canary", "route": [to("reviews", "v1", 90), to("reviews.default.svc", "v2", 10)]},
        {"name": "ratings", "route": [to("ratings.default.svc.cluster.local")]},
    )
    assert [f.original for f in inject(original, destination_host="ratings").faulted] == ["ratings"]
    picked = inject(original, destination_host="reviews", destination_subset="v2")
    assert [f.original for f in picked.faulted] == ["canary"]
    with pytest.raises(TargetError, match="matches no HTTP route"):
        inject(original, destination_host="reviews", destination_subset="v3")


def test_redirects_are_skipped_when_selecting_all_and_refused_by_name() -> None:
    original = vs(
        {"name": "old", "match": [{"uri": {"exact": "/old"}}], "redirect": {"uri": "/new"}},
        {"name": "main", "route": [to("reviews")]},
    )
    result = inject(original)
    assert result.skipped == ("old",)
    assert [f.original for f in result.faulted] == ["main"]
    with pytest.raises(TargetError, match="redirect or direct response"):
        inject(original, routes=["old"])


@pytest.mark.parametrize(
    ("obj", "kwargs", "message"),
    [
        (
            {**vs(), "spec": {"hosts": ["x"], "tcp": [{"route": [to("x")]}]}},
            {},
            "has no HTTP routes \\(it only has tcp routes\\)",
        ),
        (vs({"route": [to("reviews")]}), {"routes": ["nope"]}, "no HTTP route named 'nope'"),
        (vs({"delegate": {"name": "reviews-v2"}}), {}, "inject into that delegate"),
        (
            vs({"match": [{"headers": {"x-chaos-run": {"exact": "other"}}}], "route": [to("r")]}),
            {},
            "cannot be combined with the scope",
        ),
        (
            vs({"match": [{"withoutHeaders": {"x-chaos-run": {}}}], "route": [to("r")]}),
            {},
            "could never fire",
        ),
    ],
)
def test_targets_that_cannot_carry_the_fault(
    obj: dict[str, Any], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(TargetError, match=message):
        inject(obj, **kwargs)


def test_existing_condition_on_the_scope_header_is_combined_when_one_implies_the_other() -> None:
    original = vs(
        {"match": [{"headers": {"x-chaos-run": {"prefix": "run"}}}], "route": [to("reviews")]}
    )
    copy_ = inject(original).virtual_service["spec"]["http"][0]
    assert copy_["match"] == [{"headers": {"x-chaos-run": {"exact": RUN}}}]


def test_unscoped_fault_copies_the_match_unchanged() -> None:
    scope = make_scope(RUN, scope="none", allow_unscoped=True)
    original = vs({"match": [{"uri": {"prefix": "/a"}}], "route": [to("r")]}, {"route": [to("r")]})
    http = inject(original, scope=scope).virtual_service["spec"]["http"]
    assert http[0]["match"] == [{"uri": {"prefix": "/a"}}]
    assert "match" not in http[2]
    assert routed(inject(original, scope=scope).virtual_service)["fault"]  # type: ignore[index]


def test_baggage_scope_matches_the_member_among_others() -> None:
    scope = make_scope(RUN, scope="baggage")
    assert scope.send_value == f"chaos-run={RUN}"
    injected = inject(vs({"route": [to("reviews")]}), scope=scope).virtual_service
    for baggage in (
        f"chaos-run={RUN}",
        f"userId=alice,chaos-run={RUN}",
        f"chaos-run = {RUN};ttl=5, serverNode=DF%2028",
    ):
        assert "fault" in (routed(injected, baggage=baggage) or {}), baggage
    for baggage in (f"chaos-run={RUN}x", "chaos-run=other", f"xchaos-run={RUN}", ""):
        assert "fault" not in (routed(injected, baggage=baggage) or {}), baggage


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "no fault given"),
        ({"delay": "5 s"}, "'5 s' is not a duration"),
        ({"delay": "-1s"}, "between 1ms and 1h"),
        ({"delay": "abc"}, "'abc' is not a duration"),
        ({"delay": 5}, "delay 5 is not a duration"),
        ({"delay": "0s"}, "between 1ms and 1h"),
        ({"delay": "2h"}, "between 1ms and 1h"),
        ({"delay": "1s", "delay_percentage": 150}, "delay_percentage must be a number"),
        ({"delay": "1s", "delay_percentage": 0}, "greater than 0"),
        ({"delay": "1s", "delay_percentage": "lots"}, "delay_percentage"),
        ({"delay": "1s", "delay_percentage": True}, "delay_percentage"),
        ({"abort_status": 700}, "between 200 and 599"),
        ({"abort_status": 199}, "between 200 and 599"),
        ({"abort_status": "five"}, "abort_status"),
        ({"abort_status": 503, "abort_percentage": -5}, "abort_percentage"),
        ({"abort_grpc_status": "BROKEN"}, "gRPC status name"),
        ({"abort_grpc_status": "OK"}, "gRPC status name"),
        ({"abort_grpc_status": 42}, "gRPC status name"),
        ({"abort_status": 503, "abort_grpc_status": "UNAVAILABLE"}, "set only one"),
    ],
)
def test_invalid_faults(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        make_fault(**kwargs)


def test_valid_faults_are_normalised() -> None:
    fault = make_fault("1.5s", "25", abort_grpc_status=14, abort_percentage=10)
    assert fault.to_istio() == {
        "delay": {"fixedDelay": "1500ms", "percentage": {"value": 25.0}},
        "abort": {"grpcStatus": "UNAVAILABLE", "percentage": {"value": 10.0}},
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scope": "none"}, "set allow_unscoped"),
        ({"scope": "none", "allow_unscoped": "yes"}, "set allow_unscoped"),
        ({"scope": "cookie"}, "scope must be"),
        ({"header": "x chaos"}, "HTTP header name"),
        ({"header": ":authority"}, "HTTP header name"),
        ({"header": ""}, "HTTP header name"),
        ({"header_match": "glob"}, "header_match must be"),
        ({"header_match": "regex", "header_value": "(?=x)"}, "valid RE2"),
        ({"header_match": "regex", "header_value": "a+"}, "does not match the run id"),
        ({"header_value": " padded"}, "not a valid header value"),
        ({"header_value": ""}, "non-empty string"),
        ({"scope": "baggage", "header_value": "a,b"}, "baggage member value"),
    ],
)
def test_invalid_scopes(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        make_scope(RUN, **kwargs)


def test_prefix_scope_sends_a_matching_value() -> None:
    scope = make_scope(RUN, header="X-Test", header_value="game-day-", header_match="prefix")
    assert (scope.header, scope.condition(), scope.send_value) == (
        "x-test",
        {"prefix": "game-day-"},
        f"game-day-{RUN}",
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"routes": []}, "non-empty list"),
        ({"routes": [1]}, "route names"),
        ({"destination_subset": "v1"}, "needs destination_host"),
        ({"destination_host": "a b"}, "without spaces"),
    ],
)
def test_invalid_selections(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        make_selection(**kwargs)
