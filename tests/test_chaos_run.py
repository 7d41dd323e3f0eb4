"""A new user's path: kubectl apply a VirtualService, `chaos run` the bundled experiment.

The experiment injects a header-scoped abort and removes it in its rollbacks; afterwards
the VirtualService must be exactly as kubectl applied it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MANIFEST = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-e2e
  namespace: default
  labels: {app: reviews}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews, subset: v2}
  - name: default
    route:
    - destination: {host: reviews, subset: v1}
      weight: 90
    - destination: {host: reviews, subset: v3}
      weight: 10
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: 5xx}
    timeout: 6s
"""


def kubectl(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["kubectl", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_chaos_run_of_the_abort_experiment_leaves_the_virtual_service_identical(
    local_mesh: Any, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "KUBECONFIG": str(local_mesh.kubeconfig),
        "HOME": str(tmp_path),
        "CHAOSMESH_VIRTUAL_SERVICE": "reviews-e2e",
    }
    env.pop("KUBERNETES_CONTEXT", None)
    manifest = tmp_path / "reviews.yaml"
    manifest.write_text(MANIFEST)
    kubectl(env, "apply", "-f", str(manifest))
    before = yaml.safe_load(kubectl(env, "get", "vs", "reviews-e2e", "-o", "yaml"))

    journal = tmp_path / "journal.json"
    run = subprocess.run(
        [
            str(BIN / "chaos"),
            "--no-version-check",
            "--log-file",
            str(tmp_path / "chaostoolkit.log"),
            "--settings",
            str(tmp_path / "settings.yaml"),
            "run",
            "--journal-path",
            str(journal),
            str(ROOT / "experiments" / "header-scoped-abort.json"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(journal.read_text())
    assert result["status"] == "completed"
    assert result["deviated"] is False
    assert result["run"][0]["output"] == 0
    injected = result["run"][1]["output"]
    assert injected["header"] == "x-chaos-run"
    assert injected["virtual_services"] == ["default/reviews-e2e"]
    assert [f["original"] for f in injected["faulted"]] == ["jason", "default"]
    live = result["run"][2]["output"]
    assert {f["route"] for f in live} == set(injected["routes"])
    assert all(f["fault"]["abort"]["httpStatus"] == 503 for f in live)
    rollback = result["rollbacks"][0]
    assert rollback["status"] == "succeeded"
    assert rollback["output"]["verified"] is True

    after = yaml.safe_load(kubectl(env, "get", "vs", "reviews-e2e", "-o", "yaml"))
    for owned in ("labels", "annotations"):
        assert after["metadata"].get(owned) == before["metadata"].get(owned)
    assert after["spec"] == before["spec"]
    assert yaml.safe_dump(after["spec"]) == yaml.safe_dump(yaml.safe_load(MANIFEST)["spec"])
