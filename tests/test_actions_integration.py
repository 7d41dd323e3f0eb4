"""The actions and probes against the local control plane, over real HTTP."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from chaosmesh_istio import actions, faults, probes
from chaosmesh_istio.errors import (
    ApiUnavailable,
    ChaosMeshIstioError,
    InvalidArgument,
    KubeError,
    NotFound,
    TargetError,
)
from chaosmesh_istio.kube import open_virtual_services
from tests.flaky_proxy import flaky_proxy, kubeconfig_for

GROUP, VERSION, PLURAL = "networking.istio.io", "v1", "virtualservices"
FIXTURES = Path(__file__).parent / "fixtures" / "virtualservices.yaml"
_names = itertools.count()


@pytest.fixture
def kube(local_mesh: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[client.CustomObjectsApi]:
    """The official client on the mesh's kubeconfig, as a second, independent writer."""
    monkeypatch.setenv("KUBECONFIG", str(local_mesh.kubeconfig))
    monkeypatch.delenv("KUBERNETES_CONTEXT", raising=False)
    api = config.new_client_from_config(config_file=str(local_mesh.kubeconfig))
    yield client.CustomObjectsApi(api)
    api.close()


def create(kube: client.CustomObjectsApi, spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    name = meta.pop("name", f"vs-{next(_names)}")
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": "default", **meta},
        "spec": spec,
    }
    return dict(kube.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body))


def read(kube: client.CustomObjectsApi, name: str, namespace: str = "default") -> dict[str, Any]:
    return dict(kube.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))


def user_view(vs: dict[str, Any]) -> str:
    """What a user owns in a VirtualService, serialised: spec, labels and annotations."""
    meta = vs["metadata"]
    owned = {k: meta.get(k) for k in ("labels", "annotations")}
    return yaml.safe_dump({"metadata": owned, "spec": vs["spec"]}, sort_keys=False)


ROUTES = {
    "hosts": ["reviews"],
    "http": [
        {
            "name": "v2",
            "match": [{"headers": {"end-user": {"exact": "jason"}}}],
            "route": [{"destination": {"host": "reviews", "subset": "v2"}}],
        },
        {"name": "default", "route": [{"destination": {"host": "reviews", "subset": "v1"}}]},
    ],
}
CONF = {"chaosmesh_run_id": "it-run"}


def test_inject_then_remove_through_the_api(kube: client.CustomObjectsApi) -> None:
    before = create(kube, copy.deepcopy(ROUTES))
    name = before["metadata"]["name"]
    result = actions.inject_fault(name, delay="2s", abort_status=503, configuration=CONF)
    assert result["run_id"] == "it-run"
    assert (result["header"], result["header_value"]) == ("x-chaos-run", "it-run")
    assert result["routes"] == ["chaos-it-run-0", "chaos-it-run-1"]
    assert result["virtual_services"] == [f"default/{name}"]
    assert "+  - name: chaos-it-run-0" in result["diff"]
    live = read(kube, name)
    assert [r["name"] for r in live["spec"]["http"]] == [
        "chaos-it-run-0",
        "v2",
        "chaos-it-run-1",
        "default",
    ]
    found = probes.active_faults(name, configuration=CONF)
    assert [(f["run_id"], f["route"]) for f in found] == [
        ("it-run", "chaos-it-run-0"),
        ("it-run", "chaos-it-run-1"),
    ]
    assert probes.active_fault_count(name) == 2

    removal = actions.remove_faults(name, configuration=CONF)
    assert removal["verified"] is True
    assert removal["removed"] == [
        {"virtual_service": f"default/{name}", "routes": ["chaos-it-run-0", "chaos-it-run-1"]}
    ]
    after = read(kube, name)
    assert user_view(after) == user_view(before)
    assert after["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]
    assert probes.active_fault_count(name) == 0


def test_an_edit_made_between_injection_and_removal_survives(
    kube: client.CustomObjectsApi,
) -> None:
    name = create(kube, copy.deepcopy(ROUTES), labels={"app": "reviews"})["metadata"]["name"]
    actions.inject_abort(name, status=500, percentage=30, configuration=CONF)
    edited = read(kube, name)
    edited["spec"]["http"][-1]["timeout"] = "3s"
    edited["spec"]["http"].append(
        {"name": "ratings", "route": [{"destination": {"host": "ratings"}}]}
    )
    edited["metadata"]["labels"]["owner"] = "flagger"
    edited["metadata"]["annotations"]["argocd.argoproj.io/sync"] = "x"
    kube.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, name, edited)

    actions.remove_faults(name, configuration=CONF)
    after = read(kube, name)
    assert [r["name"] for r in after["spec"]["http"]] == ["v2", "default", "ratings"]
    assert after["spec"]["http"][1]["timeout"] == "3s"
    assert after["metadata"]["labels"] == {"app": "reviews", "owner": "flagger"}
    assert after["metadata"]["annotations"] == {"argocd.argoproj.io/sync": "x"}


