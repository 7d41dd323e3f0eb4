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
from chaosmesh_istio.report.summary import build_summary, run_id
from chaosmesh_istio.verdicts import verdict

__all__ = ["Finding", "findings", "report_run", "write_report"]


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
    summary = build_summary(journal, outcome, found, timeseries)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "summary": out_dir / "summary.json",
        "junit": out_dir / "junit.xml",
        "html": out_dir / "report.html",
    }
    # Journals are JSON: a lone surrogate (\ud800) is valid there and must not crash a write.
    text = {"encoding": "utf-8", "errors": "backslashreplace"}
    paths["summary"].write_text(json.dumps(summary, indent=2, default=str) + "\n", **text)
    paths["junit"].write_text(build_junit(journal, outcome, found), **text)
    paths["html"].write_text(render_html(journal, outcome, found, summary, timeseries), **text)
    return paths


def report_run(
    journal: Mapping[str, Any], reports_dir: Path, out_dir: Path | None = None
) -> dict[str, Path]:
    """Write the report of a run into ``out_dir`` (default ``reports_dir/<run-id>``).

    The load's per-second series is read from ``reports_dir/<run-id>/load/timeseries.jsonl``
    when the run had a load.
    """
    rid = run_id(journal) or "unknown-run"
    target = Path(out_dir) if out_dir is not None else Path(reports_dir) / rid
    series_file = Path(reports_dir) / rid / "load" / "timeseries.jsonl"
    timeseries = None
    if series_file.exists():
        lines = series_file.read_text(encoding="utf-8").splitlines()
        timeseries = [json.loads(line) for line in lines if line.strip()]
    return write_report(journal, target, timeseries)
