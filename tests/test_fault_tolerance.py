"""Fault tolerance: whatever happens to a run, no chaos route outlives it.

Every scenario is a real ``chaosmesh-istio run`` (or ``chaos run``) subprocess of a small
experiment written by the test, against the local control plane. Each ends with zero chaos
routes, the VirtualService otherwise exactly as expected, and the expected exit code.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

GROUP, VERSION, PLURAL = "networking.istio.io", "v1", "virtualservices"
BIN = Path(sys.executable).parent
_names = itertools.count()


@pytest.fixture
def kube(local_mesh: Any) -> Iterator[client.CustomObjectsApi]:
    api = config.new_client_from_config(config_file=str(local_mesh.kubeconfig))
    yield client.CustomObjectsApi(api)
    api.close()


def create(kube: client.CustomObjectsApi) -> str:
    name = f"ft-{next(_names)}"
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "hosts": [name],
            "http": [
                {
                    "name": "jason",
                    "match": [{"headers": {"end-user": {"exact": "jason"}}}],
                    "route": [{"destination": {"host": name, "subset": "v2"}}],
                },
                {"name": "default", "route": [{"destination": {"host": name, "subset": "v1"}}]},
            ],
        },
    }
    kube.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
    return name


def read(kube: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    return dict(kube.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, name))


def chaos_routes(vs: dict[str, Any]) -> list[str]:
    return [r["name"] for r in vs["spec"]["http"] if r.get("name", "").startswith("chaos-")]


def users_view(vs: dict[str, Any]) -> dict[str, Any]:
    annotations = {
        k: v for k, v in (vs["metadata"].get("annotations") or {}).items() if "chaosmesh" not in k
    }
    return {"spec": vs["spec"], "labels": vs["metadata"].get("labels"), "ann": annotations}


def probe(name: str, func: str, tolerance: Any = None, **arguments: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "type": "probe",
        "name": name,
        "provider": {
            "type": "python",
            "module": "chaosmesh_istio.probes",
            "func": func,
            "arguments": arguments,
        },
    }
    if tolerance is not None:
        found["tolerance"] = tolerance
    return found


def action(name: str, func: str, pause: float = 0, **arguments: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "type": "action",
        "name": name,
        "provider": {
            "type": "python",
            "module": "chaosmesh_istio.actions",
            "func": func,
            "arguments": arguments,
        },
    }
    if pause:
        found["pauses"] = {"after": pause}
    return found


def experiment(
    vs: str,
    method: list[dict[str, Any]],
    hypothesis: list[dict[str, Any]] | None = None,
    control: dict[str, Any] | None = None,
) -> dict[str, Any]:
    built: dict[str, Any] = {
        "version": "1.0.0",
        "title": f"fault tolerance on {vs}",
        "description": "written by tests/test_fault_tolerance.py",
        "method": method,
        "rollbacks": [action("remove", "remove_faults", virtual_service=vs)],
    }
    if hypothesis:
        built["steady-state-hypothesis"] = {"title": "no chaos route", "probes": hypothesis}
    if control is not None:
        built["controls"] = [
            {
                "name": "chaosmesh",
                "provider": {
                    "type": "python",
                    "module": "chaosmesh_istio.controls",
                    "arguments": control,
                },
            }
        ]
    return built


def inject(vs: str, pause: float = 0) -> dict[str, Any]:
    return action("inject", "inject_abort", pause, virtual_service=vs, status=503, ttl="2m")


def no_fault(vs: str) -> dict[str, Any]:
    return probe("no-chaos-route", "active_fault_count", 0, virtual_service=vs)


def start(
    mesh: Any, tmp: Path, exp: dict[str, Any], *extra: str, chaos: bool = False
) -> tuple[subprocess.Popen[str], Path]:
    path = tmp / f"exp-{next(_names)}.json"
    path.write_text(json.dumps(exp))
    journal = path.with_suffix(".journal.json")
    env = {**os.environ, "KUBECONFIG": str(mesh.kubeconfig), "HOME": str(tmp)}
    env.pop("KUBERNETES_CONTEXT", None)
    if chaos:
        argv = [str(BIN / "chaos"), "--no-version-check", "--log-file", str(tmp / "ctk.log")]
        argv += ["run", "--journal-path", str(journal), *extra, str(path)]
    else:
        argv = [str(BIN / "chaosmesh-istio"), "run", str(path), "--journal-path", str(journal)]
        argv += list(extra)
    proc = subprocess.Popen(
        argv, env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return proc, journal


def finish(proc: subprocess.Popen[str], journal: Path, label: str) -> dict[str, Any]:
    started = time.monotonic()
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"[{label}] exit {proc.returncode} after {time.monotonic() - started:.1f} s\n{out}")
    return dict(json.loads(journal.read_text())) if journal.exists() else {}


def run(mesh: Any, tmp: Path, exp: dict[str, Any], label: str, *extra: str) -> tuple[int, Any]:
    proc, journal = start(mesh, tmp, exp, *extra)
    result = finish(proc, journal, label)
    return proc.returncode, result


def wait_for_fault(kube: client.CustomObjectsApi, name: str, count: int = 1) -> None:
    deadline = time.monotonic() + 30
    while len(chaos_routes(read(kube, name))) < count:
        assert time.monotonic() < deadline, f"no fault appeared in {name}"
        time.sleep(0.1)


def test_normal_end_passes(local_mesh: Any, kube: Any, tmp_path: Path) -> None:
    vs = create(kube)
    before = users_view(read(kube, vs))
    method = [inject(vs, 0.5), action("remove-now", "remove_faults", virtual_service=vs)]
    code, journal = run(local_mesh, tmp_path, experiment(vs, method, [no_fault(vs)]), "normal")
    assert code == 0
    assert journal["chaosmesh"]["rollback"]["verified"] is True
    after = read(kube, vs)
    assert chaos_routes(after) == []
    assert users_view(after) == before


def test_deviated_hypothesis_exits_1(local_mesh: Any, kube: Any, tmp_path: Path) -> None:
    vs = create(kube)
    before = users_view(read(kube, vs))
    exp = experiment(vs, [inject(vs)], [no_fault(vs)])
    code, journal = run(local_mesh, tmp_path, exp, "deviated")
    assert code == 1
    assert journal["deviated"] is True
    assert chaos_routes(read(kube, vs)) == []
    assert users_view(read(kube, vs)) == before


def test_an_action_that_raises_exits_5(local_mesh: Any, kube: Any, tmp_path: Path) -> None:
    vs = create(kube)
    before = users_view(read(kube, vs))
    broken = action("broken", "inject_abort", virtual_service=vs, status=99)
    code, journal = run(local_mesh, tmp_path, experiment(vs, [inject(vs), broken]), "raises")
    assert code == 5
    assert "broken" in journal["chaosmesh"]["verdict"]["reason"]
    assert chaos_routes(read(kube, vs)) == []
    assert users_view(read(kube, vs)) == before


def test_plain_chaos_run_with_default_strategy_leaves_nothing(
    local_mesh: Any, kube: Any, tmp_path: Path
) -> None:
    """chaos run's default strategy skips rollbacks after a failure; the control does not."""
    vs = create(kube)
    before = users_view(read(kube, vs))
    exp = experiment(vs, [inject(vs)], [no_fault(vs)], control={})
    exp["rollbacks"] = []
    proc, journal_path = start(local_mesh, tmp_path, exp, chaos=True)
    journal = finish(proc, journal_path, "chaos run")
    assert proc.returncode == 1
    assert journal["chaosmesh"]["rollback"]["verified"] is True
    assert journal["chaosmesh"]["rollback"]["removed"]
    assert chaos_routes(read(kube, vs)) == []
    assert users_view(read(kube, vs)) == before


