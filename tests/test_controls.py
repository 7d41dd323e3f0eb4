"""The chaosmesh control: its arguments, the ledger, and an in-process run."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import InvalidActivity
from chaoslib.experiment import run_experiment
from kubernetes import client, config

from chaosmesh_istio import controls, ledger
from chaosmesh_istio.control_options import control_options
from chaosmesh_istio.errors import InvalidArgument


def control(**arguments: Any) -> dict[str, Any]:
    return {
        "name": "chaosmesh",
        "provider": {
            "type": "python",
            "module": "chaosmesh_istio.controls",
            "arguments": arguments,
        },
    }


GUARD = {
    "type": "probe",
    "name": "guard",
    "tolerance": 0,
    "provider": {"type": "python", "module": "chaosmesh_istio.probes", "func": "x"},
}


@pytest.mark.parametrize(
    "arguments",
    [
        {"interval": 0},
        {"interval": "1s"},
        {"safeguards": [{"type": "action", "name": "a"}]},
        {"safeguards": [{"type": "probe", "name": "no-tolerance", "provider": {}}]},
        {"namespaces": "default"},
        {"preflight": "yes"},
        {"report": "yes"},
        {"reports_dir": ""},
        {"typo": 1},
    ],
)
def test_invalid_arguments_are_refused_at_validation(arguments: dict[str, Any]) -> None:
    with pytest.raises(InvalidActivity):
        controls.validate_control(control(**arguments))
    with pytest.raises(InvalidArgument):
        control_options(arguments)


def test_valid_arguments() -> None:
    controls.validate_control(control(safeguards=[GUARD], interval=0.5, namespaces=["a"]))
    options = control_options({"safeguards": [GUARD]})
    assert (options.interval, options.preflight, options.namespaces) == (1.0, True, [])


def test_ledger_records_per_run() -> None:
    ledger.clear()
    ledger.record("r1", "default", "reviews")
    ledger.record("r1", "default", "reviews")
    ledger.record("r2", "shop", "cart")
    assert ledger.run_ids() == ["r1", "r2"]
    assert ledger.namespaces() == ["default", "shop"]
    assert [e.name for e in ledger.entries("r1")] == ["reviews"]
    ledger.forget("r1")
    assert ledger.run_ids() == ["r2"]
    ledger.clear()
    assert ledger.entries() == []


def test_in_process_run_removes_the_fault_the_default_strategy_left(
    local_mesh: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed run under chaoslib's default strategy skips rollbacks; the control cleans."""
    monkeypatch.setenv("KUBECONFIG", str(local_mesh.kubeconfig))
    monkeypatch.delenv("KUBERNETES_CONTEXT", raising=False)
    monkeypatch.chdir(tmp_path)
    api = config.new_client_from_config(config_file=str(local_mesh.kubeconfig))
    kube = client.CustomObjectsApi(api)
    body = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "ctl", "namespace": "default"},
        "spec": {"hosts": ["ctl"], "http": [{"route": [{"destination": {"host": "ctl"}}]}]},
    }
    kube.create_namespaced_custom_object(
        "networking.istio.io", "v1", "default", "virtualservices", body
    )
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    experiment = {
        "version": "1.0.0",
        "title": "t",
        "description": "d",
        "configuration": {"chaosmesh_run_id": "ctl-run"},
        "controls": [control()],
        "steady-state-hypothesis": {
            "title": "h",
            "probes": [
                {
                    "type": "probe",
                    "name": "no-fault",
                    "tolerance": 0,
                    "provider": {
                        "type": "python",
                        "module": "chaosmesh_istio.probes",
                        "func": "active_fault_count",
                        "arguments": {"virtual_service": "ctl"},
                    },
                }
            ],
        },
        "method": [
            {
                "type": "action",
                "name": "inject",
                "provider": {
                    "type": "python",
                    "module": "chaosmesh_istio.actions",
                    "func": "inject_abort",
                    "arguments": {"virtual_service": "ctl", "status": 503},
                },
            }
        ],
        "rollbacks": [],
    }
    try:
        journal = run_experiment(experiment, settings={})
        vs = kube.get_namespaced_custom_object(
            "networking.istio.io", "v1", "default", "virtualservices", "ctl"
        )
    finally:
        api.close()
    assert journal["deviated"] is True
    record = journal["chaosmesh"]
    assert record["run_id"] == "ctl-run"
    assert record["rollback"]["verified"] is True
    assert [r["routes"] for r in record["rollback"]["removed"]] == [["chaos-ctl-run-0"]]
    assert [r.get("name") for r in vs["spec"]["http"]] == [None]
    assert {s: signal.getsignal(s) for s in handlers} == handlers
