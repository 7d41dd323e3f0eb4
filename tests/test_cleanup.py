"""``cleanup`` and ``chaosmesh-istio cleanup`` against the local control plane."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config

from chaosmesh_istio import actions, faults
from chaosmesh_istio.cleanup import cleanup, is_expired, leftovers
from chaosmesh_istio.cli import main
from chaosmesh_istio.errors import InvalidArgument
from tests.conftest import LocalMesh

GROUP, VERSION, PLURAL = "networking.istio.io", "v1", "virtualservices"
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
_ids = itertools.count()


def _unique(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}-{time.time_ns() % 10**6}"


@pytest.fixture
def objects(
    local_mesh: LocalMesh, monkeypatch: pytest.MonkeyPatch
) -> Iterator[client.CustomObjectsApi]:
    monkeypatch.setenv("KUBECONFIG", str(local_mesh.kubeconfig))
    monkeypatch.delenv("KUBERNETES_CONTEXT", raising=False)
    api = config.new_client_from_config(config_file=str(local_mesh.kubeconfig))
    yield client.CustomObjectsApi(api)
    api.close()


def _create(
    objects: client.CustomObjectsApi, namespace: str, spec: dict[str, Any] | None = None
) -> str:
    name = _unique("vs")
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": copy.deepcopy(spec or ROUTES),
    }
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    return name


def _read(objects: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return dict(objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))


def _inject(name: str, namespace: str, run: str, ttl: str = "15m", **extra: Any) -> None:
    actions.inject_abort(
        name, namespace, status=503, ttl=ttl, configuration={"chaosmesh_run_id": run}, **extra
    )


def _runs(vs: dict[str, Any]) -> set[str]:
    return {f["run_id"] for f in leftovers(vs)}


def _user_edit(objects: client.CustomObjectsApi, namespace: str, name: str) -> None:
    """Another writer adds a label and a route of their own while faults are in."""
    vs = _read(objects, namespace, name)
    vs["metadata"].setdefault("labels", {})["edited-by"] = "gitops"
    vs["spec"]["http"].append(
        {"name": "theirs", "route": [{"destination": {"host": "ratings", "subset": "v1"}}]}
    )
    objects.replace_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, vs)


def _without_chaos(vs: dict[str, Any]) -> dict[str, Any]:
    return {
        "labels": vs["metadata"].get("labels"),
        "annotations": vs["metadata"].get("annotations"),
        "http": vs["spec"]["http"],
    }


def test_is_expired() -> None:
    now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    assert is_expired("2026-01-01T11:59:59Z", now)
    assert is_expired("2026-01-01T12:00:00Z", now)
    assert not is_expired("2026-01-01T12:00:01Z", now)
    assert is_expired(None, now) and is_expired("soon", now) and is_expired(3, now)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"expired": True, "all_runs": True},
        {"expired": True, "run_id": "a"},
        {"run_id": "Not_A_Run"},
        {"expired": "yes"},
        {"all_runs": True, "namespace": "team-a", "all_namespaces": True},
        {"all_runs": True, "namespace": "Bad NS"},
    ],
)
def test_bad_arguments_are_refused_before_any_call(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        cleanup(**kwargs)


def test_expired_runs_go_and_live_ones_stay_with_everyone_elses_edits(
    objects: client.CustomObjectsApi,
) -> None:
    ns = _unique("exp")
    name = _create(objects, ns)
    short, long = _unique("short"), _unique("long")
    _inject(name, ns, short, ttl="1s")
    _inject(name, ns, long, ttl="15m")
    _user_edit(objects, ns, name)
    assert _runs(_read(objects, ns, name)) == {short, long}
    time.sleep(2.1)  # the short run's TTL (second resolution) is now past
    removed = cleanup(expired=True, namespace=ns)
    assert [(r["virtual_service"], r["run_id"], len(r["routes"])) for r in removed] == [
        (f"{ns}/{name}", short, 2)
    ]
    after = _read(objects, ns, name)
    assert _runs(after) == {long}
    assert after["metadata"]["labels"] == {"edited-by": "gitops"}
    assert after["spec"]["http"][-1]["name"] == "theirs"
    # Until the long run's TTL passes, nothing more is expired.
    assert cleanup(expired=True, namespace=ns) == []
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=16)
    assert [r["run_id"] for r in cleanup(expired=True, namespace=ns, now=later)] == [long]
    final = _read(objects, ns, name)
    assert _runs(final) == set()
    assert [r["name"] for r in final["spec"]["http"]] == ["v2", "default", "theirs"]
    assert faults.RUNS_ANNOTATION not in (final["metadata"].get("annotations") or {})


def test_chaos_routes_without_an_annotation_entry_count_as_expired(
    objects: client.CustomObjectsApi,
) -> None:
    ns = _unique("orphan")
    spec = copy.deepcopy(ROUTES)
    spec["http"].insert(
        0,
        {
            "name": "chaos-lost-run-0",
            "match": [{"headers": {"x-chaos-run": {"exact": "lost-run"}}}],
            "route": [{"destination": {"host": "reviews", "subset": "v1"}}],
            "fault": {"abort": {"httpStatus": 500, "percentage": {"value": 100}}},
        },
    )
    name = _create(objects, ns, spec)
    removed = cleanup(expired=True, namespace=ns)
    assert [(r["run_id"], r["routes"], r["expires"]) for r in removed] == [
        ("lost-run", ["chaos-lost-run-0"], None)
    ]
    assert _read(objects, ns, name)["spec"] == ROUTES


def test_by_run_id_removes_only_that_run_in_every_virtual_service_of_the_namespace(
    objects: client.CustomObjectsApi,
) -> None:
    ns = _unique("byrun")
    first, second = _create(objects, ns), _create(objects, ns)
    mine, theirs = _unique("mine"), _unique("theirs")
    for name in (first, second):
        _inject(name, ns, mine)
    _inject(first, ns, theirs)
    removed = cleanup(run_id=mine, namespace=ns)
    assert sorted(r["virtual_service"] for r in removed) == sorted(
        f"{ns}/{n}" for n in (first, second)
    )
    assert {r["run_id"] for r in removed} == {mine}
    assert _runs(_read(objects, ns, first)) == {theirs}
    assert _runs(_read(objects, ns, second)) == set()
    assert _read(objects, ns, second)["spec"] == ROUTES
    assert cleanup(run_id=mine, namespace=ns) == []


def test_all_runs_of_one_namespace_leave_other_namespaces_alone(
    objects: client.CustomObjectsApi,
) -> None:
    here, there = _unique("here"), _unique("there")
    a, b = _create(objects, here), _create(objects, there)
    runs = [_unique("r"), _unique("r")]
    for run in runs:
        _inject(a, here, run)
        _inject(b, there, run)
    removed = cleanup(all_runs=True, namespace=here)
    assert sorted(r["run_id"] for r in removed) == sorted(runs)
    assert _read(objects, here, a)["spec"] == ROUTES
    assert _runs(_read(objects, there, b)) == set(runs)
    cleanup(all_runs=True, namespace=there)
    assert _read(objects, there, b)["spec"] == ROUTES


def test_nothing_to_clean_up(objects: client.CustomObjectsApi) -> None:
    ns = _unique("clean")
    name = _create(objects, ns)
    before = _read(objects, ns, name)
    assert cleanup(expired=True, namespace=ns) == []
    assert cleanup(all_runs=True, namespace=ns) == []
    assert (
        _read(objects, ns, name)["metadata"]["resourceVersion"]
        == (before["metadata"]["resourceVersion"])
    )


def test_cli_all_namespaces_and_its_output(
    fresh_mesh: LocalMesh, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(fresh_mesh.kubeconfig))
    monkeypatch.delenv("KUBERNETES_CONTEXT", raising=False)
    api = config.new_client_from_config(config_file=str(fresh_mesh.kubeconfig))
    try:
        objects = client.CustomObjectsApi(api)
        a, b = _create(objects, "default"), _create(objects, "team-a")
        _inject(a, "default", "old-run", ttl="1s")
        _inject(b, "team-a", "old-run", ttl="1s")
        _inject(b, "team-a", "new-run", ttl="15m")
        time.sleep(2.1)

        assert main(["cleanup", "--expired"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 1
        assert lines[0].startswith(f"removed 2 routes of run old-run from default/{a} (expired 20")

        assert main(["cleanup", "--expired", "--all-namespaces", "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)["removed"]
        assert [(r["virtual_service"], r["run_id"]) for r in shown] == [(f"team-a/{b}", "old-run")]

        assert main(["cleanup", "--expired", "-A"]) == 0
        assert capsys.readouterr().out == "nothing to clean up\n"

        assert main(["cleanup", "--run-id", "new-run", "-A"]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"removed 2 routes of run new-run from team-a/{b} (expires 20")
        for namespace, name in (("default", a), ("team-a", b)):
            assert _read(objects, namespace, name)["spec"] == ROUTES

        assert main(["cleanup", "--run-id", "Bad_Run"]) == 64
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "'Bad_Run'" in err[0]
    finally:
        api.close()


def test_cli_needs_exactly_one_mode(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["cleanup"], ["cleanup", "--all", "--expired"], ["cleanup", "--all", "-n"]):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == 64
    capsys.readouterr()


def test_cli_unreachable_api_is_one_sentence(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "kubeconfig"
    missing.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(missing))
    monkeypatch.delenv("KUBERNETES_CONTEXT", raising=False)
    assert main(["cleanup", "--all"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unreachable" in err[0]
