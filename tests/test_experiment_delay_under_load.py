"""The load-and-probes experiment on the local mesh: the delay reaches the experiment group only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def outputs(journal: dict[str, Any]) -> dict[str, Any]:
    return {run["activity"]["name"]: run for run in journal["run"]}


def test_delay_on_a_deep_hop_follows_the_missing_timeout_for_tagged_users_only(
    full_mesh: Any, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "KUBECONFIG": str(full_mesh.kubeconfig),
        "CHAOSMESH_INGRESS_URL": full_mesh.ingress_url,
        "CHAOSMESH_PROMETHEUS_URL": full_mesh.prometheus_url,
        "CHAOSMESH_PROXY_ADMIN_URLS": full_mesh.admin_url,
        "CHAOSMESH_RUN_ID": "delay-it",
        "CHAOSMESH_LOAD_DURATION": "30s",
        "CHAOSMESH_BASELINE_SECONDS": "3",
        "CHAOSMESH_FAULT_SECONDS": "8",
        "CHAOSMESH_MEASURE_WINDOW": "5s",
    }
    journal_path = tmp_path / "journal.json"
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("chaos")),
            "--no-version-check",
            "--log-file",
            str(tmp_path / "chaos.log"),
            "run",
            "--journal-path",
            str(journal_path),
            str(ROOT / "experiments" / "delay-reviews-under-load.json"),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    journal = json.loads(journal_path.read_text())
    assert journal["status"] == "completed" and journal["deviated"] is False
    ran = outputs(journal)
    for name, run in ran.items():
        assert run["status"] == "succeeded", (name, run.get("exception"))

    baseline = ran["baseline-load"]["output"]
    assert baseline["control"]["requests"] > 0 and baseline["experiment"]["requests"] > 0
    experiment_p50 = ran["experiment-median-latency-ms"]["output"]
    control_p95 = ran["control-p95-latency-ms"]["output"]
    print(f"experiment p50 {experiment_p50} ms, control p95 {control_p95} ms")
    # catalog has no timeout, so the 1.5 s delay on reviews reaches the tagged users
    # (frontend's 2 s timeout is not hit); untagged users do not see it at all.
    assert 1500 <= experiment_p50 < 2000
    assert control_p95 < 500
    assert ran["control-success-rate-in-prometheus"]["output"] == 1.0
    assert ran["delay-fired-for-experiment-group"]["output"] is True
    stopped = ran["stop-load"]["output"]
    assert stopped["groups"]["control"]["failures"] == 0
    assert all(r["status"] == "succeeded" for r in journal["rollbacks"])
    assert ran["delay-tagged-requests-to-reviews"]["output"]["live"]["live"] is True
    check_report(tmp_path / "reports", journal, experiment_p50)


def full_mesh_kubeconfig(journal: dict[str, Any]) -> str:
    return str(journal["chaosmesh"]["environment"]["kubernetes"]["kubeconfig"])


def check_report(reports: Path, journal: dict[str, Any], experiment_p50: float) -> None:
    """The control wrote the report under plain `chaos run`; its numbers are the run's."""
    run_dir = reports / "delay-it"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["verdict"], summary["exit_code"]) == ("passed", 0)
    assert summary["virtual_services"] == ["default/reviews"]
    during = summary["during_fault"]
    assert during["experiment"]["p50"] == experiment_p50 == 1500
    assert during["control"]["p95"] < 500 and during["control"]["failures"] == 0
    whole = journal["chaosmesh"]["load"]["summary"]["groups"]
    assert summary["groups"]["control"]["requests"] == whole["control"]["requests"]
    (finding,) = summary["findings"]
    assert finding["id"] == "caller-no-timeout" and finding["severity"] == "high"
    assert "experiment p50 1500 ms" in finding["evidence"]

    page = (run_dir / "report.html").read_text()
    assert "passed" in page and "exit code 0" in page
    assert finding["title"].replace("'", "&#x27;") in page
    assert "fault confirmed live" in page and "gone from the data plane" in page
    assert f"{whole['control']['requests']}" in page
    assert page.count("<svg") >= 3 and "<polyline" in page
    # The statistical comparison is the one in summary.json, shown as such.
    latency = summary["comparison"]["latency"]
    assert latency["significant"] is True and latency["magnitude"] == "large"
    assert latency["effect_size"] > 0.9  # nearly every tagged request is the slower one
    assert "Mann-Whitney U" in page and latency["interpretation"].replace("'", "&#x27;") in page
    assert "Environment" in page and str(full_mesh_kubeconfig(journal)) in page
    suite = ET.parse(run_dir / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    failed = [c.get("name", "") for c in suite.iter("testcase") if c.find("failure") is not None]
    # The probes all held; the one failure is the finding, a weakness worth fixing.
    assert len(failed) == 1 and "caller-no-timeout" in failed[0], failed
    index = (reports / "index.html").read_text()
    assert 'href="delay-it/report.html"' in index
    assert json.loads((run_dir / "journal.json").read_text())["chaosmesh"]["run_id"] == "delay-it"
