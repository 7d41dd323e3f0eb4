"""report.html: one self-contained page (inline CSS and SVG, no script, no external URL).

Every value that comes from the journal or the load goes through `escape` (HTML-escaped with
quotes): VirtualService names, header values and probe outputs are user-controlled.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from chaosmesh_istio.report import facts
from chaosmesh_istio.report.environment import environment_of, render_environment_html
from chaosmesh_istio.report.findings import Finding
from chaosmesh_istio.report.stats import render_comparison_html
from chaosmesh_istio.verdicts import Verdict

__all__ = ["CSS", "EXIT_CODE_MEANINGS", "VERDICT_COLOURS", "escape", "render_html"]

EXIT_CODE_MEANINGS = {
    0: "passed: the steady state held before, during and after the fault",
    1: "deviated: the steady state did not hold (before, during or after)",
    2: "skipped: the baseline was not met, nothing was injected",
    3: "halted: a safeguard breached; the faults were removed and the run halted",
    4: "inconclusive: the fault never fired or data was missing; repeat the run",
    5: "errored: an action or probe failed",
    6: "rollback not verified: a fault may be left behind; act now",
    130: "interrupted by SIGINT; the numbers are partial",
    143: "interrupted by SIGTERM; the numbers are partial",
}
VERDICT_COLOURS = {
    "passed": "#1b7f3b",
    "deviated": "#b35c00",
    "skipped": "#555",
    "inconclusive": "#555",
}
_GROUP_COLOURS = {"control": "#1f5fbf", "experiment": "#c0392b"}
_DASH = {"p50": "", "p95": "6 3", "p99": "2 3"}
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:960px;color:#222}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
.banner{color:#fff;padding:1rem 1.2rem;border-radius:6px}
.banner b{font-size:1.3rem}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:.3rem .5rem;
text-align:left;vertical-align:top}th{background:#f4f4f4}
pre{background:#f7f7f7;padding:.7rem;overflow:auto;font-size:12px}
.sev-high{color:#b00020;font-weight:bold}.sev-medium{color:#b35c00;font-weight:bold}
.ok{color:#1b7f3b}.bad{color:#b00020;font-weight:bold}
svg{background:#fff;border:1px solid #eee;margin:.5rem 0}
"""


