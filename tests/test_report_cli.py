"""`chaosmesh-istio run` writes the report of a real run; `report JOURNAL` writes it again."""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from chaosmesh_istio.cli import main
from tests.test_fault_tolerance import BIN, action, create, experiment, finish, inject, start


@pytest.fixture
def kube(local_mesh: Any) -> Iterator[client.CustomObjectsApi]:
    api = config.new_client_from_config(config_file=str(local_mesh.kubeconfig))
    yield client.CustomObjectsApi(api)
    api.close()


def test_run_writes_the_report_and_report_rewrites_it(
    local_mesh: Any, kube: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vs = create(kube)
    method = [inject(vs, 0.2), action("remove-now", "remove_faults", virtual_service=vs)]
    exp = experiment(vs, method)
    exp["configuration"] = {"chaosmesh_run_id": "report-cli"}
    proc, journal_path = start(local_mesh, tmp_path, exp)
    finish(proc, journal_path, "report")
    assert proc.returncode == 0

    run_dir = tmp_path / "reports" / "report-cli"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["verdict"], summary["exit_code"], summary["run_id"]) == (
        "passed",
        0,
        "report-cli",
    )
    assert summary["virtual_services"] == [f"default/{vs}"]
    html = (run_dir / "report.html").read_text()
    assert vs in html
    # Self-contained: URLs appear only as text (the environment), never as a resource.
    assert not re.search(r"""(?:src|href|url)\s*[=(]\s*["']?\s*https?:""", html, re.I)
    assert "https://127.0.0.1" in html  # the API server, in the environment section
    suite = ET.parse(run_dir / "junit.xml").getroot()
    assert suite.tag in ("testsuites", "testsuite")

    out = tmp_path / "again"
    assert main(["report", str(journal_path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"html: {out / 'report.html'}" in printed
    assert (out / "report.html").read_text() == html


def test_report_refuses_what_is_not_a_journal(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    done = subprocess.run(
        [str(BIN / "chaosmesh-istio"), "report", str(bad)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 64
    assert "is not a Chaos Toolkit journal" in done.stderr
    assert done.stderr.count("\n") == 1
