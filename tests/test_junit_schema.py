"""junit.xml validates against the Jenkins JUnit schema CI systems read, whatever the run."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from chaosmesh_istio.report import findings, write_report
from chaosmesh_istio.report.junit import build_junit
from chaosmesh_istio.verdicts import verdict
from tests.test_report import _groups, _iso, _journal, _series

SCHEMA = xmlschema.XMLSchema(Path(__file__).parent / "data" / "junit-10.xsd")
DELAY = {"delay": {"fixedDelay": "2s", "percentage": {"value": 100.0}}}
ABORT = {"abort": {"httpStatus": 503, "percentage": {"value": 100.0}}}
# Not allowed in XML 1.0 at all (NUL, C0 controls, U+FFFE), then allowed.
FORBIDDEN = "\x00\x01\x08\x0b\x0c\x1b\ufffe"
# A JSON journal can hold one ("\\ud800"); no UTF-8 file can, so only junit.xml's text is tried.
LONE_SURROGATE = "\ud800"
HOSTILE = "<script>alert(1)</script>]]><![CDATA[x]]>&amp;\"'" + FORBIDDEN + "\t\n\r\x7f\x85ü€𝄞"


def _passed() -> dict[str, Any]:
    fault = {"abort": {"httpStatus": 503, "percentage": {"value": 50.0}}}
    return _journal(fault, _groups(exp_p50=30, exp_errors=0))


def _deviated() -> dict[str, Any]:
    return _journal(DELAY, _groups(exp_p50=2050, exp_errors=0), after_met=False)


def _errored() -> dict[str, Any]:
    journal = _journal(DELAY, _groups(exp_p50=30, exp_errors=0))
    journal["run"][1]["status"] = "failed"
    journal["run"][1]["exception"] = ["chaosmesh_istio.errors.ChaosMeshError: <boom> ]]>\n"]
    return journal


def _skipped() -> dict[str, Any]:
    journal = _journal({}, {})
    before = journal["steady_states"]["before"]
    before["steady_state_met"] = False
    before["probes"][0].update(output=0.5, tolerance_met=False)
    journal["steady_states"]["after"] = None
    journal["run"] = []
    journal["status"] = "failed"
    journal["chaosmesh"].update(skipped=True, injected=False, load={})
    return journal


def _halted() -> dict[str, Any]:
    journal = _journal(ABORT, _groups(exp_p50=5, exp_errors=600))
    journal["chaosmesh"]["halted"] = True
    journal["chaosmesh"]["breaches"] = [
        {"probe": "global-error-rate", "value": 0.4, "tolerance": [0, 0.05], "time": _iso(20)}
    ]
    return journal


def _many_findings() -> dict[str, Any]:
    journal = _journal(ABORT, _groups(exp_p50=5, exp_errors=300))
    journal["run"][0]["output"]["diff"] += "+    timeout: 1s\n+    retries: {attempts: 3}\n"
    journal["run"][1]["status"] = "failed"
    journal["run"][1]["exception"] = ["chaosmesh_istio.errors.Inconclusive: never fired\n"]
    return journal


def _rollback_not_verified() -> dict[str, Any]:
    journal = _deviated()
    journal["chaosmesh"]["rollback"] = {"verified": False, "errors": ["<gone> ]]>"]}
    return journal


def _hostile(hostile: str = HOSTILE) -> dict[str, Any]:
    journal = _journal(
        DELAY,
        _groups(exp_p50=2050, exp_errors=0),
        vs=f"default/{hostile}",
        header_value=hostile,
        after_met=False,
        after_output={"detail": hostile, hostile: [hostile]},
    )
    journal["experiment"]["title"] = hostile
    for probe in journal["steady_states"]["after"]["probes"]:
        probe["activity"]["name"] = f"{probe['activity']['name']} {hostile}"
        probe["activity"]["tolerance"] = {"type": "jsonpath", "path": hostile}
    journal["steady_states"]["after"]["probes"][0]["exception"] = [f"ValueError: {hostile}"]
    journal["chaosmesh"]["breaches"] = [
        {"probe": hostile, "value": hostile, "tolerance": [hostile], "time": _iso(20)}
    ]
    return journal


def _hostile_errored() -> dict[str, Any]:
    journal = _hostile()
    journal["chaosmesh"]["breaches"] = []
    journal["run"][1]["status"] = "failed"
    journal["run"][1]["activity"]["name"] = HOSTILE
    journal["run"][1]["exception"] = [f"chaosmesh_istio.errors.ChaosMeshError: {HOSTILE}\n"]
    return journal


def _clock_went_back() -> dict[str, Any]:
    journal = _passed()
    journal["end"] = _iso(-5)
    journal["steady_states"]["before"]["probes"][0]["end"] = _iso(-1)
    return journal


def _bare() -> dict[str, Any]:
    return {"experiment": {}, "status": "aborted"}


JOURNALS: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    "passed": (_passed, "passed"),
    "deviated": (_deviated, "deviated"),
    "errored": (_errored, "errored"),
    "skipped": (_skipped, "skipped"),
    "halted": (_halted, "halted"),
    "findings": (_many_findings, "inconclusive"),
    "rollback-not-verified": (_rollback_not_verified, "rollback-not-verified"),
    "hostile": (_hostile, "halted"),
    "hostile-errored": (_hostile_errored, "errored"),
    "clock-went-back": (_clock_went_back, "passed"),
    "bare": (_bare, "errored"),
}


@pytest.mark.parametrize("kind", JOURNALS)
def test_junit_xml_is_valid_against_the_jenkins_schema(kind: str, tmp_path: Path) -> None:
    make, expected = JOURNALS[kind]
    journal = make()
    assert verdict(journal).name == expected
    paths = write_report(journal, tmp_path, _series(2050))

    text = paths["junit"].read_text(encoding="utf-8")
    errors = [str(e) for e in SCHEMA.iter_errors(text)]
    assert errors == [], text
    root = ET.fromstring(text)
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert cases
    for element in (root, suite):
        assert element.attrib["tests"] == str(len(cases))
        assert element.attrib["failures"] == str(len(suite.findall("testcase/failure")))
        assert element.attrib["errors"] == str(len(suite.findall("testcase/error")))
        assert float(element.attrib["time"]) >= 0
    assert len(suite.findall("testcase/error")) == (
        1 if expected in {"errored", "rollback-not-verified"} else 0
    )
    if expected != "passed":
        assert suite.findall("testcase/failure") or suite.findall("testcase/error")


def test_hostile_text_survives_as_text() -> None:
    journal = _hostile(HOSTILE + LONE_SURROGATE)
    text = build_junit(journal, verdict(journal), findings(journal))
    assert [str(e) for e in SCHEMA.iter_errors(text)] == []
    root = ET.fromstring(text)
    assert root.attrib["name"].startswith("chaosmesh-istio: <script>alert(1)</script>]]>")
    names = [c.attrib["name"] for c in root.iter("testcase")]
    assert any(n.startswith("error-rate <script>") for n in names)
    failures = " ".join(f.text or "" for f in root.iter("failure"))
    assert "<script>alert(1)</script>]]><![CDATA[x]]>&amp;\"'" in failures
    assert "ü€𝄞" in failures
    for forbidden in FORBIDDEN + LONE_SURROGATE:
        assert forbidden not in text
    assert "\\x00\\x01\\x08\\x0b\\x0c\\x1b\\ufffe\t" in failures  # visible, not dropped
    text.encode("utf-8")