def test_baseline_not_met_injects_nothing(local_mesh: Any, kube: Any, tmp_path: Path) -> None:
    vs = create(kube)
    before = read(kube, vs)
    unmet = probe("one-chaos-route", "active_fault_count", 1, virtual_service=vs)
    code, journal = run(local_mesh, tmp_path, experiment(vs, [inject(vs)], [unmet]), "baseline")
    assert code == 2
    assert journal["run"] == []
    assert journal["chaosmesh"]["skipped"] is True
    after = read(kube, vs)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_the_method_removes_the_fault(
    local_mesh: Any, kube: Any, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    vs = create(kube)
    before = users_view(read(kube, vs))
    proc, journal_path = start(local_mesh, tmp_path, experiment(vs, [inject(vs, pause=60)]))
    try:
        wait_for_fault(kube, vs)
        time.sleep(0.3)  # inside the pause
        proc.send_signal(sig)
    finally:
        journal = finish(proc, journal_path, sig.name)
    assert proc.returncode == code
    assert journal["chaosmesh"]["signal"] == sig.name
    assert chaos_routes(read(kube, vs)) == []
    assert users_view(read(kube, vs)) == before


def test_another_clients_edit_is_kept(local_mesh: Any, kube: Any, tmp_path: Path) -> None:
    vs = create(kube)
    proc, journal_path = start(local_mesh, tmp_path, experiment(vs, [inject(vs, pause=3)]))
    try:
        wait_for_fault(kube, vs)
        current = read(kube, vs)
        canary = {"name": "canary", "route": [{"destination": {"host": vs, "subset": "v3"}}]}
        current["spec"]["http"].append(canary)
        current["metadata"].setdefault("labels", {})["edited"] = "yes"
        kube.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, vs, current)
    finally:
        finish(proc, journal_path, "concurrent edit")
    assert proc.returncode == 0
    after = read(kube, vs)
    assert chaos_routes(after) == []
    assert [r["name"] for r in after["spec"]["http"]] == ["jason", "default", "canary"]
    assert after["metadata"]["labels"]["edited"] == "yes"