def realistic() -> list[dict[str, Any]]:
    return [o for o in yaml.safe_load(FIXTURES.read_text()) if o["kind"] == "VirtualService"]


@pytest.mark.parametrize("fault", [{"delay": "1500ms"}, {"abort_status": 503}], ids=str)
def test_realistic_virtual_services_accept_the_fault_and_are_restored_byte_for_byte(
    kube: client.CustomObjectsApi, fault: dict[str, Any]
) -> None:
    injected = 0
    for obj in realistic():
        spec = copy.deepcopy(obj["spec"])
        meta = {k: v for k, v in obj["metadata"].items() if k in ("labels", "annotations")}
        before = create(kube, spec, **meta)
        name = before["metadata"]["name"]
        http = spec.get("http") or []
        if any("delegate" in r for r in http) or not any("route" in r for r in http):
            # A root with delegating routes, or nothing that forwards: refused, not skipped.
            with pytest.raises(
                TargetError, match=r"delegat|no HTTP routes|no destination|matches no"
            ):
                actions.inject_fault(name, **fault, configuration=CONF)
            assert (
                read(kube, name)["metadata"]["resourceVersion"]
                == (before["metadata"]["resourceVersion"])
            )
            continue
        actions.inject_fault(name, **fault, configuration=CONF)
        injected += 1
        live = read(kube, name)
        assert probes.active_fault_count(name) >= 1, name
        assert len(live["spec"]["http"]) > len(spec["http"])
        actions.remove_faults(name, configuration=CONF)
        assert user_view(read(kube, name)) == user_view(before), obj["metadata"]["name"]
    assert injected >= 8


def test_dry_run_shows_the_diff_and_writes_nothing(kube: client.CustomObjectsApi) -> None:
    before = create(kube, copy.deepcopy(ROUTES))
    name = before["metadata"]["name"]
    result = actions.inject_delay(name, delay="1s", routes=["v2"], dry_run=True, configuration=CONF)
    assert result["dry_run"] is True
    assert result["routes"] == ["chaos-it-run-0"]
    assert "fixedDelay: 1s" in result["diff"]
    assert read(kube, name)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_label_selector_targets_every_matching_virtual_service(
    kube: client.CustomObjectsApi,
) -> None:
    team = f"team-{next(_names)}"
    names = [
        create(kube, copy.deepcopy(ROUTES), labels={"team": team})["metadata"]["name"]
        for _ in range(3)
    ]
    other = create(kube, copy.deepcopy(ROUTES), labels={"team": "other"})["metadata"]["name"]
    conf = {"chaosmesh_run_id": "sel-run"}
    result = actions.inject_fault(
        label_selector=f"team={team}", abort_status=503, routes=["default"], configuration=conf
    )
    assert sorted(result["virtual_services"]) == sorted(f"default/{n}" for n in names)
    assert probes.active_fault_count(other) == 0
    assert probes.active_fault_count(label_selector=f"team={team}") == 3
    actions.remove_faults(label_selector=f"team={team}", configuration=conf)
    assert probes.active_fault_count(label_selector=f"team={team}") == 0


def _labelled(kube: client.CustomObjectsApi, count: int) -> tuple[str, list[dict[str, Any]]]:
    team = f"team-{next(_names)}"
    return team, [create(kube, copy.deepcopy(ROUTES), labels={"team": team}) for _ in range(count)]


