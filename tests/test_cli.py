"""Every ``chaosmesh-istio`` command, good and bad input, against real local meshes.

The control-plane-only mesh serves the commands that need the Kubernetes API; the full
mesh (data plane, sample app, Prometheus) the checks that need traffic and metrics.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from chaosmesh_istio.cli import main
from tests.conftest import FullMesh, LocalMesh, vs_body

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GROUP, VERSION, PLURAL = "networking.istio.io", "v1", "virtualservices"
COMMANDS = ("run", "validate", "init", "report", "cleanup", "mesh", "demo")
_names = itertools.count()


@pytest.fixture
def kube(local_mesh: LocalMesh, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("KUBECONFIG", str(local_mesh.kubeconfig))
    monkeypatch.delenv("KUBERNETES_CONTEXT", raising=False)
    api = config.new_client_from_config(config_file=str(local_mesh.kubeconfig))
    yield client.CustomObjectsApi(api)
    api.close()


def create(kube: Any) -> str:
    name = f"cli-{next(_names)}"
    body = vs_body(name)
    body["spec"]["http"] = [
        {
            "name": "jason",
            "match": [{"headers": {"end-user": {"exact": "jason"}}}],
            "route": [{"destination": {"host": name, "subset": "v2"}}],
        },
        {"name": "default", "route": [{"destination": {"host": name, "subset": "v1"}}]},
    ]
    kube.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
    return name


def read(kube: Any, name: str) -> dict[str, Any]:
    return dict(kube.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, name))


def python(kind: str, name: str, func: str, **arguments: Any) -> dict[str, Any]:
    module = "chaosmesh_istio.actions" if kind == "action" else "chaosmesh_istio.probes"
    provider = {"type": "python", "module": module, "func": func, "arguments": arguments}
    return {"type": kind, "name": name, "provider": provider}


def write_experiment(tmp_path: Path, target: str) -> Path:
    """An experiment with a hypothesis, a load, an abort on ``${target}`` and a safeguard."""
    hypothesis = python(
        "probe", "no-chaos-route", "active_fault_count", virtual_service="${target}"
    )
    hypothesis["tolerance"] = 0
    guard = python("probe", "control-healthy", "load_success_rate", group="control", window="5s")
    guard["tolerance"] = {"type": "range", "range": [0.95, 1.0]}
    exp = {
        "version": "1.0.0",
        "title": "abort on a test VirtualService",
        "description": "written by tests/test_cli.py",
        "configuration": {"target": target, "entry": "http://127.0.0.1:9"},
        "steady-state-hypothesis": {"title": "no chaos route", "probes": [hypothesis]},
        "method": [
            python("action", "load", "start_load", host="${entry}", users=10, duration="30s"),
            python("action", "abort", "inject_abort", virtual_service="${target}", status=503),
            python("action", "remove", "remove_faults", virtual_service="${target}"),
        ],
        "rollbacks": [
            python("action", "remove-again", "remove_faults", virtual_service="${target}")
        ],
        "controls": [
            {
                "name": "chaosmesh",
                "provider": {
                    "type": "python",
                    "module": "chaosmesh_istio.controls",
                    "arguments": {"safeguards": [guard]},
                },
            }
        ],
    }
    path = tmp_path / f"exp-{next(_names)}.json"
    path.write_text(json.dumps(exp))
    return path


def one_error(capsys: pytest.CaptureFixture[str], *expected: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("chaosmesh-istio") and err.count("\n") == 1, err
    assert all(e in err for e in expected), err
    return err


# -- help, version, usage -------------------------------------------------------------------


def test_every_command_has_help_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (*COMMANDS, "mesh up"):
        with pytest.raises(SystemExit) as done:
            main([*command.split(), "--help"])
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert "examples:" in out and "chaosmesh-istio " in out, command
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    top = capsys.readouterr().out
    assert all(c in top for c in COMMANDS), top
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("chaosmesh-istio 0.")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["run"],
        ["cleanup"],
        ["init"],
        ["init", "--virtual-service", "x", "--fault", "boom"],
        ["validate", "a.json", "--timeout", "soon"],
        ["nonsense"],
    ],
)
def test_bad_usage_is_one_sentence_and_64(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 64
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("chaosmesh-istio") and ": error: " in err[-1]


def test_missing_and_malformed_experiments_are_64(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (["run"], ["run", "--dry-run"], ["validate"]):
        assert main([*command, str(tmp_path / "nope.json")]) == 64
        one_error(capsys, "nope.json", "does not exist")
    broken = tmp_path / "broken.json"
    broken.write_text('{"title": "half')
    for command in (["run"], ["validate"]):
        assert main([*command, str(broken)]) == 64
        one_error(capsys, "broken.json", "is not valid JSON")
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    assert main(["run", str(listed)]) == 64
    one_error(capsys, "must hold a JSON/YAML object")
    assert main(["run", str(ROOT / "experiments" / "header-scoped-abort.json"),
                 "--var-file", str(tmp_path / "missing.yaml")]) == 64  # fmt: skip
    one_error(capsys, "missing.yaml", "does not exist")


def test_an_invalid_experiment_is_64_for_run_and_a_failed_check_for_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"title": "no description", "method": []}))
    assert main(["run", str(invalid)]) == 64
    one_error(capsys, "is not a valid experiment", "requires a description")
    assert main(["validate", str(invalid)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("experiment: FAILED: ") and "description" in lines[0]
    assert [line.split(":")[1] for line in lines[1:]] == [" skipped"] * 3


def test_an_unknown_variable_is_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_experiment(tmp_path, "nowhere")
    for command in (["run"], ["run", "--dry-run"], ["validate"]):
        assert main([*command, str(path), "--var", "targte=reviews"]) == 64
        err = one_error(capsys, "unknown variable 'targte'", "entry, target")
    assert "nowhere" not in err
    assert main(["run", str(path), "--var", "target"]) == 64
    one_error(capsys, "KEY=VALUE")


# -- against the control plane ----------------------------------------------------------------


def test_dry_run_prints_the_plan_and_changes_nothing(
    kube: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = create(kube)
    before = read(kube, name)
    path = write_experiment(tmp_path, "nowhere")
    # An undeclared documented key is taken (and used: it is the routes' marker).
    argv = ["run", "--dry-run", str(path), "--var", f"target={name}"]
    assert main([*argv, "--var", "chaosmesh_run_id=dry-1"]) == 0
    out = capsys.readouterr().out
    after = read(kube, name)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after == before
    assert "run id: dry-1" in out
    assert "no-chaos-route': chaosmesh_istio.probes.active_fault_count(" in out
    assert "tolerance 0" in out
    assert "10 users (5 control, 5 experiment" in out and "for 30 s" in out
    assert f"into default/{name} routes chaos-dry-1-0, chaos-dry-1-1" in out
    assert f"--- default/{name} (before)" in out
    assert "+  - name: chaos-dry-1-0" in out and '"httpStatus": 503' in out
    assert "x-chaos-run: dry-1" in out
    assert f"remove this run's chaos routes from {name} in default" in out
    assert "'control-healthy'" in out and '"range": [0.95, 1.0]' in out
    assert not (tmp_path / "reports").exists()

    assert main([*argv[:3], "--var", "target=gone"]) == 64
    one_error(capsys, "activity 'abort'", "default/gone was not found")


def test_validate_names_a_missing_target(
    kube: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_experiment(tmp_path, "does-not-exist")
    assert main(["validate", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("experiment: ok: ")
    assert lines[1].startswith("targets: FAILED: ") and "default/does-not-exist" in lines[1]
    assert lines[2] == "permissions: ok: allowed to get in default, patch in default"
    assert lines[3] == "header propagation: skipped: no target was found"


def test_init_writes_a_valid_experiment_and_never_overwrites(
    kube: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = create(kube)
    out = tmp_path / "new" / "exp.json"
    argv = ["init", "--virtual-service", name, "--out", str(out), "--fault", "abort"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed
    for command in ("validate", "run --dry-run", "run"):
        assert f"  chaosmesh-istio {command} {out}" in printed
    exp = json.loads(out.read_text())
    assert exp["configuration"]["virtual_service"]["default"] == name
    assert exp["configuration"]["service"]["default"] == name
    funcs = [a["provider"].get("func") for a in exp["method"]]
    assert funcs[:3] == ["start_load", "inject_abort", "fault_fired"]
    assert exp["method"][1]["provider"]["arguments"]["routes"] == ["jason", "default"]
    guard = exp["controls"][0]["provider"]["arguments"]["safeguards"][0]
    assert guard["provider"]["arguments"]["group"] == "control"
    assert [a["provider"]["func"] for a in exp["rollbacks"]] == ["remove_faults", "stop_load"]

    written = out.read_text()
    assert main(argv) == 64
    one_error(capsys, "already exists")
    assert out.read_text() == written
    assert main(["run", "--dry-run", str(out)]) == 0
    assert f"into default/{name} routes" in capsys.readouterr().out

    assert main(["init", "--virtual-service", "nope", "--out", str(tmp_path / "x.json")]) == 64
    one_error(capsys, "default/nope was not found")
    assert not (tmp_path / "x.json").exists()


def test_an_unreachable_api_is_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = tmp_path / "kubeconfig"
    closed.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(closed))
    monkeypatch.delenv("KUBERNETES_CONTEXT", raising=False)
    path = write_experiment(tmp_path, "reviews")
    fast = ["--var", "chaosmesh_api_attempts:int=1"]
    assert main(["run", "--dry-run", str(path), *fast]) == 1
    one_error(capsys, "unreachable", "127.0.0.1:9")
    assert main(["validate", str(path), *fast]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("targets: FAILED: ") and "unreachable" in lines[1]
    assert lines[2].startswith("permissions: FAILED: ") and "unreachable" in lines[2]
    assert main(["init", "--virtual-service", "reviews", "--out", str(tmp_path / "i.json")]) == 1
    one_error(capsys, "unreachable")


# -- against the full mesh --------------------------------------------------------------------


def mesh_env(mesh: FullMesh, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "KUBECONFIG": str(mesh.kubeconfig),
        "HOME": str(tmp_path),
        "CHAOSMESH_INGRESS_URL": mesh.ingress_url,
        "CHAOSMESH_PROMETHEUS_URL": mesh.prometheus_url,
        "CHAOSMESH_PROXY_ADMIN_URLS": mesh.admin_url,
        **extra,
    }
    env.pop("KUBERNETES_CONTEXT", None)
    return env


def test_validate_passes_every_check_on_the_local_mesh(full_mesh: FullMesh, tmp_path: Path) -> None:
    experiment = ROOT / "experiments" / "delay-reviews-under-load.json"
    done = subprocess.run(
        [str(BIN / "chaosmesh-istio"), "validate", str(experiment)],
        env=mesh_env(full_mesh, tmp_path), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[:2] for line in lines] == [
        ["experiment", " ok"],
        ["targets", " ok"],
        ["permissions", " ok"],
        ["header propagation", " ok"],
    ]
    assert "default/reviews" in lines[1]
    assert "get in default, patch in default" in lines[2]
    assert "x-chaos-group: preflight-" in lines[3] and "reached the caller of reviews" in lines[3]


def test_a_run_shows_its_progress_and_ends_with_the_verdict(
    full_mesh: FullMesh, tmp_path: Path
) -> None:
    short = {
        "CHAOSMESH_LOAD_DURATION": "12s",
        "CHAOSMESH_BASELINE_SECONDS": "3",
        "CHAOSMESH_FAULT_SECONDS": "6",
        "CHAOSMESH_MEASURE_WINDOW": "5s",
    }
    done = subprocess.run(
        [str(BIN / "chaosmesh-istio"), "run", str(ROOT / "experiments" /
         "delay-reviews-under-load.json"), "--var", "chaosmesh_run_id=cli-progress"],
        env=mesh_env(full_mesh, tmp_path, **short), cwd=tmp_path, capture_output=True,
        text=True, timeout=150, check=False,
    )  # fmt: skip
    out = done.stdout
    print(out, done.stderr)
    assert done.returncode == 0, out + done.stderr
    lines = out.splitlines()
    phases = [line.split("phase: ")[1] for line in lines if "] phase: " in line]
    assert phases == [
        "steady-state hypothesis before the method",
        "method",
        "steady-state hypothesis after the method",
        "rollbacks",
    ]
    load = [line for line in lines if "] load (last 5 s) control: " in line]
    assert load, out
    assert all(" | experiment: " in line and "p95 " in line and "errors " in line for line in load)
    assert lines[-2] == (
        "verdict: passed (exit code 0): the steady state held and every fault was removed "
        "and verified"
    )
    assert lines[-1].startswith("report: reports/cli-progress/report.html")
    assert (tmp_path / "reports" / "cli-progress" / "report.html").is_file()
