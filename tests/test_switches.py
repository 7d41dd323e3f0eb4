"""The local control plane's test switches, over real HTTP, and the actions surviving them."""

from __future__ import annotations

import copy
import itertools
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from chaosmesh_istio import actions, faults
from tests.conftest import LocalMesh

GROUP, VERSION, PLURAL = "networking.istio.io", "v1", "virtualservices"
SWITCHES = "/chaosmesh/switches"
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
_names = itertools.count()


def _refusing(mesh: LocalMesh) -> bool:
    port = urlsplit(mesh.url).port
    assert port is not None
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _wait(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


@pytest.fixture
def switches(local_mesh: LocalMesh) -> Iterator[requests.Session]:
    """A session on the switch endpoint; every switch is off again afterwards."""
    with local_mesh.session() as session:
        try:
            yield session
        finally:
            _wait(lambda: not _refusing(local_mesh))
            session.delete(local_mesh.url + SWITCHES, timeout=10).raise_for_status()


@pytest.fixture
def kube(local_mesh: LocalMesh, monkeypatch: pytest.MonkeyPatch) -> Iterator[client.ApiClient]:
    monkeypatch.setenv("KUBECONFIG", str(local_mesh.kubeconfig))
    monkeypatch.delenv("KUBERNETES_CONTEXT", raising=False)
    api = config.new_client_from_config(config_file=str(local_mesh.kubeconfig))
    yield api
    api.close()


def _set(session: requests.Session, mesh: LocalMesh, **body: Any) -> dict[str, Any]:
    answer = session.post(mesh.url + SWITCHES, json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _state(session: requests.Session, mesh: LocalMesh) -> dict[str, Any]:
    result: dict[str, Any] = session.get(mesh.url + SWITCHES, timeout=10).json()
    return result


def _create(api: client.ApiClient, spec: dict[str, Any] | None = None) -> str:
    name = f"sw-{next(_names)}"
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": "default"},
        "spec": copy.deepcopy(spec or ROUTES),
    }
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, body
    )
    return name


def _read(api: client.ApiClient, name: str) -> dict[str, Any]:
    return dict(
        client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, name
        )
    )


def _label(api: client.ApiClient, name: str, value: str) -> dict[str, Any]:
    return dict(
        client.CustomObjectsApi(api).patch_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, name, {"metadata": {"labels": {"k": value}}}
        )
    )


