"""A safeguard on the control group's error rate halts a run whose fault leaked to real users."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from kubernetes import client, config

BIN = Path(sys.executable).parent


def python(module: str, func: str, name: str, **arguments: Any) -> dict[str, Any]:
    kind = "action" if module.endswith("actions") else "probe"
    return {
        "type": kind,
        "name": name,
        "provider": {"type": "python", "module": module, "func": func, "arguments": arguments},
    }


def test_control_group_breach_halts_the_run_and_removes_the_fault(
    full_mesh: Any, tmp_path: Path
) -> None:
    # An unscoped abort on the ingress route hurts everyone, the control group included:
    # exactly the leak a safeguard exists for.
    guard = python(
        "chaosmesh_istio.probes", "load_success_rate", "control-group-is-healthy",
        group="control", window="2s",
    )  # fmt: skip
    guard["tolerance"] = {"type": "range", "range": [0.95, 1.0]}
    inject = python(
        "chaosmesh_istio.actions", "inject_abort", "leaky-abort",
        virtual_service="frontend-ingress", status=503, percentage=50, scope="none",
        allow_unscoped=True, ttl="2m",
    )  # fmt: skip
    inject["pauses"] = {"after": 20}
    load = python(
        "chaosmesh_istio.actions", "start_load", "load",
        host=full_mesh.ingress_url, users=4, duration="40s", paths=[{"path": "/product/1"}],
    )  # fmt: skip
    load["pauses"] = {"after": 3}
    experiment = {
        "version": "1.0.0",
        "title": "a leaking fault trips the control-group safeguard",
        "description": "written by tests/test_safeguard_mesh.py",
        "configuration": {"chaosmesh_run_id": "leak-guard"},
        "method": [load, inject],
        "rollbacks": [
            python(
                "chaosmesh_istio.actions",
                "remove_faults",
                "remove",
                virtual_service="frontend-ingress",
            ),
            python("chaosmesh_istio.actions", "stop_load", "stop"),
        ],
        "controls": [
            {
                "name": "chaosmesh",
                "provider": {
                    "type": "python",
                    "module": "chaosmesh_istio.controls",
                    "arguments": {"safeguards": [guard], "interval": 1},
                },
            }
        ],
    }
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(experiment))
    journal_path = tmp_path / "journal.json"
    env = {**os.environ, "KUBECONFIG": str(full_mesh.kubeconfig), "HOME": str(tmp_path)}
    done = subprocess.run(
        [str(BIN / "chaosmesh-istio"), "run", str(path), "--journal-path", str(journal_path)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    print(done.stdout[-3000:], done.stderr[-2000:])
    assert done.returncode == 3, done.stdout[-2000:]
    journal = json.loads(journal_path.read_text())
    breaches = journal["chaosmesh"]["breaches"]
    assert breaches and breaches[0]["probe"] == "control-group-is-healthy"
    # A real measurement out of range, not a guard that could not see.
    assert isinstance(breaches[0]["value"], float) and breaches[0]["value"] < 0.95
    assert journal["chaosmesh"]["rollback"]["verified"] is True
    api = config.new_client_from_config(config_file=str(full_mesh.kubeconfig))
    try:
        live = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "networking.istio.io", "v1", "default", "virtualservices", "frontend-ingress"
        )
    finally:
        api.close()
    assert [r.get("name") for r in live["spec"]["http"]] == ["frontend"]
