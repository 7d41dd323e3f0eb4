"""Report: render time and size of a synthetic one-hour run at 1 s resolution.

Targets: at most 3 s to write report.html, junit.xml and summary.json, and report.html at
most 2 MB. The run is what a game-day hour produces: two groups, one line per second and
group with a latency histogram, a 20-minute fault window with a delay on the experiment
group, a hypothesis, and a safeguard breach.
"""

from __future__ import annotations

import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import Result
from chaosmesh_istio.report import write_report

__all__ = ["journal_and_series", "run"]

HOUR = 3600
T0 = 1_800_000_000.0
FAULT = (1200, 2400)


def _iso(offset: float) -> str:
    return datetime.fromtimestamp(T0 + offset, UTC).isoformat()


def _activity(func: str, name: str, start: float, end: float, output: Any) -> dict[str, Any]:
    return {
        "activity": {
            "type": "action",
            "name": name,
            "provider": {"type": "python", "module": "chaosmesh_istio.actions", "func": func},
        },
        "status": "succeeded",
        "start": _iso(start),
        "end": _iso(end),
        "duration": end - start,
        "output": output,
    }


def journal_and_series(seed: int = 7) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A journal and its per-second load series for an hour with a 20-minute fault."""
    rng = random.Random(seed)
    series: list[dict[str, Any]] = []
    for second in range(HOUR):
        faulted = FAULT[0] <= second < FAULT[1]
        for group in ("control", "experiment"):
            requests = rng.randint(40, 60)
            slow = group == "experiment" and faulted
            hist: dict[str, int] = {}
            for _ in range(requests):
                ms = 1500 + rng.randint(0, 40) if slow else rng.randint(5, 60)
                hist[str(ms)] = hist.get(str(ms), 0) + 1
            failures = rng.randint(0, 2) if slow else 0
            series.append(
                {"t": T0 + second, "group": group, "requests": requests, "failures": failures,
                 "hist": hist, "source": "master"}
            )  # fmt: skip
    inject = _activity(
        "inject_delay", "delay-reviews", FAULT[0] - 0.2, FAULT[0],
        {"run_id": "bench-hour", "scope": "header", "header": "x-chaos-run",
         "header_value": "bench-hour", "fault": {"delay": {"fixedDelay": "1500ms",
         "percentage": {"value": 100.0}}}, "virtual_services": ["default/reviews"],
         "routes": ["chaos-bench-hour-0"], "faulted": [],
         "diff": "--- default/reviews (before)\n+++ default/reviews (after)\n+- name: chaos-x\n",
         "written_at": _iso(FAULT[0] - 0.05),
         "live": {"checked": True, "live": True, "at": _iso(FAULT[0]), "seconds": 0.02,
                  "method": "config_dump", "proxies": 1}},
    )  # fmt: skip
    remove = _activity(
        "remove_faults", "remove", FAULT[1], FAULT[1] + 0.1,
        {"removed": [{"virtual_service": "default/reviews", "routes": ["chaos-bench-hour-0"]}],
         "verified": True},
    )  # fmt: skip
    probe = {
        "activity": {"type": "probe", "name": "control-success-rate",
                     "tolerance": {"type": "range", "range": [0.99, 1.0]},
                     "provider": {"type": "python", "module": "chaosmesh_istio.probes",
                                  "func": "load_success_rate"}},
        "status": "succeeded", "start": _iso(1), "end": _iso(1.1), "output": 1.0,
        "tolerance_met": True,
    }  # fmt: skip
    journal = {
        "chaoslib-version": "1.44.0",
        "platform": "bench",
        "experiment": {"title": "one hour at 1 s resolution", "description": "benchmark"},
        "start": _iso(0),
        "end": _iso(HOUR),
        "duration": float(HOUR),
        "status": "completed",
        "deviated": False,
        "steady_states": {
            "before": {"steady_state_met": True, "probes": [probe]},
            "after": {"steady_state_met": True, "probes": [probe]},
            "during": [],
        },
        "run": [inject, remove],
        "rollbacks": [],
        "chaosmesh": {
            "run_id": "bench-hour",
            "breaches": [],
            "rollback": {"verified": True, "removed": [], "errors": []},
            "load": {"stopped": True, "summary": {"groups": {}}},
        },
    }
    return journal, series


def run(mesh: object = None) -> list[Result]:
    """Needs no mesh; takes one like the others."""
    journal, series = journal_and_series()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        paths = write_report(journal, Path(tmp), series)
        took = time.perf_counter() - started
        size = paths["html"].stat().st_size
    lines = len(series)
    return [
        Result("report: render 1 h at 1 s", f"{took:.2f} s", "<= 3 s", took <= 3.0,
               f"{lines} series lines, 3 files"),
        Result("report: report.html size", f"{size / 1e6:.2f} MB", "<= 2 MB", size <= 2e6,
               "self-contained, inline SVG"),
    ]  # fmt: skip
