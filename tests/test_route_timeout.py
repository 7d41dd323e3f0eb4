"""Reading a route's timeout: the pure helpers, and the probe against the local control plane."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes import client, config

from chaosmesh_istio import probes
from chaosmesh_istio.durations import parse_duration_ns
from chaosmesh_istio.errors import InvalidArgument, NotFound, TargetError
from chaosmesh_istio.timeouts import route_timeout_ns, scale_duration

MS = 1_000_000
GROUP, VERSION, PLURAL = "networking.istio.io", "v1", "virtualservices"


def vs(*routes: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "ratings", "namespace": "shop"},
        "spec": {"hosts": ["ratings"], "http": list(routes)},
    }


def route(name: str | None = None, timeout: str | None = None, **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"route": [{"destination": {"host": "ratings"}}], **extra}
    if name is not None:
        found["name"] = name
    if timeout is not None:
        found["timeout"] = timeout
    return found


def test_the_only_route_needs_no_name() -> None:
    assert route_timeout_ns(vs(route("ratings", "1s"))) == 1000 * MS
    assert route_timeout_ns(vs(route(timeout="0.5s"))) == 500 * MS


def test_a_named_route_among_several() -> None:
    spec = vs(route("jason", "250ms", match=[{"headers": {}}]), route("default", "2s"))
    assert route_timeout_ns(spec, "jason") == 250 * MS
    assert route_timeout_ns(spec, "default") == 2000 * MS


def test_chaos_copies_are_not_the_users_routes() -> None:
    copy = route("chaos-run-1-0", "1s", fault={"abort": {"httpStatus": 503}})
    assert route_timeout_ns(vs(copy, route("ratings", "3s"))) == 3000 * MS


@pytest.mark.parametrize(
    ("spec", "name", "message"),
    [
        (vs(route("ratings")), None, "route 'ratings' of virtual service shop/ratings declares no"),
        (vs(route("ratings", "0s")), None, "declares no timeout"),
        (vs(route("ratings", "1s")), "v2", "has no HTTP route named 'v2'; its routes are"),
        (vs(route("a", "1s"), route("b", "1s")), None, "has 2 HTTP routes ['a', 'b']; name"),
        (vs(), None, "has 0 HTTP routes"),
        (vs(route("ratings", "soon")), None, "has timeout 'soon', which is not a duration"),
    ],
)
def test_a_missing_timeout_or_route_is_one_clear_sentence(
    spec: dict[str, Any], name: str | None, message: str
) -> None:
    with pytest.raises(TargetError) as caught:
        route_timeout_ns(spec, name)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("timeout", "factor", "expected"),
    [
        (1000, 0.9, "900ms"),
        (1000, 1, "1s"),
        (1000, 1.1, "1100ms"),
        (1500, 2, "3s"),
        (3, 0.5, "2ms"),
    ],
)
def test_scaled_to_the_millisecond(timeout: int, factor: float, expected: str) -> None:
    assert scale_duration(timeout * MS, factor) == expected


@pytest.mark.parametrize("factor", [0, -1, math.nan, math.inf, True, "0.9", None])
def test_a_bad_factor_is_refused(factor: Any) -> None:
    with pytest.raises(InvalidArgument, match="factor must be a number above 0"):
        scale_duration(1000 * MS, factor)


def test_a_delay_below_a_millisecond_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="shorter than 1ms"):
        scale_duration(1000 * MS, 0.0001)


@given(
    timeout_ms=st.integers(min_value=1, max_value=3_600_000),
    factor=st.floats(min_value=0.01, max_value=10, allow_nan=False, allow_infinity=False),
)
def test_the_scaled_duration_is_within_half_a_millisecond(timeout_ms: int, factor: float) -> None:
    exact = timeout_ms * MS * factor
    if round(exact / MS) == 0:
        with pytest.raises(InvalidArgument):
            scale_duration(timeout_ms * MS, factor)
        return
    written = scale_duration(timeout_ms * MS, factor)
    assert abs(parse_duration_ns(written) - exact) <= MS / 2 + 1
    assert parse_duration_ns(written) % MS == 0


@pytest.fixture
def kube(local_mesh: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[client.CustomObjectsApi]:
    monkeypatch.setenv("KUBECONFIG", str(local_mesh.kubeconfig))
    monkeypatch.delenv("KUBERNETES_CONTEXT", raising=False)
    api = config.new_client_from_config(config_file=str(local_mesh.kubeconfig))
    yield client.CustomObjectsApi(api)
    api.close()


def test_the_probe_reads_the_live_virtual_service(kube: client.CustomObjectsApi) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VirtualService",
        "metadata": {"name": "ratings-timeout", "namespace": "default"},
        "spec": {
            "hosts": ["ratings"],
            "http": [
                {"name": "slow", "match": [{"uri": {"prefix": "/slow"}}], **route(timeout="4s")},
                {"name": "ratings", "timeout": "1s", **route()},
            ],
        },
    }
    kube.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
    read = probes.route_timeout
    assert read("ratings-timeout", route="ratings") == "1s"
    assert read("ratings-timeout", route="ratings", factor=0.9) == "900ms"
    assert read("ratings-timeout", route="slow", factor=1.1) == "4400ms"
    with pytest.raises(TargetError, match="has 2 HTTP routes"):
        read("ratings-timeout")
    with pytest.raises(NotFound, match="virtual service default/nope was not found"):
        read("nope")
    # Bad input is refused before anything is read.
    with pytest.raises(InvalidArgument, match="factor"):
        read("nope", factor=0)
    with pytest.raises(InvalidArgument, match="route must be"):
        read("nope", route="")
    with pytest.raises(InvalidArgument, match="virtual_service"):
        read(None)  # type: ignore[arg-type]
