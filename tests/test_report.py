"""Reports built from hand-made journals: verdict, findings, escaping, JUnit and summary."""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaosmesh_istio.report import findings, write_report

T0 = 1_700_000_000.0
NASTY_SCRIPT = "<script>alert(1)</script>"
NASTY_IMG = '"><img src=x onerror=alert(1)>'


def _iso(offset: float) -> str:
    return datetime.fromtimestamp(T0 + offset, UTC).replace(tzinfo=None).isoformat()


def _probe(name: str, output: Any, met: bool, at: float) -> dict[str, Any]:
    return {
        "activity": {
            "type": "probe",
            "name": name,
            "tolerance": {"type": "range", "range": [0, 0.01]},
            "provider": {"type": "python", "func": "error_rate"},
        },
        "output": output,
        "status": "succeeded",
        "tolerance_met": met,
        "start": _iso(at),
        "end": _iso(at + 0.5),
    }


def _activity(func: str, start: float, end: float, output: Any = None) -> dict[str, Any]:
    return {
        "activity": {"type": "action", "name": func, "provider": {"type": "python", "func": func}},
        "output": output,
        "status": "succeeded",
        "start": _iso(start),
        "end": _iso(end),
    }


DIFF = """--- default/reviews (before)
+++ default/reviews (after)
@@ -1,3 +1,12 @@
+  - name: chaos-abc123-reviews-v1
+    fault:
+      delay: {fixedDelay: 2s}
"""


def _journal(
    fault: dict[str, Any],
    groups: dict[str, dict[str, Any]],
    *,
    vs: str = "default/reviews",
    header_value: str = "abc123",
    after_met: bool = True,
    after_output: Any = 0.0,
) -> dict[str, Any]:
    inject = _activity(
        "inject_fault",
        10,
        11,
        {
            "run_id": "abc123",
            "scope": "header",
            "header": "x-chaos-run",
            "header_value": header_value,
            "fault": fault,
            "virtual_services": [vs],
            "routes": ["chaos-abc123-reviews-v1"],
            "faulted": [],
            "diff": DIFF,
        },
    )
    remove = _activity("remove_faults", 70, 71, {"verified": True, "removed": []})
    return {
        "experiment": {"title": "reviews under a fault", "method": []},
        "start": _iso(0),
        "end": _iso(75),
        "status": "completed" if after_met else "failed",
        "deviated": not after_met,
        "steady_states": {
            "before": {
                "steady_state_met": True,
                "probes": [_probe("error-rate", 0.0, True, 1), _probe("p95", 40, True, 2)],
            },
            "after": {
                "steady_state_met": after_met,
                "probes": [
                    _probe("error-rate", after_output, after_met, 72),
                    _probe("p95", 42, True, 73),
                ],
            },
            "during": [],
        },
        "run": [inject, _activity("fault_fired", 12, 13, {"fired": True}), remove],
        "rollbacks": [],
        "chaosmesh": {
            "run_id": "abc123",
            "skipped": False,
            "halted": False,
            "breaches": [],
            "injected": True,
            "rollback": {"verified": True, "removed": [], "errors": []},
            "load": {"stopped": True, "summary": {"run_id": "abc123", "groups": groups}},
        },
    }


def _groups(exp_p50: float, exp_errors: int, ctl_errors: int = 0) -> dict[str, Any]:
    def group(requests: int, failures: int, p50: float) -> dict[str, Any]:
        return {
            "requests": requests,
            "failures": failures,
            "error_rate": failures / requests,
            "success_rate": 1 - failures / requests,
            "p50": p50,
            "p95": p50 * 1.5,
            "p99": p50 * 2,
            "rps": requests / 60,
        }

    return {
        "control": group(6000, ctl_errors, 30),
        "experiment": group(600, exp_errors, exp_p50),
        "all": group(6600, ctl_errors + exp_errors, 32),
    }


def _series(exp_p50_during: float, exp_rps_during: int = 10) -> list[dict[str, Any]]:
    lines = []
    for second in range(80):
        faulted = 11 <= second < 70
        lines.append(
            {"t": T0 + second, "group": "control", "requests": 100, "failures": 0,
             "p50": 30, "p95": 45, "p99": 60, "hist": {"30": 60, "45": 35, "60": 5}}
        )  # fmt: skip
        p50 = exp_p50_during if faulted else 30
        count = exp_rps_during if faulted else 10
        lines.append(
            {"t": T0 + second, "group": "experiment", "requests": count, "failures": 0,
             "p50": p50, "p95": p50 * 1.2, "p99": p50 * 1.4, "hist": {str(int(p50)): count}}
        )  # fmt: skip
    return lines


