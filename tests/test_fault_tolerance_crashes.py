"""Fault tolerance when things crash: the runner (SIGKILL), the API (409 storms, 5xx bursts),
and the control plane itself (killed and restarted with its state).

Each scenario is a real ``chaosmesh-istio run`` subprocess and ends with zero chaos routes
and the VirtualService otherwise exactly as before.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client, config

from chaosmesh_istio.localmesh.manager import mesh_up
from tests.test_fault_tolerance import (
    action,
    chaos_routes,
    create,
    experiment,
    finish,
    inject,
    read,
    start,
    users_view,
    wait_for_fault,
)

SWITCHES = "/chaosmesh/switches"


@pytest.fixture
def kube(local_mesh: Any) -> Iterator[client.CustomObjectsApi]:
    api = config.new_client_from_config(config_file=str(local_mesh.kubeconfig))
    yield client.CustomObjectsApi(api)
    api.close()


def switch(mesh: Any, body: dict[str, Any] | None, method: str = "POST") -> dict[str, Any]:
    """Set switches (POST), reset them (DELETE) or read them (GET); return their state."""
    with requests.Session() as api:
        api.trust_env = False
        api.verify = str(mesh.ca)
        api.headers["Authorization"] = f"Bearer {mesh.token}"
        url = mesh.url + SWITCHES
        if method != "GET":
            answer = api.request(method, url, json=body)
            answer.raise_for_status()
        return dict(api.get(url).json())


def test_sigkill_of_the_runner_leaves_the_fault_to_the_sentinel(
    local_mesh: Any, kube: Any, tmp_path: Path
) -> None:
    vs = create(kube)
    before = users_view(read(kube, vs))
    exp = experiment(vs, [inject(vs, pause=60)])
    exp["configuration"] = {"chaosmesh_sentinel": True, "chaosmesh_sentinel_grace": 1}
    proc, _ = start(local_mesh, tmp_path, exp)
    try:
        wait_for_fault(kube, vs)
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        proc.communicate(timeout=10)
        while chaos_routes(read(kube, vs)):
            assert time.monotonic() - killed < 20, "the sentinel did not remove the fault"
            time.sleep(0.2)
        print(f"fault removed {time.monotonic() - killed:.2f} s after SIGKILL (grace 1 s)")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert users_view(read(kube, vs)) == before


def test_conflict_storms_and_5xx_bursts_during_injection_and_removal(
    local_mesh: Any, kube: Any, tmp_path: Path
) -> None:
    vs = create(kube)
    before = users_view(read(kube, vs))
    switch(local_mesh, None, "DELETE")
    try:
        state = switch(local_mesh, {"fail_writes": {"count": 6, "status": 409}})
        assert state["fail_writes"]["count"] == 6
        method = [inject(vs, pause=3), action("remove-now", "remove_faults", virtual_service=vs)]
        proc, journal = start(local_mesh, tmp_path, experiment(vs, method))
        wait_for_fault(kube, vs)
        # The storm is spent on the injection; a burst of 503s greets the removal.
        switch(local_mesh, {"fail_writes": {"count": 3, "status": 503}})
        result = finish(proc, journal, "storm")
        state = switch(local_mesh, None, "GET")
    finally:
        switch(local_mesh, None, "DELETE")
    assert proc.returncode == 0, result.get("chaosmesh")
    # Both bursts hit the run's writes (6 conflicts, then 3 unavailable) and were survived.
    assert state["counters"]["failed"] == 9 and state["fail_writes"]["count"] == 0
    after = read(kube, vs)
    assert chaos_routes(after) == []
    assert users_view(after) == before


def test_control_plane_killed_and_restarted_during_the_run(fresh_mesh: Any, tmp_path: Path) -> None:
    api = config.new_client_from_config(config_file=str(fresh_mesh.kubeconfig))
    objects = client.CustomObjectsApi(api)
    try:
        vs = create(objects)
        before = users_view(read(objects, vs))
        method = [inject(vs, pause=6), action("remove-now", "remove_faults", virtual_service=vs)]
        exp = experiment(vs, method)
        exp["configuration"] = {"chaosmesh_api_attempts": 8}
        proc, journal = start(fresh_mesh, tmp_path, exp)
        wait_for_fault(objects, vs)
        port = int(fresh_mesh.url.rsplit(":", 1)[1])
        os.kill(fresh_mesh.pid, signal.SIGKILL)
        time.sleep(1)
        restarted = mesh_up(fresh_mesh.dir, port=port, full=False)
        assert restarted.api_url == fresh_mesh.url
        # The state was persisted: the fault is still there until the run removes it.
        assert chaos_routes(read(objects, vs))
        result = finish(proc, journal, "restart")
        assert proc.returncode == 0, result.get("chaosmesh")
        after = read(objects, vs)
        assert chaos_routes(after) == []
        assert users_view(after) == before
    finally:
        api.close()
