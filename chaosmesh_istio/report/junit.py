"""JUnit XML: one test case per hypothesis probe and phase, per safeguard breach and finding.

Uses only the attributes of the common JUnit schema (testsuites/testsuite/testcase/failure)
that CI systems read. Journal text may hold characters XML 1.0 cannot carry (NUL, most C0
controls, lone surrogates); they are written as visible ``\\xNN`` escapes instead.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

from chaosmesh_istio.report import facts
from chaosmesh_istio.report.findings import Finding
from chaosmesh_istio.verdicts import Verdict

__all__ = ["build_junit"]

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _case(
    suite: ET.Element, name: str, classname: str, seconds: float, failure: str | None
) -> None:
    case = ET.SubElement(suite, "testcase", name=name, classname=classname, time=f"{seconds:.3f}")
    if failure is not None:
        ET.SubElement(case, "failure", message=failure[:500], type="failure").text = failure


def _duration(run: Mapping[str, Any] | None) -> float:
    """Seconds from start to end; 0 when unknown, and when the clock went back (the schema
    allows no negative time)."""
    if not run:
        return 0.0
    start, end = facts.epoch(run.get("start")), facts.epoch(run.get("end"))
    if start is None or end is None or not math.isfinite(end - start):
        return 0.0
    return max(end - start, 0.0)


def _xml_safe(text: str) -> str:
    return _NOT_XML.sub(lambda m: ascii(m.group())[1:-1], text)


def _make_xml_safe(root: ET.Element) -> None:
    for element in root.iter():
        for key, value in list(element.attrib.items()):
            element.set(key, _xml_safe(value))
        if element.text:
            element.text = _xml_safe(element.text)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def build_junit(journal: Mapping[str, Any], outcome: Verdict, found: Sequence[Finding]) -> str:
    """The junit.xml text of a run."""
    title = str((journal.get("experiment") or {}).get("title") or "chaos experiment")
    suite_name = f"chaosmesh-istio: {title}"
    root = ET.Element("testsuites", name=suite_name)
    suite = ET.SubElement(root, "testsuite", name=suite_name)
    for row in facts.hypothesis_rows(journal):
        for phase in ("before", "after"):
            if phase not in row["met"]:
                continue
            probe = row.get(f"{phase}_probe") or {}
            failure = None
            if row["met"][phase] is False:
                failure = (
                    f"probe {row['probe']!r} {phase} the method: output {_text(row[phase])}"
                    f" does not meet tolerance {_text(row['tolerance'])}"
                    f" {facts.exception_text(probe)}".rstrip()
                )
            _case(suite, f"{row['probe']} ({phase})", "hypothesis", _duration(probe), failure)
    for breach in (journal.get("chaosmesh") or {}).get("breaches") or []:
        _case(
            suite,
            f"safeguard {breach.get('probe', '?')}",
            "safeguard",
            0.0,
            f"safeguard {breach.get('probe', '?')!r} breached with value"
            f" {_text(breach.get('value'))} (tolerance {_text(breach.get('tolerance'))})",
        )
    for finding in found:
        failure = None
        if finding.severity == "high":
            failure = f"{finding.title}: {finding.evidence}. Fix: {finding.recommendation}"
        _case(suite, f"{finding.id}: {finding.title}", "finding", 0.0, failure)
    cases = suite.findall("testcase")
    failures = sum(1 for c in cases if c.find("failure") is not None)
    errors = 1 if outcome.name in {"errored", "rollback-not-verified"} else 0
    if errors:
        _case(suite, "run", "run", 0.0, None)
        ET.SubElement(suite[-1], "error", message=outcome.reason, type=outcome.name)
        cases.append(suite[-1])
    total_time = _duration(journal)
    for element in (suite, root):
        element.set("tests", str(len(cases)))
        element.set("failures", str(failures))
        element.set("errors", str(errors))
        element.set("time", f"{total_time:.3f}")
    _make_xml_safe(root)
    ET.indent(root)
    # UTF-8, the encoding XML defaults to, rather than the locale's that ET would declare.
    declaration = '<?xml version="1.0" encoding="UTF-8"?>\n'
    return declaration + ET.tostring(root, encoding="unicode") + "\n"
