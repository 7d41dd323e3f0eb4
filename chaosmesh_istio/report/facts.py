"""What a report needs from a journal: the injection, the fault window, load figures, probes.

Pure: no I/O. Journals come from disk, so every lookup tolerates missing or odd-typed keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from chaosmesh_istio.durations import parse_duration_ns
from chaosmesh_istio.load_series import stats_of, totals_from_series

__all__ = [
    "INJECTORS",
    "activity_func",
    "activity_name",
    "all_activities",
    "delay_ms",
    "epoch",
    "exception_text",
    "fault_window",
    "hypothesis_rows",
    "injection",
    "load_groups",
    "percentage",
    "window_groups",
    "window_rows",
]

INJECTORS = frozenset({"inject_fault", "inject_delay", "inject_abort"})
_GROUPS = ("control", "experiment", "all")


def activity_name(run: Mapping[str, Any]) -> str:
    return str((run.get("activity") or {}).get("name", "?"))


def activity_func(run: Mapping[str, Any]) -> str:
    provider = (run.get("activity") or {}).get("provider") or {}
    return str(provider.get("func", ""))


def exception_text(run: Mapping[str, Any]) -> str:
    lines = run.get("exception") or []
    return "".join(str(x) for x in lines) if isinstance(lines, list) else str(lines)


def all_activities(journal: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every activity run: hypothesis probes, the method and the rollbacks."""
    states = journal.get("steady_states") or {}
    hypotheses = [states.get("before"), *(states.get("during") or []), states.get("after")]
    probes = [p for h in hypotheses if isinstance(h, Mapping) for p in h.get("probes") or []]
    return [*probes, *(journal.get("run") or []), *(journal.get("rollbacks") or [])]


def injection(journal: Mapping[str, Any]) -> dict[str, Any]:
    """The merged output of the run's successful injections (empty when nothing injected)."""
    merged: dict[str, Any] = {"virtual_services": [], "routes": [], "faulted": [], "diff": ""}
    for run in journal.get("run") or []:
        output = run.get("output")
        if activity_func(run) not in INJECTORS or not isinstance(output, Mapping):
            continue
        for key in ("run_id", "scope", "header", "header_value", "fault"):
            if output.get(key) is not None:
                merged.setdefault(key, output[key])
        for key in ("virtual_services", "routes", "faulted"):
            merged[key].extend(output.get(key) or [])
        merged["diff"] += str(output.get("diff") or "")
    return merged


def epoch(value: Any) -> float | None:
    """Seconds since the epoch of a journal time (ISO text, naive means UTC) or a number."""
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def fault_window(journal: Mapping[str, Any]) -> tuple[float, float | None] | None:
    """From the end of the first injection to the start of the first removal after it."""
    runs = [*(journal.get("run") or []), *(journal.get("rollbacks") or [])]
    starts = [
        epoch(r.get("end")) or epoch(r.get("start"))
        for r in runs
        if activity_func(r) in INJECTORS and r.get("status") == "succeeded"
    ]
    begin = min((s for s in starts if s is not None), default=None)
    if begin is None:
        return None
    removals = [epoch(r.get("start")) for r in runs if activity_func(r) == "remove_faults"]
    end = min((s for s in removals if s is not None and s >= begin), default=None)
    return begin, end


def load_groups(journal: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per-group load figures (control, experiment, all) from the control's load record."""
    load = (journal.get("chaosmesh") or {}).get("load") or {}
    summary = load.get("summary")
    groups = (summary if isinstance(summary, Mapping) else load).get("groups") or {}
    return {g: dict(groups[g]) for g in _GROUPS if isinstance(groups.get(g), Mapping)}


def window_rows(
    journal: Mapping[str, Any], series: Sequence[Mapping[str, Any]] | None
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]] | None:
    """The per-second lines before the fault and during it; None without a fault window.

    Lines are stamped with the second they start: only whole seconds inside the window count
    as during (a line overlapping the fault's first second belongs mostly to before it).
    """
    window = fault_window(journal)
    if window is None:
        return None
    begin, end = window
    rows = [r for r in series or [] if isinstance(r.get("t"), int | float)]
    before = [r for r in rows if r["t"] + 1 <= begin]
    during = [r for r in rows if r["t"] >= math.ceil(begin) and (end is None or r["t"] + 1 <= end)]
    return before, during


def window_groups(
    journal: Mapping[str, Any], series: Sequence[Mapping[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """Per-group load figures over the fault window only, from the per-second series.

    Whole-run figures mix the baseline into what the fault did; findings judge the window.
    Empty without a series or a fault window.
    """
    windows = window_rows(journal, series)
    if not series or windows is None:
        return {}
    totals = totals_from_series(windows[1])
    return {g: stats_of(t) for g, t in totals.items() if t.requests}


def _fault_part(fault: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any]:
    part = (fault or {}).get(kind)
    return part if isinstance(part, Mapping) else {}


def delay_ms(fault: Mapping[str, Any] | None) -> float | None:
    """The injected fixed delay in milliseconds, or None without a (valid) delay."""
    fixed = _fault_part(fault, "delay").get("fixedDelay")
    try:
        return parse_duration_ns(str(fixed)) / 1e6 if fixed else None
    except ValueError:
        return None


def percentage(fault: Mapping[str, Any] | None, kind: str) -> float | None:
    """The percentage (0-100) of requests a delay or abort hits, None without that fault."""
    part = _fault_part(fault, kind)
    if not part:
        return None
    value = (part.get("percentage") or {}).get("value", 100.0)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def hypothesis_rows(journal: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per hypothesis probe: tolerance, outputs before/during/after, met or not."""
    states = journal.get("steady_states") or {}
    rows: dict[str, dict[str, Any]] = {}
    phases = [("before", states.get("before")), ("after", states.get("after"))]
    phases += [("during", s) for s in states.get("during") or []]
    for phase, state in phases:
        if not isinstance(state, Mapping):
            continue
        for probe in state.get("probes") or []:
            name = activity_name(probe)
            row = rows.setdefault(
                name,
                {
                    "probe": name,
                    "tolerance": (probe.get("activity") or {}).get("tolerance"),
                    "before": None,
                    "during": [],
                    "after": None,
                    "met": {},
                },
            )
            met = probe.get("tolerance_met")
            if probe.get("status") == "failed":
                met = False
            if phase == "during":
                row["during"].append(probe.get("output"))
                row["met"]["during"] = bool(row["met"].get("during", True) and met is not False)
            else:
                row[phase] = probe.get("output")
                row["met"][phase] = met
                row[f"{phase}_probe"] = probe
    return list(rows.values())
