"""One run of an experiment, as ``chaosmesh-istio run`` does it (and the demo through it).

The chaosmesh control is added when the experiment does not declare it, the rollback
strategy is ``always``, progress is printed while it runs, and the result is the verdict
(whose code is the exit code), with the journal written and the control's report path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaoslib.control import load_global_controls
from chaoslib.exceptions import ChaosException
from chaoslib.experiment import run_experiment
from chaoslib.settings import load_settings

from chaosmesh_istio.errors import InvalidArgument
from chaosmesh_istio.experiment import CONTROL_MODULE, Experiment
from chaosmesh_istio.progress import Progress
from chaosmesh_istio.verdicts import Verdict, verdict

__all__ = ["RunResult", "run"]

Out = Callable[[str], None]


@dataclass(frozen=True)
class RunResult:
    """What a run ended with: its verdict, run id, journal and the control's report record."""

    verdict: Verdict
    run_id: str
    journal_path: Path
    report: dict[str, Any]


def _settings(path: str | None, experiment: Experiment) -> dict[str, Any]:
    loaded: dict[str, Any] = {}
    if path is not None:
        if not Path(path).is_file():
            raise InvalidArgument(f"settings file {path!r} does not exist")
        try:
            loaded = dict(load_settings(path) or {})
        except (ChaosException, OSError, ValueError) as exc:
            raise InvalidArgument(f"settings file {path!r} cannot be read: {exc}") from None
    if not experiment.controls():
        loaded.setdefault("controls", {})["chaosmesh"] = {
            "provider": {"type": "python", "module": CONTROL_MODULE}
        }
    loaded.setdefault("runtime", {}).setdefault("rollbacks", {})["strategy"] = "always"
    return loaded


def run(
    experiment: Experiment,
    journal_path: Path,
    settings_path: str | None = None,
    out: Out = print,
    every: float = 5.0,
) -> RunResult:
    """Run a loaded experiment; InvalidArgument when it is not a valid experiment."""
    experiment.ensure_valid()
    settings = _settings(settings_path, experiment)
    load_global_controls(settings)
    out(f"running {experiment.title!r}")
    started = time.monotonic()
    progress = Progress(out, every)
    try:
        journal = run_experiment(
            experiment.document,
            settings=settings,
            experiment_vars=(dict(experiment.config_vars), dict(experiment.secret_vars)),
            event_handlers=[progress],
        )
    finally:
        progress.stop()
    result = verdict(journal)
    record = journal.setdefault("chaosmesh", {})
    record["verdict"] = {"name": result.name, "code": result.code, "reason": result.reason}
    journal_path.write_text(json.dumps(journal, indent=2, default=str))
    rollback = record.get("rollback") or {}
    removed = sum(len(r.get("routes", [])) for r in rollback.get("removed", []))
    out(
        f"run {record.get('run_id', '?')} ended {journal.get('status')} in "
        f"{time.monotonic() - started:.1f} s; control removed {removed} chaos route(s), "
        f"verified: {rollback.get('verified')}; journal: {journal_path}"
    )
    out(result.line())
    return RunResult(
        verdict=result,
        run_id=str(record.get("run_id", "?")),
        journal_path=journal_path,
        report=dict(record.get("report") or {}),
    )