def test_two_runs_on_one_virtual_service_remove_only_their_own(
    local_mesh: Any, kube: Any, tmp_path: Path
) -> None:
    vs = create(kube)
    before = users_view(read(kube, vs))
    run_a = {**experiment(vs, [inject(vs, pause=6)]), "configuration": {"chaosmesh_run_id": "ft-a"}}
    long_run = start(local_mesh, tmp_path, run_a)
    try:
        wait_for_fault(kube, vs, 2)
        run_b = experiment(vs, [inject(vs, pause=0.5)])
        run_b["configuration"] = {"chaosmesh_run_id": "ft-b"}
        short_run = start(local_mesh, tmp_path, run_b)
        short = finish(*short_run, "run b")
        assert short_run[0].returncode == 0
        assert short["chaosmesh"]["run_id"] == "ft-b"
        left = chaos_routes(read(kube, vs))
        assert left and all(name.startswith("chaos-ft-a-") for name in left)
    finally:
        finish(*long_run, "run a")
    assert long_run[0].returncode == 0
    assert chaos_routes(read(kube, vs)) == []
    assert users_view(read(kube, vs)) == before


def test_a_safeguard_breach_halts_the_run_and_removes_the_fault(
    local_mesh: Any, kube: Any, tmp_path: Path
) -> None:
    """The guard allows no live chaos route: the injection itself breaches it."""
    vs = create(kube)
    before = users_view(read(kube, vs))
    guard = probe("no-live-fault", "active_fault_count", 0, virtual_service=vs)
    never = action("never-runs", "inject_delay", virtual_service=vs, delay="1s")
    control = {"safeguards": [guard], "interval": 0.2}
    exp = experiment(vs, [inject(vs, pause=60), never], control=control)
    code, journal = run(local_mesh, tmp_path, exp, "safeguard")
    assert code == 3
    breach = journal["chaosmesh"]["breaches"][0]
    assert (breach["probe"], breach["value"]) == ("no-live-fault", 2)  # two routes faulted
    assert breach["rollback"]["verified"] is True
    assert [r["activity"]["name"] for r in journal["run"]] == ["inject"]
    assert chaos_routes(read(kube, vs)) == []
    assert users_view(read(kube, vs)) == before


def test_bad_input_exits_64(local_mesh: Any, tmp_path: Path) -> None:
    proc, journal = start(local_mesh, tmp_path, {"title": "no method"})
    finish(proc, journal, "invalid")
    assert proc.returncode == 64
    missing = subprocess.run(
        [str(BIN / "chaosmesh-istio"), "run", str(tmp_path / "nope.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 64
    assert "does not exist" in missing.stderr
