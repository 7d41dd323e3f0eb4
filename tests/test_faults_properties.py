"""Properties of the fault model, checked with generated VirtualServices and requests.

The router is the local mesh's implementation of Istio's matching rules, so these
properties state what DESIGN.md promises: requests without the scope header route
exactly as before; requests with it reach the same destinations, with the fault.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chaosmesh_istio import faults
from chaosmesh_istio.localmesh.routing import Request, select_route
from chaosmesh_istio.scoping import make_scope
from chaosmesh_istio.spec import make_fault, make_selection

RUN = "r-42"
MARKER = faults.Marker(RUN, "me", "2026-01-01T00:00:00Z", "2026-01-01T00:15:00Z")
WORDS = st.sampled_from(["a", "ab", "b", "jason", "v2"])
PATHS = st.sampled_from(["/", "/a", "/ab", "/api", "/api/v1", "/B"])
HEADERS = st.sampled_from(["end-user", "x-version"])


def string_match(values: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, str]]:
    return st.one_of(
        st.builds(lambda v: {"exact": v}, values),
        st.builds(lambda v: {"prefix": v}, values),
        st.builds(lambda v: {"regex": v + ".*"}, values),
    )


match_entries = st.fixed_dictionaries(
    {},
    optional={
        "uri": string_match(PATHS),
        "headers": st.dictionaries(HEADERS, string_match(WORDS), min_size=1, max_size=2),
        "withoutHeaders": st.dictionaries(HEADERS, string_match(WORDS), min_size=1, max_size=1),
        "method": st.builds(lambda m: {"exact": m}, st.sampled_from(["GET", "POST"])),
        "ignoreUriCase": st.booleans(),
    },
)
destinations = st.lists(
    st.builds(
        lambda host, subset, weight: {
            "destination": {"host": host, "subset": subset},
            "weight": weight,
        },
        st.sampled_from(["reviews", "ratings"]),
        st.sampled_from(["v1", "v2"]),
        st.integers(1, 100),
    ),
    min_size=1,
    max_size=2,
)
routes = st.fixed_dictionaries(
    {"route": destinations},
    optional={
        "match": st.lists(match_entries, min_size=1, max_size=3),
        "timeout": st.sampled_from(["1s", "3s"]),
        "retries": st.just({"attempts": 2, "perTryTimeout": "1s"}),
    },
)


@st.composite
def virtual_services(draw: st.DrawFn) -> dict[str, Any]:
    http = draw(st.lists(routes, min_size=1, max_size=5))
    for i, route in enumerate(http):
        if draw(st.booleans()):
            route["name"] = f"route-{i}"
    meta: dict[str, Any] = {"name": "reviews", "namespace": "default"}
    if draw(st.booleans()):
        meta["annotations"] = {"team": "books"}
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": meta,
        "spec": {"hosts": ["reviews"], "http": http},
    }


requests = st.builds(
    lambda method, path, headers: Request(method=method, path=path, headers=headers),
    st.sampled_from(["GET", "POST"]),
    PATHS,
    st.dictionaries(HEADERS, WORDS, max_size=2),
)
faults_ = (
    st.tuples(st.sampled_from([None, "5ms", "2s"]), st.sampled_from([None, 503, 500]))
    .filter(lambda pair: pair != (None, None))
    .map(lambda pair: make_fault(delay=pair[0], abort_status=pair[1]))
)
selections = st.one_of(
    st.just(make_selection()),
    st.builds(
        lambda h: make_selection(destination_host=h), st.sampled_from(["reviews", "ratings"])
    ),
)


def inject_or_none(vs: dict[str, Any], fault: Any, selection: Any) -> faults.Injection | None:
    try:
        return faults.inject(vs, fault, make_scope(RUN), selection, MARKER)
    except faults.TargetError:
        return None  # nothing to fault for this selection: covered by unit tests


def chosen(vs: dict[str, Any], request: Request) -> dict[str, Any] | None:
    http = vs["spec"]["http"]
    index = select_route(http, request)
    return None if index is None else http[index]


@settings(max_examples=300, deadline=None)
@given(virtual_services(), faults_, selections)
def test_removing_after_injecting_gives_back_the_identical_object(
    vs: dict[str, Any], fault: Any, selection: Any
) -> None:
    injection = inject_or_none(vs, fault, selection)
    if injection is not None:
        assert faults.remove(injection.virtual_service, RUN).virtual_service == vs


@settings(max_examples=300, deadline=None)
@given(virtual_services(), faults_, selections, requests)
def test_requests_without_the_header_route_exactly_as_before(
    vs: dict[str, Any], fault: Any, selection: Any, request: Request
) -> None:
    injection = inject_or_none(vs, fault, selection)
    if injection is not None:
        assert chosen(injection.virtual_service, request) == chosen(vs, request)


@settings(max_examples=300, deadline=None)
@given(virtual_services(), faults_, selections, requests)
def test_requests_with_the_header_keep_their_destinations_and_get_the_fault(
    vs: dict[str, Any], fault: Any, selection: Any, request: Request
) -> None:
    injection = inject_or_none(vs, fault, selection)
    if injection is None:
        return
    tagged = Request(
        method=request.method, path=request.path, headers={**request.headers, "x-chaos-run": RUN}
    )
    before = chosen(vs, tagged)
    after = chosen(injection.virtual_service, tagged)
    if before is None:
        assert after is None
        return
    assert after is not None
    assert after["route"] == before["route"]
    targeted = selection.destination_host is None or any(
        d["destination"]["host"] == selection.destination_host for d in before["route"]
    )
    if targeted:
        assert after["fault"] == fault.to_istio()
        assert faults.chaos_route_run(after) == RUN
    else:
        assert after == before
