"""The detached sentinel against the local control plane, with a fake runner process."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from chaosmesh_istio import actions, sentinel
from chaosmesh_istio.cleanup import leftovers
from chaosmesh_istio.errors import InvalidArgument
from tests.conftest import LocalMesh

GROUP, VERSION, PLURAL = "networking.istio.io", "v1", "virtualservices"
ROUTES = {
    "hosts": ["reviews"],
    "http": [
        {"name": "default", "route": [{"destination": {"host": "reviews", "subset": "v1"}}]},
    ],
}
_ids = itertools.count()


@pytest.fixture
def objects(
    local_mesh: LocalMesh, monkeypatch: pytest.MonkeyPatch
) -> Iterator[client.CustomObjectsApi]:
    monkeypatch.setenv("KUBECONFIG", str(local_mesh.kubeconfig))
    monkeypatch.delenv("KUBERNETES_CONTEXT", raising=False)
    api = config.new_client_from_config(config_file=str(local_mesh.kubeconfig))
    yield client.CustomObjectsApi(api)
    api.close()


@pytest.fixture
def started() -> Iterator[list[int]]:
    """Pids of sentinels a test started: all stopped afterwards, even on failure."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        sentinel.stop(pid)


@pytest.fixture
def runner() -> Iterator[subprocess.Popen[bytes]]:
    """A fake runner process."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait(10)


def _faulted(objects: client.CustomObjectsApi, ttl: str) -> tuple[str, str, str]:
    n = next(_ids)
    name, run = f"sen-{n}", f"sen-{n}-{time.time_ns() % 10**6}"
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": "default"},
        "spec": copy.deepcopy(ROUTES),
    }
    objects.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
    result = actions.inject_abort(
        name, status=503, ttl=ttl, configuration={"chaosmesh_run_id": run}
    )
    return name, run, str(result["expires"])


def _runs(objects: client.CustomObjectsApi, name: str) -> set[str]:
    vs = objects.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, name)
    return {f["run_id"] for f in leftovers(vs)}


def _until(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``condition`` held (fails after ``timeout``)."""
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < timeout, "timed out"
        time.sleep(0.05)
    return time.monotonic() - began


def _spawn(
    started: list[int], tmp_path: Path, name: str, run: str, expires: str, pid: int, **kw: Any
) -> int:
    pid = sentinel.spawn(
        run,
        [("default", name)],
        expires,
        runner_pid=pid,
        log_file=tmp_path / "reports" / run / "sentinel.log",
        **kw,
    )
    started.append(pid)
    return pid


def test_runner_killed_the_sentinel_removes_the_fault_after_the_grace(
    objects: client.CustomObjectsApi,
    runner: subprocess.Popen[bytes],
    started: list[int],
    tmp_path: Path,
) -> None:
    name, run, expires = _faulted(objects, "10m")
    grace = 1.0
    pid = _spawn(started, tmp_path, name, run, expires, runner.pid, grace=grace)
    time.sleep(1.0)  # the sentinel is up and watching
    assert sentinel.is_running(pid) and _runs(objects, name) == {run}
    runner.kill()
    runner.wait(10)
    delay = _until(lambda: _runs(objects, name) == set(), grace + 5)
    print(f"\nfault removed {delay:.2f} s after the runner's SIGKILL (grace {grace:.1f} s)")
    _until(lambda: not sentinel.is_running(pid), 5)
    spec = objects.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, name)["spec"]
    assert spec == ROUTES
    log = (tmp_path / "reports" / run / "sentinel.log").read_text()
    assert "has been gone" in log and "(verified)" in log


def test_live_runner_short_ttl_the_sentinel_removes_the_fault_at_expiry(
    objects: client.CustomObjectsApi,
    runner: subprocess.Popen[bytes],
    started: list[int],
    tmp_path: Path,
) -> None:
    name, run, expires = _faulted(objects, "3s")
    pid = _spawn(started, tmp_path, name, run, expires, runner.pid, grace=1.0)
    _until(lambda: _runs(objects, name) == set(), 10)
    late = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(expires)
    print(f"\nfault removed {late.total_seconds():.2f} s after its TTL expired")
    _until(lambda: not sentinel.is_running(pid), 5)
    assert runner.poll() is None
    log = (tmp_path / "reports" / run / "sentinel.log").read_text()
    assert "TTL" in log and "expired" in log


def test_the_sentinel_exits_on_its_own_when_the_runner_removed_the_fault(
    objects: client.CustomObjectsApi,
    runner: subprocess.Popen[bytes],
    started: list[int],
    tmp_path: Path,
) -> None:
    name, run, expires = _faulted(objects, "10m")
    pid = _spawn(started, tmp_path, name, run, expires, runner.pid, check_every=0.5)
    time.sleep(1.0)
    assert sentinel.is_running(pid)
    actions.remove_faults(name, configuration={"chaosmesh_run_id": run})
    took = _until(lambda: not sentinel.is_running(pid), 10)
    print(f"\nsentinel exited {took:.2f} s after the runner removed the fault")
    assert "are gone" in (tmp_path / "reports" / run / "sentinel.log").read_text()


def test_stop_ends_a_sentinel_and_leaves_the_fault_to_its_runner(
    objects: client.CustomObjectsApi,
    runner: subprocess.Popen[bytes],
    started: list[int],
    tmp_path: Path,
) -> None:
    name, run, expires = _faulted(objects, "10m")
    pid = _spawn(started, tmp_path, name, run, expires, runner.pid)
    assert sentinel.stop(pid) is True
    assert not sentinel.is_running(pid)
    assert sentinel.stop(pid) is False
    assert _runs(objects, name) == {run}
    actions.remove_faults(name, configuration={"chaosmesh_run_id": run})


@pytest.mark.parametrize(
    ("targets", "expires", "grace"),
    [
        ([], "2026-01-01T00:00:00Z", 1.0),
        ([("default", "x")], "tomorrow", 1.0),
        ([("default", "x")], "2026-01-01T00:00:00Z", -1),
    ],
)
def test_spawn_refuses_bad_arguments(targets: Any, expires: str, grace: Any) -> None:
    with pytest.raises(InvalidArgument):
        sentinel.spawn("r", targets, expires, runner_pid=1, grace=grace)