def test_selector_injection_is_all_or_nothing_when_one_patch_is_refused(
    kube: client.CustomObjectsApi,
    local_mesh: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Eight objects patched concurrently; the API refuses one patch (whichever comes
    # first). The call fails with that error and the other seven are undone.
    team, created = _labelled(kube, 8)
    with flaky_proxy(local_mesh.url, str(local_mesh.ca)) as proxy:
        path = kubeconfig_for(Path(local_mesh.kubeconfig), proxy.url, tmp_path / "kubeconfig")
        monkeypatch.setenv("KUBECONFIG", str(path))
        proxy.fail_next(403, methods=("PATCH",))
        with pytest.raises(KubeError, match="not allowed to patch"):
            actions.inject_abort(
                label_selector=f"team={team}", status=503, configuration={"chaosmesh_run_id": "aon"}
            )
        patches = [status for method, _, status in proxy.seen if method == "PATCH"]
    # 8 injections (one refused), then 7 undone.
    assert sorted(patches) == [200] * 14 + [403]
    for before in created:
        after = read(kube, before["metadata"]["name"])
        assert faults.active_runs(after) == []
        assert user_view(after) == user_view(before)


def test_selector_removal_cleans_every_other_object_when_one_patch_is_refused(
    kube: client.CustomObjectsApi,
    local_mesh: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    team, created = _labelled(kube, 8)
    conf = {"chaosmesh_run_id": "rm-one-refused"}
    actions.inject_delay(label_selector=f"team={team}", delay="1s", configuration=conf)
    with flaky_proxy(local_mesh.url, str(local_mesh.ca)) as proxy:
        path = kubeconfig_for(Path(local_mesh.kubeconfig), proxy.url, tmp_path / "kubeconfig")
        monkeypatch.setenv("KUBECONFIG", str(path))
        proxy.fail_next(403, methods=("PATCH",))
        with pytest.raises(KubeError, match="not allowed to patch"):
            actions.remove_faults(label_selector=f"team={team}", configuration=conf)
    monkeypatch.setenv("KUBECONFIG", str(local_mesh.kubeconfig))  # past the proxy again
    left = [
        o["metadata"]["name"]
        for o in created
        if faults.active_runs(read(kube, o["metadata"]["name"]))
    ]
    assert len(left) == 1  # only the refused one still carries the fault
    actions.remove_faults(label_selector=f"team={team}", configuration=conf)
    for before in created:
        assert user_view(read(kube, before["metadata"]["name"])) == user_view(before)


def test_concurrent_and_one_at_a_time_patches_write_the_same_objects(
    kube: client.CustomObjectsApi,
) -> None:
    results = []
    for concurrency in (1, 8):
        team, created = _labelled(kube, 12)
        conf = {"chaosmesh_run_id": "same", "chaosmesh_api_concurrency": concurrency}
        injected = actions.inject_delay(
            label_selector=f"team={team}", delay="1s", configuration=conf
        )
        names = [o["metadata"]["name"] for o in created]
        # The answer lists the objects in the selector's order, whatever finished first.
        assert injected["virtual_services"] == sorted(f"default/{n}" for n in names)
        results.append([read(kube, n)["spec"] for n in names])
        removed = actions.remove_faults(label_selector=f"team={team}", configuration=conf)
        assert len(removed["removed"]) == 12
        assert [user_view(read(kube, n)) for n in names] == [user_view(o) for o in created]
    assert results[0] == results[1]


def test_two_runs_on_one_virtual_service_remove_only_their_own(
    kube: client.CustomObjectsApi,
) -> None:
    before = create(kube, copy.deepcopy(ROUTES))
    name = before["metadata"]["name"]
    actions.inject_abort(name, status=503, configuration={"chaosmesh_run_id": "run-a"})
    actions.inject_delay(name, delay="1s", configuration={"chaosmesh_run_id": "run-b"})
    actions.remove_faults(name, configuration={"chaosmesh_run_id": "run-a"})
    assert {f["run_id"] for f in probes.active_faults(name)} == {"run-b"}
    actions.remove_faults(name, run_id="run-b")
    assert user_view(read(kube, name)) == user_view(before)


def test_a_concurrent_writer_is_never_overwritten(
    kube: client.CustomObjectsApi, local_mesh: Any
) -> None:
    """The other writer lands between our read and our patch: we re-read and re-apply."""
    name = create(kube, copy.deepcopy(ROUTES))["metadata"]["name"]
    vss = open_virtual_services()
    calls = []

    def change(current: dict[str, Any]) -> dict[str, Any]:
        calls.append(current["metadata"]["resourceVersion"])
        if len(calls) == 1:
            other = read(kube, name)
            other["metadata"].setdefault("labels", {})["edited"] = "meanwhile"
            kube.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, name, other)
        current["spec"]["http"][0]["timeout"] = "9s"
        return current

    vss.update(name, "default", change)
    after = read(kube, name)
    assert len(calls) == 2 and calls[0] != calls[1]
    assert after["metadata"]["labels"] == {"edited": "meanwhile"}
    assert after["spec"]["http"][0]["timeout"] == "9s"


def test_transient_errors_and_dropped_connections_are_retried(
    kube: client.CustomObjectsApi,
    local_mesh: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = create(kube, copy.deepcopy(ROUTES))
    name = before["metadata"]["name"]
    with flaky_proxy(local_mesh.url, str(local_mesh.ca)) as proxy:
        path = kubeconfig_for(Path(local_mesh.kubeconfig), proxy.url, tmp_path / "kubeconfig")
        monkeypatch.setenv("KUBECONFIG", str(path))
        proxy.fail_next(503, 0, 500, methods=("PATCH",))
        actions.inject_abort(name, status=503, configuration=CONF)
        assert [s for m, _, s in proxy.seen if m == "PATCH"] == [503, 0, 500, 200]
        proxy.fail_next(502, 504, methods=("GET",))
        actions.remove_faults(name, configuration=CONF)
        proxy.fail_next(*[503] * 10)
        with pytest.raises(ApiUnavailable, match="kept failing"):
            probes.active_faults(name, configuration={"chaosmesh_api_attempts": 3})
    assert user_view(read(kube, name)) == user_view(before)


def test_unreachable_api_is_one_clear_error(
    tmp_path: Path, local_mesh: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with flaky_proxy(local_mesh.url, str(local_mesh.ca)) as proxy:
        dead = proxy.url
    path = kubeconfig_for(Path(local_mesh.kubeconfig), dead, tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(path))
    conf = {"chaosmesh_api_attempts": 2}
    with pytest.raises(ApiUnavailable, match="is unreachable after 2 attempts") as caught:
        probes.active_faults("reviews", configuration=conf)
    assert "\n" not in str(caught.value)


def test_missing_virtual_service_and_namespace_guard(kube: client.CustomObjectsApi) -> None:
    with pytest.raises(NotFound, match="virtual service default/nope was not found"):
        actions.inject_abort("nope", status=503, configuration=CONF)
    with pytest.raises(InvalidArgument, match="system namespace"):
        actions.inject_abort("x", namespace="istio-system", status=503)
    allowed = {"chaosmesh_allowed_namespaces": ["team-a"]}
    with pytest.raises(InvalidArgument, match="not in chaosmesh_allowed_namespaces"):
        actions.inject_abort("x", namespace="default", status=503, configuration=allowed)
    assert actions.remove_faults("nope", configuration=CONF)["removed"] == []


# At least 30 invalid calls: each raises one sentence and writes nothing.
INVALID: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("no fault", {}, InvalidArgument, "no fault given"),
    ("delay with a space", {"delay": "5 s"}, InvalidArgument, "'5 s'"),
    ("negative delay", {"delay": "-1s"}, InvalidArgument, "'-1s'"),
    ("delay not a duration", {"delay": "abc"}, InvalidArgument, "'abc'"),
    ("delay without unit", {"delay": "5"}, InvalidArgument, "'5'"),
    ("delay too long", {"delay": "3h"}, InvalidArgument, "between 1ms and 1h"),
    ("delay percentage > 100", {"delay": "1s", "delay_percentage": 101}, InvalidArgument, "101"),
    ("delay percentage 0", {"delay": "1s", "delay_percentage": 0}, InvalidArgument, "greater"),
    ("abort percentage < 0", {"abort_status": 503, "abort_percentage": -1}, InvalidArgument, "-1"),
    ("abort percentage text", {"abort_status": 503, "abort_percentage": "x"}, InvalidArgument, "x"),
    ("status 700", {"abort_status": 700}, InvalidArgument, "between 200 and 599"),
    ("status 100", {"abort_status": 100}, InvalidArgument, "between 200 and 599"),
    ("status bool", {"abort_status": True}, InvalidArgument, "abort_status"),
    ("unknown grpc", {"abort_grpc_status": "NOPE"}, InvalidArgument, "gRPC status"),
    ("grpc code 17", {"abort_grpc_status": 17}, InvalidArgument, "gRPC status"),
    ("both aborts", {"abort_status": 503, "abort_grpc_status": 14}, InvalidArgument, "only one"),
    ("header with space", {"abort_status": 503, "header": "x chaos"}, InvalidArgument, "header"),
    ("header with colon", {"abort_status": 503, "header": "x:y"}, InvalidArgument, "header"),
    ("header not text", {"abort_status": 503, "header": 5}, InvalidArgument, "header"),
    ("bad match kind", {"abort_status": 503, "header_match": "glob"}, InvalidArgument, "glob"),
    (
        "invalid regex",
        {"abort_status": 503, "header_match": "regex", "header_value": "(unclosed"},
        InvalidArgument,
        "RE2",
    ),
    (
        "regex missing the run",
        {"abort_status": 503, "header_match": "regex", "header_value": "x+"},
        InvalidArgument,
        "does not match the run id",
    ),
    ("control char value", {"abort_status": 503, "header_value": "a\nb"}, InvalidArgument, "value"),
    ("unscoped", {"abort_status": 503, "scope": "none"}, InvalidArgument, "allow_unscoped"),
    ("bad scope", {"abort_status": 503, "scope": "cookie"}, InvalidArgument, "scope must be"),
    (
        "bad baggage value",
        {"abort_status": 503, "scope": "baggage", "header_value": "a b"},
        InvalidArgument,
        "baggage",
    ),
    ("bad ttl", {"abort_status": 503, "ttl": "forever"}, InvalidArgument, "ttl"),
    ("ttl too long", {"abort_status": 503, "ttl": "48h"}, InvalidArgument, "between 1s and 24h"),
    ("dry_run text", {"abort_status": 503, "dry_run": "yes"}, InvalidArgument, "dry_run"),
    ("routes empty", {"abort_status": 503, "routes": []}, InvalidArgument, "routes"),
    ("unknown route", {"abort_status": 503, "routes": ["nope"]}, TargetError, "'nope'"),
    (
        "subset without host",
        {"abort_status": 503, "destination_subset": "v1"},
        InvalidArgument,
        "destination_host",
    ),
    (
        "no matching destination",
        {"abort_status": 503, "destination_host": "ratings"},
        TargetError,
        "matches no HTTP route",
    ),
    ("bad namespace", {"abort_status": 503, "namespace": "Bad_NS"}, InvalidArgument, "namespace"),
    ("system namespace", {"abort_status": 503, "namespace": "kube-system"}, InvalidArgument, "sys"),
    (
        "name and selector",
        {"abort_status": 503, "label_selector": "app=x"},
        InvalidArgument,
        "both given",
    ),
    ("bad run id", {"abort_status": 503, "_run": "Not Valid"}, InvalidArgument, "chaosmesh_run_id"),
    ("bad attempts", {"abort_status": 503, "_attempts": -1}, InvalidArgument, "positive number"),
]


@pytest.mark.parametrize(
    ("case", "kwargs", "error", "message"), INVALID, ids=[c[0] for c in INVALID]
)
def test_invalid_arguments_change_nothing(
    kube: client.CustomObjectsApi,
    case: str,
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    before = create(kube, copy.deepcopy(ROUTES))
    name = before["metadata"]["name"]
    conf: dict[str, Any] = {"chaosmesh_run_id": kwargs.pop("_run", "it-run")}
    if "_attempts" in kwargs:
        conf["chaosmesh_api_attempts"] = kwargs.pop("_attempts")
    with pytest.raises(error) as caught:
        actions.inject_fault(name, **kwargs, configuration=conf)
    text = str(caught.value)
    assert isinstance(caught.value, ChaosMeshIstioError)
    assert message in text, text
    assert "\n" not in text and ". " not in text.rstrip("."), f"more than one sentence: {text}"
    assert read(kube, name)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_every_activity_refuses_unknown_kube_errors_with_the_api_message(
    kube: client.CustomObjectsApi,
) -> None:
    """A VirtualService the server refuses (here: an invalid existing one) is reported."""
    name = create(kube, copy.deepcopy(ROUTES))["metadata"]["name"]
    vss = open_virtual_services()

    def break_it(current: dict[str, Any]) -> dict[str, Any]:
        current["spec"]["http"][0]["timeout"] = "soon"
        return current

    with pytest.raises(KubeError, match=f"could not patch virtual service default/{name}"):
        vss.update(name, "default", break_it)
    assert json.dumps(read(kube, name)["spec"]) == json.dumps(ROUTES)
    assert faults.active_runs(read(kube, name)) == []