def _junit(path: Path) -> tuple[ET.Element, list[ET.Element]]:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    for case in suites[0].findall("testcase"):
        assert {"name", "classname", "time"} <= set(case.attrib)
        float(case.attrib["time"])
        for failure in case.findall("failure"):
            assert failure.attrib["message"]
    for element in (root, suites[0]):
        assert {"tests", "failures", "errors", "time"} <= set(element.attrib)
    return suites[0], suites[0].findall("testcase")


def _failures(cases: list[ET.Element]) -> list[str]:
    return [c.attrib["name"] for c in cases if c.find("failure") is not None]


def test_passed_run_with_a_working_fallback(tmp_path: Path) -> None:
    fault = {"abort": {"httpStatus": 503, "percentage": {"value": 50.0}}}
    journal = _journal(fault, _groups(exp_p50=30, exp_errors=0))
    paths = write_report(journal, tmp_path, _series(30))

    summary = json.loads(paths["summary"].read_text())
    assert (summary["verdict"], summary["exit_code"], summary["run_id"]) == ("passed", 0, "abc123")
    assert summary["virtual_services"] == ["default/reviews"]
    assert summary["fault"] == fault
    assert summary["groups"]["control"]["requests"] == 6000
    assert summary["groups"]["experiment"]["error_rate"] == 0.0
    assert [f["id"] for f in summary["findings"]] == ["fallback-works"]

    suite, cases = _junit(paths["junit"])
    assert len(cases) == 4 + 1  # two probes before and after, one finding
    assert suite.attrib["tests"] == "5"
    assert suite.attrib["failures"] == "0"
    assert _failures(cases) == []

    page = paths["html"].read_text()
    assert "passed" in page and "exit code 0" in page
    assert page.count("<svg") == 3
    assert "<rect" in page  # the fault window is shaded


def test_deviated_run_finds_the_missing_caller_timeout(tmp_path: Path) -> None:
    fault = {"delay": {"fixedDelay": "2s", "percentage": {"value": 100.0}}}
    journal = _journal(fault, _groups(exp_p50=2050, exp_errors=0), after_met=False)
    paths = write_report(journal, tmp_path, _series(2050))

    summary = json.loads(paths["summary"].read_text())
    assert (summary["verdict"], summary["exit_code"]) == ("deviated", 1)
    (finding,) = summary["findings"]
    assert finding["id"] == "caller-no-timeout"
    assert finding["severity"] == "high"
    assert "2000 ms" in finding["evidence"] and "2050 ms" in finding["evidence"]
    assert summary["groups"]["experiment"]["p50"] == 2050

    suite, cases = _junit(paths["junit"])
    assert len(cases) == 5
    assert suite.attrib["failures"] == "2"
    assert sorted(_failures(cases)) == [
        "caller-no-timeout: The caller has no timeout: the injected delay reaches its users",
        "error-rate (after)",
    ]
    page = paths["html"].read_text()
    assert "deviated" in page and "The caller has no timeout" in page


def test_halted_run_reports_the_breach(tmp_path: Path) -> None:
    fault = {"abort": {"httpStatus": 503, "percentage": {"value": 100.0}}}
    journal = _journal(fault, _groups(exp_p50=5, exp_errors=600))
    journal["chaosmesh"]["halted"] = True
    journal["chaosmesh"]["breaches"] = [
        {"probe": "global-error-rate", "value": 0.4, "tolerance": [0, 0.05], "time": _iso(20)}
    ]
    paths = write_report(journal, tmp_path)

    summary = json.loads(paths["summary"].read_text())
    assert (summary["verdict"], summary["exit_code"]) == ("halted", 3)
    assert summary["breaches"][0]["value"] == 0.4
    assert [f["id"] for f in summary["findings"]] == ["no-fallback"]

    _, cases = _junit(paths["junit"])
    assert len(cases) == 4 + 1 + 1  # probes, the breach, the finding
    assert sorted(_failures(cases)) == [
        "no-fallback: No fallback: aborted calls fail for the caller's users",
        "safeguard global-error-rate",
    ]
    page = paths["html"].read_text()
    assert "halted" in page and "exit code 3" in page
    assert "safeguard breach" in page and "global-error-rate" in page
    assert "No load time series was recorded" in page


