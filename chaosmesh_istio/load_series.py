"""Per-group load numbers from Locust's output (pure, no I/O but reading files).

Two sources, both made of Locust's rounded response-time histograms:

- the per-second series the bundled locustfile writes, one JSON line per second, group
  and reporting process: ``{"t", "group", "requests", "failures", "hist", "source"}``
  (lines with the same ``t`` and ``group`` add up);
- Locust's ``--json-file`` output at the end of a run, whose entries are named
  ``[<group>] <path>``.

Percentiles follow Locust's own method, so they match its reports.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "GROUPS",
    "Totals",
    "group_of",
    "merge_series",
    "percentile",
    "read_json_lines",
    "stats_of",
    "totals_from_locust_json",
    "totals_from_series",
]

GROUPS = ("control", "experiment", "all")
_QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


@dataclass
class Totals:
    """Counts of one group: requests, failures, latency histogram (ms) and time span (s)."""

    requests: int = 0
    failures: int = 0
    hist: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0

    def add(self, requests: int, failures: int, hist: Mapping[Any, int]) -> None:
        self.requests += requests
        self.failures += failures
        for ms, count in hist.items():
            self.hist[int(float(ms))] += int(count)


def group_of(name: str) -> str:
    """The group a request name belongs to: ``[control] /x`` is control; others are 'other'."""
    for group in GROUPS[:2]:
        if name.startswith(f"[{group}] "):
            return group
    return "other"


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a file; a line still being written (no newline yet) is skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    complete = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


def percentile(hist: Mapping[int, int], quantile: float) -> float | None:
    """The response time under which ``quantile`` of the requests fell (Locust's method)."""
    total = sum(hist.values())
    if total == 0:
        return None
    wanted = int(total * quantile)
    processed = 0
    for ms in sorted(hist, reverse=True):
        processed += hist[ms]
        if total - processed <= wanted:
            return float(ms)
    return 0.0


def merge_series(lines: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One line per second and group (processes summed), sorted, with p50/p95/p99."""
    merged: dict[tuple[int, str], Totals] = {}
    for line in lines:
        key = (int(line["t"]), str(line["group"]))
        merged.setdefault(key, Totals()).add(
            int(line["requests"]), int(line["failures"]), line.get("hist") or {}
        )
    out = []
    for (second, group), totals in sorted(merged.items()):
        row: dict[str, Any] = {
            "t": second,
            "group": group,
            "requests": totals.requests,
            "failures": totals.failures,
        }
        row.update({k: percentile(totals.hist, q) for k, q in _QUANTILES.items()})
        row["hist"] = {str(ms): n for ms, n in sorted(totals.hist.items())}
        out.append(row)
    return out


def totals_from_series(lines: Iterable[Mapping[str, Any]]) -> dict[str, Totals]:
    """Totals per group (and 'all') of per-second lines; span = seconds seen."""
    totals = {group: Totals() for group in GROUPS}
    seconds: dict[str, set[int]] = {group: set() for group in GROUPS}
    for line in lines:
        group = str(line["group"])
        for name in {group, "all"} & set(GROUPS):
            totals[name].add(int(line["requests"]), int(line["failures"]), line.get("hist") or {})
            seconds[name].add(int(line["t"]))
    for name, seen in seconds.items():
        totals[name].seconds = float(max(seen) - min(seen) + 1) if seen else 0.0
    return totals


def totals_from_locust_json(entries: Iterable[Mapping[str, Any]]) -> dict[str, Totals]:
    """Totals per group (and 'all') of Locust's ``--json-file`` entries."""
    totals = {group: Totals() for group in GROUPS}
    spans: dict[str, list[float]] = {group: [] for group in GROUPS}
    for entry in entries:
        group = group_of(str(entry.get("name", "")))
        for name in {group, "all"} & set(GROUPS):
            totals[name].add(
                int(entry.get("num_requests", 0)),
                int(entry.get("num_failures", 0)),
                entry.get("response_times") or {},
            )
            spans[name] += [
                float(entry.get("start_time") or 0.0),
                float(entry.get("last_request_timestamp") or 0.0),
            ]
    for name, times in spans.items():
        real = [t for t in times if t > 0]
        totals[name].seconds = max(real) - min(real) if real else 0.0
    return totals


def stats_of(totals: Totals) -> dict[str, Any]:
    """The published numbers of one group; rates and latencies are None without requests."""
    requests = totals.requests
    error_rate = totals.failures / requests if requests else None
    stats: dict[str, Any] = {
        "requests": requests,
        "failures": totals.failures,
        "error_rate": error_rate,
        "success_rate": None if error_rate is None else 1.0 - error_rate,
    }
    stats.update({k: percentile(totals.hist, q) for k, q in _QUANTILES.items()})
    stats["rps"] = requests / totals.seconds if requests and totals.seconds > 0 else None
    return stats