def test_switches_are_off_by_default_and_need_the_token(
    local_mesh: LocalMesh, switches: requests.Session
) -> None:
    state = _state(switches, local_mesh)
    assert state["fail_writes"]["count"] == 0
    assert state["delay_writes"]["count"] == 0
    assert state["refuse_connections"] == {"active": False}
    anonymous = requests.post(
        local_mesh.url + SWITCHES,
        json={"fail_writes": {"count": 1}},
        verify=str(local_mesh.ca),
        timeout=10,
    )
    assert anonymous.status_code == 401
    assert _state(switches, local_mesh)["fail_writes"]["count"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"fail_writes": {"count": 2, "status": 404}},
        {"fail_writes": {"count": -1}},
        {"delay_writes": {"count": 1, "seconds": "1"}},
        {"refuse_connections": {"seconds": 1, "port": 1}},
        {"fail_writes": {"count": 1}, "flood": {}},
        [1],
    ],
)
def test_bad_switch_bodies_are_refused_and_set_nothing(
    local_mesh: LocalMesh, switches: requests.Session, body: Any
) -> None:
    answer = switches.post(local_mesh.url + SWITCHES, json=body, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["kind"] == "Status"
    state = _state(switches, local_mesh)
    assert state["fail_writes"]["count"] == 0 and state["delay_writes"]["count"] == 0
    assert not _refusing(local_mesh)


@pytest.mark.parametrize("code", [409, 500, 503])
def test_n_writes_fail_with_a_status_then_writes_succeed_and_reads_never_fail(
    local_mesh: LocalMesh, switches: requests.Session, kube: client.ApiClient, code: int
) -> None:
    name = _create(kube)
    before = _read(kube, name)
    _set(switches, local_mesh, fail_writes={"count": 3, "status": code})
    for left in (2, 1, 0):
        assert _read(kube, name) == before  # reads pass through a write switch
        with pytest.raises(ApiException) as caught:
            _label(kube, name, "x")
        assert caught.value.status == code
        assert '"kind": "Status"' in caught.value.body or '"kind":"Status"' in caught.value.body
        assert _state(switches, local_mesh)["fail_writes"]["count"] == left
    assert _read(kube, name) == before  # nothing was written by the failed writes
    assert _label(kube, name, "y")["metadata"]["labels"] == {"k": "y"}
    assert _state(switches, local_mesh)["counters"]["failed"] == 3


def test_delayed_writes_commit_after_the_delay(
    local_mesh: LocalMesh, switches: requests.Session, kube: client.ApiClient
) -> None:
    name = _create(kube)
    _set(switches, local_mesh, delay_writes={"count": 1, "seconds": 0.5})
    started = time.monotonic()
    assert _read(kube, name)["metadata"].get("labels") is None
    read_took = time.monotonic() - started
    assert _label(kube, name, "late")["metadata"]["labels"] == {"k": "late"}
    write_took = time.monotonic() - started - read_took
    assert write_took >= 0.5  # functional: the write really waited
    assert _state(switches, local_mesh)["counters"]["delayed"] == 1
    assert _state(switches, local_mesh)["delay_writes"]["count"] == 0


def test_refused_connections_come_back_on_the_same_port(
    local_mesh: LocalMesh, switches: requests.Session, kube: client.ApiClient
) -> None:
    name = _create(kube)
    _set(switches, local_mesh, refuse_connections={"seconds": 1.0})
    _wait(lambda: _refusing(local_mesh), 5)
    with pytest.raises(requests.ConnectionError):
        requests.get(local_mesh.url + "/healthz", verify=str(local_mesh.ca), timeout=5)
    _wait(lambda: not _refusing(local_mesh), 10)
    assert _read(kube, name)["metadata"]["name"] == name
    assert _state(switches, local_mesh)["counters"]["refused"] == 1


def _conf(run: str, **extra: Any) -> dict[str, Any]:
    return {"chaosmesh_run_id": run, **extra}


@pytest.mark.parametrize(
    "storm",
    [
        {"fail_writes": {"count": 6, "status": 409}},
        {"fail_writes": {"count": 3, "status": 503}},
        {"fail_writes": {"count": 4, "status": 500}},
        {"delay_writes": {"count": 2, "seconds": 0.3}},
    ],
    ids=["409-storm", "503-burst", "500-burst", "delays"],
)
def test_inject_and_remove_survive_failing_writes(
    local_mesh: LocalMesh, switches: requests.Session, kube: client.ApiClient, storm: Any
) -> None:
    name = _create(kube)
    before = _read(kube, name)
    conf = _conf(f"sw-{next(_names)}")
    _set(switches, local_mesh, **storm)
    injected = actions.inject_abort(name, status=503, configuration=conf)
    during = _read(kube, name)
    assert [r["name"] for r in during["spec"]["http"]] == [
        f"chaos-{conf['chaosmesh_run_id']}-0",
        "v2",
        f"chaos-{conf['chaosmesh_run_id']}-1",
        "default",
    ]
    assert injected["routes"] == [f["route"] for f in faults.active_runs(during)]
    _set(switches, local_mesh, **storm)
    removed = actions.remove_faults(name, configuration=conf)
    assert removed["verified"] is True
    after = _read(kube, name)
    assert after["spec"] == before["spec"]
    assert after["metadata"].get("annotations") == before["metadata"].get("annotations")
    counters = _state(switches, local_mesh)["counters"]
    assert counters["failed"] + counters["delayed"] > 0


def test_inject_and_remove_survive_refused_connections(
    local_mesh: LocalMesh, switches: requests.Session, kube: client.ApiClient
) -> None:
    name = _create(kube)
    before = _read(kube, name)
    conf = _conf(f"sw-{next(_names)}", chaosmesh_api_attempts=6)
    for seconds in (1.0, 2.0):
        _set(switches, local_mesh, refuse_connections={"seconds": seconds})
        _wait(lambda: _refusing(local_mesh), 5)
        if seconds == 1.0:
            actions.inject_abort(name, status=500, configuration=conf)
            assert len(faults.active_runs(_read(kube, name))) == 2
        else:
            actions.remove_faults(name, configuration=conf)
    assert _state(switches, local_mesh)["counters"]["refused"] == 2
    after = _read(kube, name)
    assert after["spec"] == before["spec"]
    assert after["metadata"].get("annotations") == before["metadata"].get("annotations")
