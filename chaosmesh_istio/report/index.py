"""index.html of a reports directory: every run, newest first, as a game-day history.

Built from each run's summary.json only, so it can be regenerated at any time. Like the
run pages it is self-contained (inline CSS, no script, no external URL), and every value
from a summary is escaped: titles and run ids are user-controlled.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaosmesh_istio.report.facts import epoch
from chaosmesh_istio.report.findings import SEVERITIES
from chaosmesh_istio.report.page import CSS, EXIT_CODE_MEANINGS, VERDICT_COLOURS, escape

__all__ = [
    "STYLE",
    "highest_severity",
    "key_figures",
    "read_summary",
    "verdict_badge",
    "write_index",
]

#: The run page's style plus the verdict badge, for every page that lists runs.
STYLE = CSS + ".verdict{color:#fff;padding:.1rem .4rem;border-radius:4px;white-space:nowrap}"


def read_summary(run_dir: Path) -> dict[str, Any]:
    """The summary.json of a run directory; ValueError (or OSError) when it is unusable."""
    loaded = json.loads((Path(run_dir) / "summary.json").read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise ValueError("summary.json does not hold a JSON object")
    return loaded


def highest_severity(summary: Mapping[str, Any]) -> str | None:
    """The most severe finding's severity, None without findings."""
    found = [f.get("severity") for f in summary.get("findings") or [] if isinstance(f, Mapping)]
    known = [s for s in found if s in SEVERITIES]
    return min(known, key=SEVERITIES.index) if known else None


def key_figures(summary: Mapping[str, Any]) -> dict[str, float | None]:
    """Error rate (fraction) and p95 (ms) of the experiment and control groups."""
    groups = summary.get("groups") or {}
    figures: dict[str, float | None] = {}
    for group in ("experiment", "control"):
        stats = groups.get(group) if isinstance(groups, Mapping) else None
        stats = stats if isinstance(stats, Mapping) else {}
        for key in ("error_rate", "p95"):
            value = stats.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                value = None
            figures[f"{group}_{key}"] = None if value is None else float(value)
    return figures


def verdict_badge(summary: Mapping[str, Any]) -> str:
    """The verdict and exit code, coloured as the run page's banner."""
    name = str(summary.get("verdict") or "unknown")
    code = summary.get("exit_code")
    meaning = EXIT_CODE_MEANINGS.get(code, "") if isinstance(code, int) else ""
    colour = VERDICT_COLOURS.get(name, "#b00020")
    return (
        f'<span class="verdict" style="background:{colour}" title="{escape(meaning)}">'
        f"{escape(name)}</span> (exit code {escape(str(code))})"
    )


def _percent(value: float | None) -> str:
    return "n/a" if value is None else escape(f"{value * 100:.2f}%")


def _ms(value: float | None) -> str:
    return "n/a" if value is None else escape(f"{value:g} ms")


def _row(run_dir: Path, summary: Mapping[str, Any]) -> str:
    label = summary.get("run_id") or run_dir.name
    if (run_dir / "report.html").exists():
        href = urllib.parse.quote(run_dir.name) + "/report.html"
        run = f'<a href="{escape(href)}">{escape(label)}</a>'
    else:
        run = f"{escape(label)} (no report.html)"
    found = [f for f in summary.get("findings") or [] if isinstance(f, Mapping)]
    severity = highest_severity(summary)
    findings = str(len(found)) + (
        f' (<span class="sev-{escape(severity)}">{escape(severity)}</span>)' if severity else ""
    )
    figures = key_figures(summary)
    return (
        f"<tr><td>{escape(summary.get('start') or '?')}</td><td>{run}</td>"
        f"<td>{escape(summary.get('title') or '(untitled)')}</td><td>{verdict_badge(summary)}</td>"
        f"<td>{findings}</td>"
        f"<td>{_percent(figures['experiment_error_rate'])}</td>"
        f"<td>{_percent(figures['control_error_rate'])}</td>"
        f"<td>{_ms(figures['experiment_p95'])}</td><td>{_ms(figures['control_p95'])}</td></tr>"
    )


def _newest_first(item: tuple[Path, Mapping[str, Any]]) -> tuple[float, str]:
    moment = epoch(item[1].get("start"))
    return (moment if moment is not None else float("-inf"), item[0].name)


def _render(runs: list[tuple[Path, Mapping[str, Any]]], notes: list[str], where: str) -> str:
    ordered = sorted(runs, key=_newest_first, reverse=True)
    rows = "".join(_row(run_dir, summary) for run_dir, summary in ordered)
    rows += "".join(f'<tr><td colspan="9">{escape(note)}</td></tr>' for note in notes)
    count = f"{len(runs)} run{'' if len(runs) == 1 else 's'}"
    table = (
        "<table><tr><th>started (UTC)</th><th>run</th><th>experiment</th><th>verdict</th>"
        "<th>findings</th><th>experiment errors</th><th>control errors</th>"
        f"<th>experiment p95</th><th>control p95</th></tr>{rows}</table>"
        if rows
        else "<p>No runs yet: each run writes its summary.json here.</p>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Chaos runs: {escape(where)}</title><style>{STYLE}</style></head><body>"
        f"<h1>Chaos runs in {escape(where)}</h1><p>{count}, newest first.</p>{table}"
        "</body></html>\n"
    )


def write_index(reports_dir: Path) -> Path:
    """Write ``reports_dir/index.html`` listing every run with a summary.json there."""
    reports_dir = Path(reports_dir)
    runs: list[tuple[Path, Mapping[str, Any]]] = []
    notes: list[str] = []
    for summary_file in sorted(reports_dir.glob("*/summary.json")):
        try:
            runs.append((summary_file.parent, read_summary(summary_file.parent)))
        except (OSError, ValueError) as exc:
            notes.append(f"{summary_file.parent.name}: summary.json could not be read ({exc})")
    target = reports_dir / "index.html"
    partial = reports_dir / ".index.html.tmp"
    # Written aside then renamed: a person or a CI job may be reading the index right now.
    partial.write_text(_render(runs, notes, reports_dir.name or str(reports_dir)), encoding="utf-8")
    os.replace(partial, target)
    return target