def test_journal_values_appear_only_escaped(tmp_path: Path) -> None:
    nasty = NASTY_SCRIPT + NASTY_IMG
    fault = {"delay": {"fixedDelay": "2s", "percentage": {"value": 100.0}}}
    journal = _journal(
        fault,
        _groups(exp_p50=2050, exp_errors=0),
        vs=f"default/{nasty}",
        header_value=nasty,
        after_output={"detail": nasty},
    )
    journal["experiment"]["title"] = nasty
    journal["steady_states"]["before"]["probes"][0]["activity"]["name"] = nasty
    journal["run"][0]["output"]["diff"] += f"+  host: {nasty}\n"
    paths = write_report(journal, tmp_path, _series(2050))

    page = paths["html"].read_text()
    for raw in (NASTY_SCRIPT, NASTY_IMG, "<img", "<script"):
        assert raw not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert not re.search(r"https?://", page)
    assert re.findall(r"<(\w+)", page).count("script") == 0

    suite, _ = _junit(paths["junit"])  # still well-formed XML
    assert nasty in ET.tostring(suite, encoding="unicode").replace("&lt;", "<").replace(
        "&gt;", ">"
    ).replace("&quot;", '"')
    assert json.loads(paths["summary"].read_text())["scope"]["header_value"] == nasty


def test_route_policy_header_and_blast_radius_findings() -> None:
    fault = {"abort": {"httpStatus": 503, "percentage": {"value": 100.0}}}
    journal = _journal(fault, _groups(exp_p50=5, exp_errors=300))
    journal["run"][0]["output"]["diff"] += "+    timeout: 1s\n+    retries: {attempts: 3}\n"
    fired = journal["run"][1]
    fired["status"] = "failed"
    fired["exception"] = ["chaosmesh_istio.errors.Inconclusive: the fault never fired\n"]
    series = _series(5, exp_rps_during=30)
    for line in series:
        if line["group"] == "control" and T0 + 11 <= line["t"] < T0 + 70:
            line["failures"] = 20
        if line["group"] == "experiment" and T0 + 11 <= line["t"] < T0 + 70:
            line["failures"] = 15  # half of the aborted calls reach the users

    found = {f.id: f for f in findings(journal, timeseries=series)}
    assert set(found) == {
        "partial-fallback",
        "route-policy-disabled",
        "header-not-propagated",
        "blast-radius-leaked",
        "retries-amplified-load",
    }
    assert "retries and timeout" in found["route-policy-disabled"].title
    assert "downstream" in found["route-policy-disabled"].recommendation
    assert "x-chaos-run" in found["header-not-propagated"].recommendation
    assert "0.0% before the fault, 20.0% during" in found["blast-radius-leaked"].evidence
    assert "(3.0x)" in found["retries-amplified-load"].evidence
    assert [f.severity for f in findings(journal, timeseries=series)] == sorted(
        (f.severity for f in found.values()), key=["high", "medium", "low", "info"].index
    )


def test_a_journal_without_load_or_injection_still_renders(tmp_path: Path) -> None:
    journal = _journal({}, {})
    journal["run"] = []
    journal["chaosmesh"] = {}
    paths = write_report(copy.deepcopy(journal), tmp_path / "nested" / "dir")
    summary = json.loads(paths["summary"].read_text())
    assert summary["groups"] == {} and summary["findings"] == []
    assert "(nothing was injected)" in paths["html"].read_text()


def _delay_findings(share: float, experiment: dict[str, float]) -> set[str]:
    fault = {"delay": {"fixedDelay": "1s", "percentage": {"value": share}}}
    control = {"p50": 10.0, "p95": 20.0, "p99": 30.0}
    journal = _journal(fault, _groups(exp_p50=10, exp_errors=0))
    found = findings(journal, groups={"control": control, "experiment": experiment})
    return {f.id for f in found}


def test_latency_findings_read_the_quantile_that_falls_among_delayed_requests() -> None:
    # 30% delayed: p50 is an undelayed request; p95 is a delayed one.
    assert _delay_findings(30, {"p50": 12, "p95": 1010, "p99": 1020}) == {"caller-no-timeout"}
    assert _delay_findings(30, {"p50": 12, "p95": 400, "p99": 410}) == {"caller-timeout-works"}
    assert _delay_findings(100, {"p50": 1005, "p95": 1010, "p99": 1020}) == {"caller-no-timeout"}
    # 1% delayed: too few to judge from any published quantile.
    assert _delay_findings(1, {"p50": 12, "p95": 20, "p99": 25}) == set()


def test_retries_that_multiply_the_delay_are_not_mistaken_for_a_missing_timeout() -> None:
    # Three tries of 0.5 s each against a 0.9 s delay: 1.5 s for the users.
    found = _delay_findings(100, {"p50": 1500, "p95": 1510, "p99": 1520})
    assert found == {"latency-amplified"}