def escape(value: Any) -> str:
    """HTML text of a value: strings as they are, others as JSON; quotes escaped too."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return html.escape(text, quote=True)


def _num(value: Any, fmt: str = "{:g}") -> str:
    return escape(fmt.format(value)) if isinstance(value, int | float) else "n/a"


def render_html(
    journal: Mapping[str, Any],
    outcome: Verdict,
    found: Sequence[Finding],
    summary: Mapping[str, Any],
    timeseries: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """The report page of a run."""
    title = (journal.get("experiment") or {}).get("title") or "chaos experiment"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # Defence in depth: even a value that escaped escaping could not run or fetch.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">",
        f"<title>{escape(title)}: {escape(outcome.name)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        _banner(outcome),
        _what(journal, summary),
        _timeline(journal),
        _charts(journal, timeseries or []),
        _figures(summary),
        _hypothesis(journal),
        render_comparison_html(summary.get("comparison") or {}),
        _findings(found),
        render_environment_html(environment_of(journal)),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _banner(outcome: Verdict) -> str:
    colour = VERDICT_COLOURS.get(outcome.name, "#b00020")
    meaning = EXIT_CODE_MEANINGS.get(outcome.code, "")
    return (
        f'<div class="banner" style="background:{colour}"><b>{escape(outcome.name)}</b>'
        f" (exit code {escape(str(outcome.code))}: {escape(meaning)})"
        f"<br>{escape(outcome.reason)}</div>"
    )


def _what(journal: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    injected = facts.injection(journal)
    scope = summary.get("scope") or {}
    rows = [
        ("run id", summary.get("run_id")),
        ("VirtualServices", ", ".join(str(v) for v in summary.get("virtual_services") or [])),
        ("routes", ", ".join(str(r) for r in summary.get("routes") or [])),
        ("fault", summary.get("fault")),
        ("scope", scope.get("mode")),
        ("header", f"{scope.get('header')}: {scope.get('header_value')}"),
        ("started", journal.get("start")),
        ("ended", journal.get("end")),
    ]
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    diff = injected.get("diff") or "(nothing was injected)"
    return (
        f"<h2>What was done</h2><table>{body}</table>"
        f"<h3>VirtualService diff</h3><pre>{escape(diff)}</pre>"
    )


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return datetime.fromtimestamp(seconds, UTC).strftime("%H:%M:%S.%f")[:-3]


def _timeline(journal: Mapping[str, Any]) -> str:
    states = journal.get("steady_states") or {}
    events: list[tuple[float, str, str, str]] = []

    def add(runs: Sequence[Mapping[str, Any]], phase: str) -> None:
        for run in runs:
            start = facts.epoch(run.get("start"))
            if start is not None:
                events.append((start, phase, facts.activity_name(run), str(run.get("status"))))

    for phase, label in (("before", "baseline checked"), ("after", "steady state rechecked")):
        state = states.get(phase)
        if isinstance(state, Mapping):
            add(state.get("probes") or [], label)
    add(journal.get("run") or [], "method")
    add(journal.get("rollbacks") or [], "rollback")
    for breach in (journal.get("chaosmesh") or {}).get("breaches") or []:
        moment = facts.epoch(breach.get("time"))
        if moment is not None:
            events.append((moment, "safeguard breach", str(breach.get("probe")), "breached"))
    for run in [*(journal.get("run") or []), *(journal.get("rollbacks") or [])]:
        output = run.get("output")
        if not isinstance(output, Mapping):
            continue
        if facts.activity_func(run) in facts.INJECTORS:
            events.extend(_injection_events(facts.activity_name(run), output))
        elif facts.activity_func(run) == "remove_faults":
            events.extend(_gone_event(facts.activity_name(run), output.get("gone")))
    rollback = (journal.get("chaosmesh") or {}).get("rollback")
    if isinstance(rollback, Mapping):
        removed = facts.epoch(rollback.get("removed_at")) or facts.epoch(journal.get("end"))
        verified = "verified by reading back" if rollback.get("verified") else "NOT verified"
        what = "faults removed" if rollback.get("removed") else "nothing left to remove"
        if removed is not None:
            events.append((removed, "rolled back", f"the control: {what}", verified))
        events.extend(_gone_event("the control", rollback.get("gone")))
    events.sort(key=lambda ev: ev[0])
    start = facts.epoch(journal.get("start")) or (events[0][0] if events else 0.0)
    rows = "".join(
        f"<tr><td>{escape(_clock(t))}</td><td>+{t - start:.1f} s</td><td>{escape(phase)}</td>"
        f"<td>{escape(name)}</td><td>{escape(status)}</td></tr>"
        for t, phase, name, status in events
    )
    return (
        "<h2>Timeline</h2><table><tr><th>time (UTC)</th><th>offset</th><th>phase</th>"
        f"<th>activity</th><th>status</th></tr>{rows}</table>"
    )


def _injection_events(name: str, output: Mapping[str, Any]) -> list[tuple[float, str, str, str]]:
    events = []
    written = facts.epoch(output.get("written_at"))
    if written is not None:
        events.append((written, "fault injected", name, ", ".join(output.get("routes") or [])))
    live = output.get("live")
    if isinstance(live, Mapping):
        moment = facts.epoch(live.get("at"))
        if moment is not None and live.get("checked"):
            detail = f"on {_proxies(live)} after {live.get('seconds')} s"
            events.append((moment, "fault confirmed live", name, detail))
        elif moment is not None:
            detail = "not checked: set chaosmesh_proxy_admin_urls to confirm"
            events.append((moment, "fault live?", name, detail))
    return events


def _proxies(check: Mapping[str, Any]) -> str:
    count = check.get("proxies")
    return f"{count} proxy" if count == 1 else f"{count} proxies"


def _gone_event(name: str, gone: Any) -> list[tuple[float, str, str, str]]:
    if not isinstance(gone, Mapping) or not gone.get("checked"):
        return []
    moment = facts.epoch(gone.get("at"))
    if moment is None:
        return []
    return [(moment, "removal verified", name, f"gone from the data plane on {_proxies(gone)}")]


def _per_second(series: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, float]]]:
    """Per group, one point per second: rps, error rate (%) and latency quantiles."""
    merged: dict[tuple[str, float], dict[str, float]] = {}
    for line in series:
        group, t = str(line.get("group")), line.get("t")
        if group not in _GROUP_COLOURS or not isinstance(t, int | float):
            continue
        point = merged.setdefault((group, float(t)), {"t": float(t), "rps": 0.0, "fail": 0.0})
        point["rps"] += float(line.get("requests") or 0)
        point["fail"] += float(line.get("failures") or 0)
        for q in _DASH:
            if isinstance(line.get(q), int | float):
                point[q] = max(point.get(q, 0.0), float(line[q]))
    out: dict[str, list[dict[str, float]]] = {g: [] for g in _GROUP_COLOURS}
    for (group, _), point in sorted(merged.items(), key=lambda kv: kv[0][1]):
        if point["rps"]:
            point["err"] = 100.0 * point["fail"] / point["rps"]
        out[group].append(point)
    return out


def _charts(journal: Mapping[str, Any], series: Sequence[Mapping[str, Any]]) -> str:
    points = _per_second(series)
    if not any(points.values()):
        return "<h2>Load over time</h2><p>No load time series was recorded.</p>"
    times = [p["t"] for pts in points.values() for p in pts]
    t0 = min(times)
    t1 = max(*times, t0 + 1)
    window = facts.fault_window(journal)
    charts = [
        _chart("Request rate (req/s)", points, t0, t1, window, [("rps", "")]),
        _chart("Error rate (%)", points, t0, t1, window, [("err", "")]),
        _chart("Latency (ms): p50 solid, p95 dashed, p99 dotted", points, t0, t1, window,
               list(_DASH.items())),
    ]  # fmt: skip
    legend = " ".join(
        f'<span style="color:{c}">&#9632; {g}</span>' for g, c in _GROUP_COLOURS.items()
    )
    return (
        f"<h2>Load over time</h2><p>{legend} "
        '<span style="color:#999">&#9632; fault window</span></p>' + "".join(charts)
    )


def _chart(
    title: str,
    points: Mapping[str, Sequence[Mapping[str, float]]],
    t0: float,
    t1: float,
    window: tuple[float, float | None] | None,
    keys: Sequence[tuple[str, str]],
) -> str:
    width, height, left, right, top, bottom = 720, 200, 60, 10, 20, 25
    values = [p[k] for pts in points.values() for p in pts for k, _ in keys if k in p]
    # An all-zero chart (no errors) still gets a readable axis: 0 to 1.
    top_value = (max(values, default=0.0) or 1.0) * 1.1

    def x(t: float) -> float:
        return left + (t - t0) / (t1 - t0) * (width - left - right)

    def y(v: float) -> float:
        return top + (1 - v / top_value) * (height - top - bottom)

    svg = [
        # Inline SVG in HTML needs no xmlns, which keeps the page free of any URL.
        f'<svg width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
        f'<text x="{left}" y="14" font-size="12">{escape(title)}</text>'
    ]
    if window is not None:
        start, end = max(window[0], t0), min(window[1] if window[1] is not None else t1, t1)
        if end > start:
            svg.append(
                f'<rect x="{x(start):.1f}" y="{top}" width="{x(end) - x(start):.1f}"'
                f' height="{height - top - bottom}" fill="#999" fill-opacity="0.2"/>'
            )
    svg.append(
        f'<line x1="{left}" y1="{y(0):.1f}" x2="{width - right}" y2="{y(0):.1f}" stroke="#999"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{y(0):.1f}" stroke="#999"/>'
        f'<text x="{left - 4}" y="{top + 10}" font-size="10" text-anchor="end">'
        f"{top_value / 1.1:,.4g}</text>"
        f'<text x="{left - 4}" y="{y(0):.1f}" font-size="10" text-anchor="end">0</text>'
        f'<text x="{left}" y="{height - 8}" font-size="10">{escape(_clock(t0))}</text>'
        f'<text x="{width - right}" y="{height - 8}" font-size="10" text-anchor="end">'
        f"+{t1 - t0:.0f} s</text>"
    )
    for group, colour in _GROUP_COLOURS.items():
        for key, dash in keys:
            path = _polyline([(x(p["t"]), y(p[key])) for p in points[group] if key in p])
            if path:
                svg.append(
                    f'<polyline points="{path}" fill="none" stroke="{colour}"'
                    f' stroke-width="1.5" stroke-dasharray="{dash}"/>'
                )
    svg.append("</svg>")
    return "".join(svg)


def _polyline(coords: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{px:.1f},{py:.1f}" for px, py in coords)


def _figures(summary: Mapping[str, Any]) -> str:
    groups = summary.get("groups") or {}
    if not groups:
        return ""
    columns: list[tuple[str, Callable[[Any], str]]] = [
        ("requests", _num),
        ("failures", _num),
        ("error_rate", lambda v: _num(v * 100 if isinstance(v, int | float) else v, "{:.2f}%")),
        ("rps", lambda v: _num(v, "{:.1f}")),
        ("p50", _num),
        ("p95", _num),
        ("p99", _num),
    ]
    head = "".join(f"<th>{name}</th>" for name, _ in columns)
    rows = "".join(
        f"<tr><th>{escape(group)}</th>"
        + "".join(f"<td>{fmt(stats.get(name))}</td>" for name, fmt in columns)
        + "</tr>"
        for group, stats in groups.items()
    )
    return (
        "<h2>Control vs experiment</h2><p>Latencies in ms, over the whole run.</p>"
        f"<table><tr><th>group</th>{head}</tr>{rows}</table>"
    )


def _met(value: Any) -> str:
    if value is None:
        return "n/a"
    return '<span class="ok">met</span>' if value else '<span class="bad">not met</span>'


def _hypothesis(journal: Mapping[str, Any]) -> str:
    rows = facts.hypothesis_rows(journal)
    if not rows:
        return "<h2>Steady-state hypothesis</h2><p>No hypothesis probes ran.</p>"
    body = "".join(
        f"<tr><td>{escape(r['probe'])}</td><td><code>{escape(r['tolerance'])}</code></td>"
        f"<td>{escape(r['before'])}</td><td>{escape(r['during']) if r['during'] else 'n/a'}</td>"
        f"<td>{escape(r['after'])}</td>"
        f"<td>before: {_met(r['met'].get('before'))}; after: {_met(r['met'].get('after'))}"
        + (f"; during: {_met(r['met']['during'])}" if "during" in r["met"] else "")
        + "</td></tr>"
        for r in rows
    )
    return (
        "<h2>Steady-state hypothesis</h2><table><tr><th>probe</th><th>tolerance</th>"
        f"<th>before</th><th>during</th><th>after</th><th>met</th></tr>{body}</table>"
    )


def _findings(found: Sequence[Finding]) -> str:
    if not found:
        return "<h2>Findings</h2><p>No findings: nothing in this run calls for a change.</p>"
    body = "".join(
        f'<tr><td class="sev-{escape(f.severity)}">{escape(f.severity)}</td>'
        f"<td><b>{escape(f.title)}</b></td><td>{escape(f.evidence)}</td><td>{escape(f.recommendation)}</td></tr>"
        for f in found
    )
    return (
        "<h2>Findings</h2><table><tr><th>severity</th><th>finding</th><th>evidence</th>"
        f"<th>recommended fix</th></tr>{body}</table>"
    )
