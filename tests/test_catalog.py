"""The experiment catalog: every experiment is valid, follows the catalog's shape, and gives
on the local mesh the verdict and findings experiments/README.md promises."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from chaoslib.experiment import ensure_experiment_is_valid
from chaoslib.loader import load_experiment
from kubernetes import client, config

from chaosmesh_istio import faults

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"
BIN = Path(sys.executable).parent
INJECTORS = {"inject_fault", "inject_delay", "inject_abort"}


@dataclass(frozen=True)
class Expected:
    """What a run must show besides its exit code: findings, and where the fault fired."""

    findings: frozenset[str]
    deviating_probe: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)


# In run order: a run's last tagged requests may still be in the next run's baseline window,
# so a tight latency promise (cascading-delays) never follows a slow experiment.
CATALOG = {
    "service-down.json": Expected(frozenset({"fallback-works"})),
    "intermittent-errors.json": Expected(frozenset({"fallback-works"})),
    "flaky-service.json": Expected(frozenset({"fallback-works", "route-policy-disabled"})),
    "baggage-deep.json": Expected(
        frozenset({"fallback-works", "route-policy-disabled"}),
        outputs={"fault-fired": True, "aborted-calls-of-real-users": 0},
    ),
    # 30% delayed: the findings judge p95, which falls among the delayed requests.
    "cascading-delays.json": Expected(
        frozenset({"caller-timeout-works"}), deviating_probe="tagged-users-p95-ms"
    ),
    "combined-faults.json": Expected(frozenset({"fallback-works", "caller-timeout-works"})),
    "slow-network.json": Expected(frozenset({"caller-timeout-works"})),
    "timeout-validation.json": Expected(
        frozenset({"route-policy-disabled", "latency-amplified"}),
        deviating_probe="tagged-page-has-no-degraded-part",
        outputs={"the-route-timeout-under-test": "1s"},
    ),
}
SHORT_RUN = {
    "CHAOSMESH_LOAD_DURATION": "60s",  # an upper bound: the rollbacks stop the load
    "CHAOSMESH_BASELINE_SECONDS": "3",
    "CHAOSMESH_FAULT_SECONDS": "6",
    "CHAOSMESH_MEASURE_WINDOW": "5s",
    "CHAOSMESH_FAULT_FIRED_WINDOW": "10s",
    "CHAOSMESH_SCRAPE_SETTLE": "2",
}


def readme_verdicts() -> dict[str, int]:
    """experiments/README.md's expected exit code of every experiment of its table."""
    verdicts = {}
    for line in (EXPERIMENTS / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = re.fullmatch(r"`([\w-]+\.json)`", cells[0]) if len(cells) >= 7 else None
        if name:
            code = re.search(r"\b(passed|deviated|skipped|halted|inconclusive) \((\d)\)", cells[5])
            assert code, f"no expected verdict in the README row of {name.group(1)}: {cells[5]!r}"
            verdicts[name.group(1)] = int(code.group(2))
    return verdicts


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without the user's CHAOSMESH_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAOSMESH_")}
    env["CHAOSMESH_SENTINEL"] = os.environ.get("CHAOSMESH_SENTINEL", "0")
    return {**env, **extra}


def activities(experiment: dict[str, Any]) -> list[dict[str, Any]]:
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    return [*(hypothesis.get("probes") or []), *experiment["method"], *experiment["rollbacks"]]


def funcs(steps: list[dict[str, Any]]) -> list[str]:
    return [str(s["provider"].get("func", "")) for s in steps if "provider" in s]


def test_the_readme_table_lists_exactly_the_catalog() -> None:
    assert set(readme_verdicts()) == set(CATALOG)
    on_disk = {p.name for p in EXPERIMENTS.glob("*.json")}
    assert set(CATALOG) <= on_disk


@pytest.mark.parametrize("name", list(CATALOG))
def test_each_experiment_is_valid_with_the_mesh_environment(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {
        "CHAOSMESH_INGRESS_URL": "http://127.0.0.1:18080",
        "CHAOSMESH_PROMETHEUS_URL": "http://127.0.0.1:19090",
        "CHAOSMESH_RUN_ID": "valid-run",
        **SHORT_RUN,
    }.items():
        monkeypatch.setenv(key, value)
    experiment = load_experiment(str(EXPERIMENTS / name))
    ensure_experiment_is_valid(experiment)


@pytest.mark.parametrize("name", list(CATALOG))
def test_each_experiment_has_the_catalog_shape(name: str) -> None:
    experiment = json.loads((EXPERIMENTS / name).read_text())
    method, rollbacks = experiment["method"], experiment["rollbacks"]
    assert "start_load" in funcs(method) and INJECTORS & set(funcs(method))
    assert "fault_fired" in funcs(method), "a fault must be proven to fire"
    assert {"remove_faults", "stop_load"} <= set(funcs(rollbacks))
    # The hypothesis judges the experiment group, with windows, under the fault.
    probes = experiment["steady-state-hypothesis"]["probes"]
    judged = {p["provider"].get("func"): p for p in probes if p["provider"]["type"] == "python"}
    for func in ("success_rate", "latency_quantile"):
        assert judged[func]["provider"]["arguments"]["group"] == "experiment"
        assert judged[func]["provider"]["arguments"]["window"] == "${measure_window}"
        assert judged[func]["tolerance"]["type"] == "range"
    # The after-hypothesis runs under the fault: the method never ends with it removed.
    steps = funcs(method)
    last_injection = max(i for i, f in enumerate(steps) if f in INJECTORS)
    assert "remove_faults" not in steps[last_injection:]
    (control,) = experiment["controls"]
    assert control["provider"]["module"] == "chaosmesh_istio.controls"
    guards = control["provider"]["arguments"]["safeguards"]
    assert guards and all(g["provider"]["arguments"]["group"] == "control" for g in guards)
    assert all(g["provider"]["arguments"].get("window") for g in guards)
    # Runnable anywhere by configuration: every value has an environment variable and a
    # local default.
    for key, value in experiment["configuration"].items():
        assert value.get("type") in ("env", "probe"), key
        if value["type"] == "env":
            assert value["key"].startswith("CHAOSMESH_") and "default" in value, key
    assert experiment["configuration"]["target"]["key"] == "CHAOSMESH_TARGET"


@pytest.fixture(scope="module")
def kube(full_mesh: Any) -> Iterator[client.CustomObjectsApi]:
    api = config.new_client_from_config(config_file=str(full_mesh.kubeconfig))
    yield client.CustomObjectsApi(api)
    api.close()


def leftovers(kube: client.CustomObjectsApi) -> list[str]:
    """Chaos routes and run annotations in any VirtualService of the mesh."""
    found = []
    listed = kube.list_cluster_custom_object("networking.istio.io", "v1", "virtualservices")
    for vs in listed["items"]:
        found += [f"{r['virtual_service']} {r['route']}" for r in faults.active_runs(vs)]
        if faults.runs(vs):
            found.append(f"{faults.vs_ref(vs)} annotation {faults.RUNS_ANNOTATION}")
    return found


def outputs(journal: dict[str, Any]) -> dict[str, Any]:
    return {run["activity"]["name"]: run for run in journal["run"]}


@pytest.mark.parametrize("name", list(CATALOG))
def test_each_experiment_gives_the_promised_verdict_on_the_local_mesh(
    name: str, full_mesh: Any, kube: client.CustomObjectsApi, tmp_path: Path
) -> None:
    expected, promised = CATALOG[name], readme_verdicts()[name]
    run_id = f"catalog-{name.removesuffix('.json')}"
    env = clean_env(
        HOME=str(tmp_path),
        KUBECONFIG=str(full_mesh.kubeconfig),
        CHAOSMESH_INGRESS_URL=full_mesh.ingress_url,
        CHAOSMESH_PROMETHEUS_URL=full_mesh.prometheus_url,
        CHAOSMESH_PROXY_ADMIN_URLS=full_mesh.admin_url,
        CHAOSMESH_RUN_ID=run_id,
        **SHORT_RUN,
    )
    checked = subprocess.run(
        [str(BIN / "chaosmesh-istio"), "validate", str(EXPERIMENTS / name)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = checked.stdout.lower()
    for check in ("experiment", "targets", "permissions", "header propagation"):
        assert re.search(rf"{check}\b.*\bok\b", lines), (check, checked.stdout)

    journal_path = tmp_path / "journal.json"
    done = subprocess.run(
        [str(BIN / "chaosmesh-istio"), "run", str(EXPERIMENTS / name), "--journal-path",
         str(journal_path)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    print(done.stdout[-4000:], done.stderr[-2000:])
    assert done.returncode == promised, done.stdout[-3000:] + done.stderr[-2000:]

    journal = json.loads(journal_path.read_text())
    ran = outputs(journal)
    for step, run in ran.items():
        assert run["status"] == "succeeded", (step, run.get("exception"))
    assert ran["fault-fired"]["output"] is True
    injected = [r for r in journal["run"] if r["activity"]["provider"].get("func") in INJECTORS]
    assert all(r["output"]["live"]["live"] is True for r in injected)
    for step, value in expected.outputs.items():
        assert ran[step]["output"] == value, step
    assert journal["chaosmesh"]["rollback"]["verified"] is True
    assert leftovers(kube) == []

    summary = json.loads((tmp_path / "reports" / run_id / "summary.json").read_text())
    assert summary["exit_code"] == promised
    found = {f["id"] for f in summary["findings"]}
    assert expected.findings <= found, summary["findings"]
    assert "blast-radius-leaked" not in found and "header-not-propagated" not in found
    after = journal["steady_states"]["after"]["probes"]
    missed = [p["activity"]["name"] for p in after if not p["tolerance_met"]]
    assert missed == ([expected.deviating_probe] if expected.deviating_probe else [])
    if name == "baggage-deep.json":
        (inject,) = injected
        assert inject["output"]["scope"] == "baggage"
        assert ran["start-load"]["output"]["header"] == "baggage"
    if name == "timeout-validation.json":
        delays = [r["output"]["fault"]["delay"]["fixedDelay"] for r in injected]
        assert delays == ["1100ms", "1s", "900ms"]  # 110%, 100%, 90% of ratings' 1s
