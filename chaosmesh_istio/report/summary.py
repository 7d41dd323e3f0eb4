"""The machine-readable summary of a run: verdict, exit code, targets, figures, findings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chaosmesh_istio.report import facts
from chaosmesh_istio.report.findings import Finding
from chaosmesh_istio.report.stats import compare_groups
from chaosmesh_istio.verdicts import Verdict

__all__ = ["build_summary", "run_id"]


def run_id(journal: Mapping[str, Any]) -> str | None:
    """The run id the control recorded, else the one the injection returned."""
    rid = (journal.get("chaosmesh") or {}).get("run_id") or facts.injection(journal).get("run_id")
    return None if rid is None else str(rid)


def build_summary(
    journal: Mapping[str, Any],
    outcome: Verdict,
    found: Sequence[Finding],
    timeseries: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The content of summary.json (JSON values only)."""
    injected = facts.injection(journal)
    record = journal.get("chaosmesh") or {}
    experiment = journal.get("experiment") or {}
    return {
        "run_id": run_id(journal),
        "title": experiment.get("title"),
        "verdict": outcome.name,
        "exit_code": outcome.code,
        "reason": outcome.reason,
        "virtual_services": list(injected["virtual_services"]),
        "routes": list(injected["routes"]),
        "fault": injected.get("fault"),
        "scope": {
            "mode": injected.get("scope"),
            "header": injected.get("header"),
            "header_value": injected.get("header_value"),
        },
        "start": journal.get("start"),
        "end": journal.get("end"),
        "breaches": list(record.get("breaches") or []),
        "groups": facts.load_groups(journal),
        "during_fault": facts.window_groups(journal, timeseries),
        "comparison": compare_groups(journal, timeseries),
        "findings": [f.to_dict() for f in found],
    }
