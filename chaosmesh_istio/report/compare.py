"""compare.html: two runs side by side (verdicts, faults, figures with deltas, findings).

Answers "did the fix work?" between two game-days: `compare_runs` is pure and works on the
runs' summary.json contents; `write_comparison` reads them and writes the page, which like
every page here is self-contained and escapes every value.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaosmesh_istio.errors import InvalidArgument
from chaosmesh_istio.report.findings import SEVERITIES
from chaosmesh_istio.report.index import STYLE, read_summary, verdict_badge
from chaosmesh_istio.report.page import escape

__all__ = ["METRICS", "compare_runs", "write_comparison"]

#: Per-group figures compared, in display order; the second item says whether more is worse.
METRICS = (
    ("requests", False),
    ("failures", True),
    ("error_rate", True),
    ("rps", False),
    ("p50", True),
    ("p95", True),
    ("p99", True),
)
_SIDE_KEYS = (
    "run_id",
    "title",
    "verdict",
    "exit_code",
    "reason",
    "start",
    "end",
    "fault",
    "scope",
    "virtual_services",
    "routes",
)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _findings_by_key(summary: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    for finding in summary.get("findings") or []:
        if isinstance(finding, Mapping):
            found.setdefault(str(finding.get("id") or finding.get("title")), finding)
    return found


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _groups(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    groups_a, groups_b = _mapping(a.get("groups")), _mapping(b.get("groups"))
    out: dict[str, dict[str, Any]] = {}
    for group in [*groups_a, *(g for g in groups_b if g not in groups_a)]:
        stats_a, stats_b = _mapping(groups_a.get(group)), _mapping(groups_b.get(group))
        figures: dict[str, Any] = {}
        for metric, _ in METRICS:
            value_a, value_b = _number(stats_a.get(metric)), _number(stats_b.get(metric))
            if value_a is None and value_b is None:
                continue
            delta = None if value_a is None or value_b is None else value_b - value_a
            figures[metric] = {"a": value_a, "b": value_b, "delta": delta}
        out[str(group)] = figures
    return out


def compare_runs(summary_a: Mapping[str, Any], summary_b: Mapping[str, Any]) -> dict[str, Any]:
    """What changed from run A to run B (JSON values only; deltas are B minus A).

    Findings are matched by their id (else title): ``appeared`` only in B, ``disappeared``
    only in A, ``persisted`` in both with the severity of each.
    """
    title_a, title_b = summary_a.get("title"), summary_b.get("title")
    same = title_a == title_b
    findings_a, findings_b = _findings_by_key(summary_a), _findings_by_key(summary_b)

    def entry(key: str, finding: Mapping[str, Any]) -> dict[str, Any]:
        return {"key": key, "title": finding.get("title"), "severity": finding.get("severity")}

    return {
        "a": {k: summary_a.get(k) for k in _SIDE_KEYS},
        "b": {k: summary_b.get(k) for k in _SIDE_KEYS},
        "same_experiment": same,
        "warning": None
        if same
        else (
            f"these runs are of different experiments ({title_a!r} and {title_b!r}), so their"
            " differences may not come from a change in the system"
        ),
        "verdict_changed": (summary_a.get("verdict"), summary_a.get("exit_code"))
        != (summary_b.get("verdict"), summary_b.get("exit_code")),
        "groups": _groups(summary_a, summary_b),
        "findings": {
            "appeared": [entry(k, f) for k, f in findings_b.items() if k not in findings_a],
            "disappeared": [entry(k, f) for k, f in findings_a.items() if k not in findings_b],
            "persisted": [
                {
                    "key": k,
                    "title": f.get("title"),
                    "severity_a": findings_a[k].get("severity"),
                    "severity_b": f.get("severity"),
                }
                for k, f in findings_b.items()
                if k in findings_a
            ],
        },
    }


def _figure(metric: str, value: float | None, delta: bool = False) -> str:
    if value is None:
        return "n/a"
    sign = "+" if delta and value > 0 else ""
    if metric == "error_rate":
        text = f"{sign}{value * 100:.2f} pp" if delta else f"{value * 100:.2f}%"
    elif metric.startswith("p"):
        text = f"{sign}{value:g} ms"
    elif metric == "rps":
        text = f"{sign}{value:.1f}"
    else:
        text = f"{sign}{value:g}"
    return escape(text)


def _delta_cell(metric: str, delta: float | None) -> str:
    worse_when_more = dict(METRICS)[metric]
    css = ""
    if delta and worse_when_more:
        css = ' class="bad"' if delta > 0 else ' class="ok"'
    return f"<td{css}>{_figure(metric, delta, delta=True)}</td>"


def _severity(value: Any) -> str:
    if value in SEVERITIES:
        return f'<span class="sev-{escape(value)}">{escape(value)}</span>'
    return escape(value) if value is not None else "n/a"


def _link(run_dir: Path, out: Path, label: Any) -> str:
    report = run_dir / "report.html"
    if not report.exists():
        return escape(label)
    try:
        relative = Path(os.path.relpath(report.resolve(), out.parent.resolve())).as_posix()
    except ValueError:  # another drive on Windows: no relative path exists
        return escape(label)
    return f'<a href="{escape(urllib.parse.quote(relative))}">{escape(label)}</a>'


def _render(
    diff: Mapping[str, Any],
    summaries: tuple[Mapping[str, Any], Mapping[str, Any]],
    links: tuple[str, str],
) -> str:
    a, b = diff["a"], diff["b"]
    warning = f'<p class="bad">Warning: {escape(diff["warning"])}.</p>' if diff["warning"] else ""
    sides: list[tuple[str, str, str]] = [
        ("run", links[0], links[1]),
        ("experiment", escape(a["title"]), escape(b["title"])),
        ("started", escape(a["start"]), escape(b["start"])),
        ("verdict", verdict_badge(summaries[0]), verdict_badge(summaries[1])),
        ("reason", escape(a["reason"]), escape(b["reason"])),
        ("fault", escape(a["fault"]), escape(b["fault"])),
        ("scope", escape(a["scope"]), escape(b["scope"])),
        ("VirtualServices", escape(a["virtual_services"]), escape(b["virtual_services"])),
    ]
    runs = "".join(
        f"<tr><th>{escape(k)}</th><td>{va}</td><td>{vb}</td></tr>" for k, va, vb in sides
    )
    figure_rows = "".join(
        f"<tr><th>{escape(group)}</th><td>{escape(metric)}</td><td>{_figure(metric, f['a'])}</td>"
        f"<td>{_figure(metric, f['b'])}</td>{_delta_cell(metric, f['delta'])}</tr>"
        for group, figures in diff["groups"].items()
        for metric, f in figures.items()
    )
    figures = (
        "<table><tr><th>group</th><th>figure</th><th>A</th><th>B</th><th>change (B - A)</th>"
        f"</tr>{figure_rows}</table>"
        if figure_rows
        else "<p>Neither run recorded load figures.</p>"
    )
    moved = diff["findings"]
    finding_rows = "".join(
        [
            *(
                f"<tr><td>{escape(f['title'])}</td><td>appeared in B</td><td>n/a</td>"
                f"<td>{_severity(f['severity'])}</td></tr>"
                for f in moved["appeared"]
            ),
            *(
                f"<tr><td>{escape(f['title'])}</td><td>disappeared in B</td>"
                f"<td>{_severity(f['severity'])}</td><td>n/a</td></tr>"
                for f in moved["disappeared"]
            ),
            *(
                f"<tr><td>{escape(f['title'])}</td><td>persists</td>"
                f"<td>{_severity(f['severity_a'])}</td><td>{_severity(f['severity_b'])}</td></tr>"
                for f in moved["persisted"]
            ),
        ]
    )
    findings = (
        "<table><tr><th>finding</th><th>change</th><th>severity in A</th><th>severity in B</th>"
        f"</tr>{finding_rows}</table>"
        if finding_rows
        else "<p>Neither run has findings.</p>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Compare {escape(a['run_id'])} and {escape(b['run_id'])}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>Run A {escape(a['run_id'])} vs run B {escape(b['run_id'])}</h1>{warning}"
        f"<table><tr><th></th><th>A</th><th>B</th></tr>{runs}</table>"
        f"<h2>Control vs experiment figures</h2><p>Latencies in ms.</p>{figures}"
        f"<h2>Findings</h2>{findings}</body></html>\n"
    )


def _summary_of(run_dir: Path) -> dict[str, Any]:
    if not run_dir.is_dir():
        raise InvalidArgument(f"run directory {str(run_dir)!r} does not exist")
    try:
        return read_summary(run_dir)
    except (OSError, ValueError) as exc:
        raise InvalidArgument(
            f"run directory {str(run_dir)!r} has no readable summary.json ({exc}); write it "
            "with 'chaosmesh-istio report JOURNAL'"
        ) from exc


def write_comparison(dir_a: Path, dir_b: Path, out: Path) -> Path:
    """Write the comparison of two run directories to ``out`` (``out/compare.html`` when
    ``out`` is a directory); InvalidArgument, before writing anything, when a run is unusable."""
    dir_a, dir_b, out = Path(dir_a), Path(dir_b), Path(out)
    summaries = (_summary_of(dir_a), _summary_of(dir_b))
    target = out / "compare.html" if out.is_dir() else out
    diff = compare_runs(*summaries)
    links = (
        _link(dir_a, target, diff["a"]["run_id"] or dir_a.name),
        _link(dir_b, target, diff["b"]["run_id"] or dir_b.name),
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(_render(diff, summaries, links), encoding="utf-8")
    return target
