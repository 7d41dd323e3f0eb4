"""Reports of a run: report.html, junit.xml and summary.json, with resilience findings.

`write_report` is the entry point; the modules below it are pure and write nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chaosmesh_istio.report.findings import Finding, findings
from chaosmesh_istio.report.junit import build_junit
from chaosmesh_istio.report.page import render_html
from chaosmesh_istio.report.summary import build_summary
from chaosmesh_istio.verdicts import verdict

__all__ = ["Finding", "findings", "write_report"]


def write_report(
    journal: Mapping[str, Any],
    out_dir: Path,
    timeseries: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Path]:
    """Write summary.json, junit.xml and report.html of a journal into `out_dir`.

    `timeseries` is the load's per-second lines (``load/timeseries.jsonl``); without it the
    report has no charts and the findings that need a before/during comparison are skipped.
    Returns the written paths by kind ("summary", "junit", "html").
    """
    outcome = verdict(journal)
    found = findings(journal, timeseries=timeseries)
    summary = build_summary(journal, outcome, found)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "summary": out_dir / "summary.json",
        "junit": out_dir / "junit.xml",
        "html": out_dir / "report.html",
    }
    paths["summary"].write_text(json.dumps(summary, indent=2, default=str) + "\n")
    paths["junit"].write_text(build_junit(journal, outcome, found))
    paths["html"].write_text(render_html(journal, outcome, found, summary, timeseries))
    return paths
