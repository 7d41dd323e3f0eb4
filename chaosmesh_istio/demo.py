"""The demo: the local mesh, three experiments of the catalog, their verdicts, the reports.

Starts the local mesh, runs each experiment with ``chaosmesh-istio run`` (a subprocess:
exactly the command a person would type, with its progress shown), with short durations
through the experiments' ``CHAOSMESH_*`` variables, then stops the mesh whatever happened
and prints a table of verdicts, exit codes and report paths. Reports go to ``reports/``
of the repository when run from it, else of the current directory.

The demo succeeds when every experiment ends with the verdict the catalog predicts for
the sample application (``experiments/README.md``); a finding such as catalog's missing
timeout is an expected deviation, not a failure of the demo.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from chaosmesh_istio.localmesh.manager import MeshInfo, mesh_down, mesh_up
from chaosmesh_istio.verdicts import EXIT_CODES

__all__ = ["DEMO", "DemoExperiment", "DemoResult", "reports_dir", "run_demo"]

Out = Callable[[str], None]
_VERDICTS = {code: name for name, code in EXIT_CODES.items()}


@dataclass(frozen=True)
class DemoExperiment:
    """One experiment of the demo, the exit code the catalog predicts, what it shows."""

    file: str
    expected: int
    shows: str


@dataclass(frozen=True)
class DemoResult:
    """How one experiment of the demo ended."""

    experiment: DemoExperiment
    run_id: str
    code: int
    report: Path | None

    @property
    def as_expected(self) -> bool:
        return self.code == self.experiment.expected


# The verdicts experiments/README.md predicts for the sample application.
DEMO = (
    DemoExperiment(
        "service-down.json", 0, "catalog down for tagged users: frontend's fallback holds"
    ),
    DemoExperiment(
        "slow-network.json", 0, "catalog 5 s slow for tagged users: frontend's 2 s timeout holds"
    ),
    DemoExperiment(
        "cascading-delays.json",
        1,
        "reviews 5 s slow for 30% of tagged calls: catalog has no timeout, the delay cascades",
    ),
)
# Short enough for the whole demo to take under 3 minutes on 2 cores, long enough for
# Prometheus (1 s scrapes) and the load's per-second series to see the fault. The load
# outlives the method: the rollbacks stop it.
_MEASURE_WINDOW_S = 6
_SHORT = {
    "CHAOSMESH_LOAD_DURATION": "60s",
    "CHAOSMESH_BASELINE_SECONDS": "4",
    "CHAOSMESH_FAULT_SECONDS": "8",
    "CHAOSMESH_MEASURE_WINDOW": f"{_MEASURE_WINDOW_S}s",
}
# The baseline of a run reads the tagged group's metrics over the measure window: the
# previous run's faulted requests must have left it (plus a scrape) first.
_BETWEEN_RUNS_S = _MEASURE_WINDOW_S + 2


def _repository() -> Path:
    return Path(__file__).resolve().parent.parent


def reports_dir(cwd: Path | None = None) -> Path:
    """``reports/`` of the repository when working inside it, else of ``cwd``."""
    here = (cwd or Path.cwd()).resolve()
    repository = _repository()
    inside = here == repository or repository in here.parents
    return (repository if inside else here) / "reports"


def _env(info: MeshInfo) -> dict[str, str]:
    return {
        **os.environ,
        **_SHORT,
        "KUBECONFIG": str(info.kubeconfig),
        "CHAOSMESH_INGRESS_URL": str(info.ingress_url),
        "CHAOSMESH_PROMETHEUS_URL": str(info.prometheus_url),
        "CHAOSMESH_PROXY_ADMIN_URLS": str(info.admin_url),
        "PYTHONUNBUFFERED": "1",
    }


def _run_one(
    experiment: DemoExperiment, run_id: str, reports: Path, env: Mapping[str, str], out: Out
) -> DemoResult:
    journal = reports / run_id / "journal.json"
    journal.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable, "-m", "chaosmesh_istio.cli", "run",
        str(_repository() / "experiments" / experiment.file),
        "--var", f"chaosmesh_run_id={run_id}",
        "--var", f"chaosmesh_reports_dir={reports}",
        "--journal-path", str(journal),
    ]  # fmt: skip
    with subprocess.Popen(
        argv,
        env=dict(env),
        cwd=reports.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            out(f"    {line.rstrip()}")
    report = reports / run_id / "report.html"
    return DemoResult(experiment, run_id, process.returncode, report if report.is_file() else None)


def _table(results: list[DemoResult], reports: Path, out: Out) -> None:
    width = max(len(r.experiment.file) for r in results)
    out(f"{'experiment':<{width}}  {'verdict':<22}  exit  expected  report")
    for r in results:
        name = _VERDICTS.get(r.code, "usage" if r.code == 64 else "interrupted")
        mark = "" if r.as_expected else "  <- unexpected"
        shown = os.path.relpath(r.report) if r.report else "(no report)"
        out(
            f"{r.experiment.file:<{width}}  {name:<22}  {r.code:<4}  {r.experiment.expected:<8}  "
            f"{shown}{mark}"
        )
    out(f"index of every run: {os.path.relpath(reports / 'index.html')}")


def run_demo(directory: Path, out: Out = print, reports: Path | None = None) -> int:
    """Run the demo with the mesh in ``directory``: 0 when every verdict is as predicted."""
    reports = reports or reports_dir()
    reports.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    started = time.monotonic()
    out(f"starting the local mesh in {directory} ...")
    results: list[DemoResult] = []
    try:
        info = mesh_up(directory)
        out(f"  up in {time.monotonic() - started:.1f} s: ingress {info.ingress_url}, "
            f"Prometheus {info.prometheus_url}")  # fmt: skip
        env = _env(info)
        for number, experiment in enumerate(DEMO, 1):
            if number > 1:
                out(f"  waiting {_BETWEEN_RUNS_S} s for the last run's tagged requests to "
                    "leave the metrics window of the next baseline")  # fmt: skip
                time.sleep(_BETWEEN_RUNS_S)
            out(f"{number}/{len(DEMO)} chaosmesh-istio run experiments/{experiment.file}: "
                f"{experiment.shows}")  # fmt: skip
            run_id = f"demo-{stamp}-{experiment.file.removesuffix('.json')}"[:40].rstrip("-")
            results.append(_run_one(experiment, run_id, reports, env, out))
    finally:
        mesh_down(directory)
        out("local mesh stopped")
    _table(results, reports, out)
    good = all(r.as_expected for r in results)
    out(f"demo {'finished as predicted' if good else 'did NOT finish as predicted'} in "
        f"{time.monotonic() - started:.0f} s")  # fmt: skip
    return 0 if good else 1
