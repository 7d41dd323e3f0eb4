"""The lifecycle of one load: Locust processes or a remote master, progress, final files."""

from __future__ import annotations

import atexit
import datetime as dt
import json
import logging
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaosmesh_istio.errors import LoadError
from chaosmesh_istio.load_args import LoadPlan
from chaosmesh_istio.load_procs import (
    free_port,
    remote_series,
    remote_stop,
    spawn_locust,
    stop_processes,
)
from chaosmesh_istio.load_series import (
    GROUPS,
    Totals,
    merge_series,
    read_json_lines,
    stats_of,
    totals_from_locust_json,
    totals_from_series,
)

__all__ = [
    "LOADS",
    "RAW_SERIES",
    "REGISTRY_LOCK",
    "Load",
    "check_started",
    "describe",
    "finish",
    "register",
    "spawn_local",
    "stop",
    "stop_everything",
    "watch",
]

logger = logging.getLogger("chaostoolkit").getChild("chaosmesh_istio.load")

_BUNDLED = Path(__file__).resolve().parent / "locustfiles" / "locustfile.py"
_PROGRESS_EVERY = 10.0
_STARTUP_CHECK = 1.0
RAW_SERIES = "locust-timeseries.jsonl"


@dataclass
class Load:
    """One load of a run, and once it ended its final numbers."""

    plan: LoadPlan
    directory: Path
    started: float
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    halt: threading.Event = field(default_factory=threading.Event)
    lock: threading.RLock = field(default_factory=threading.RLock)
    summary: dict[str, Any] | None = None
    final: dict[str, Totals] | None = None

    def running(self) -> bool:
        """Whether Locust may still be sending requests for this load."""
        if self.summary is not None:
            return False
        if self.plan.master_url is not None:
            return True
        return any(p.poll() is None for p in self.processes)

    def lines(self) -> list[dict[str, Any]]:
        """The per-second lines recorded so far (a remote master's are saved locally too)."""
        if self.plan.master_url is not None and self.summary is None:
            lines = remote_series(self.plan.master_url)
            raw = "".join(json.dumps(line) + "\n" for line in lines)
            (self.directory / RAW_SERIES).write_text(raw, encoding="utf-8")
            return lines
        return read_json_lines(self.directory / RAW_SERIES)


LOADS: dict[str, Load] = {}
REGISTRY_LOCK = threading.Lock()


def register(load: Load) -> None:
    """Track a started load; the first one also arms the stop at interpreter exit."""
    # unregister + register: armed exactly once, however many loads were started.
    atexit.unregister(stop_everything)
    atexit.register(stop_everything)
    LOADS[load.plan.run_id] = load


def stop(load: Load, grace: float) -> None:
    """Stop the load's Locust processes, or its remote master's load."""
    if not load.running():
        return
    load.halt.set()
    logger.info("stopping the load of run %s", load.plan.run_id)
    if load.plan.master_url is not None:
        remote_stop(load.plan.master_url)
    stop_processes(load.processes, grace=grace)


def stop_everything() -> None:
    """At interpreter exit: no Locust process outlives the runner."""
    for load in list(LOADS.values()):
        try:
            stop(load, grace=5.0)
        except LoadError as exc:
            logger.warning("%s", exc)


def spawn_local(plan: LoadPlan, directory: Path) -> list[subprocess.Popen[bytes]]:
    """Start one Locust process, or a master then its workers (all on 127.0.0.1)."""
    files = str(_BUNDLED) if plan.locustfile is None else f"{_BUNDLED},{plan.locustfile}"
    env = {
        "CHAOSMESH_LOAD_CONFIG": json.dumps(plan.locust_config()),
        "CHAOSMESH_LOAD_TIMESERIES": str((directory / RAW_SERIES).resolve()),
    }
    common = ["-f", files, "--exit-code-on-error", "0"]
    lead = [
        *common,
        "--headless",
        "--only-summary",
        *("-u", str(plan.users), "-r", str(plan.spawn_rate), "-t", f"{plan.duration_s}s"),
        *("-H", plan.host, "--json-file", str((directory / "locust").resolve())),
    ]
    if not plan.workers:
        return [spawn_locust(lead, env, directory / "locust.log", directory)]
    port = str(free_port())
    master = [
        *lead,
        *("--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", port),
        *("--expect-workers", str(plan.workers), "--expect-workers-max-wait", "60"),
    ]
    processes = [spawn_locust(master, env, directory / "locust-master.log", directory)]
    try:
        for i in range(plan.workers):
            worker = [*common, "--worker", "--master-host", "127.0.0.1", "--master-port", port]
            log = directory / f"locust-worker-{i + 1}.log"
            processes.append(spawn_locust(worker, env, log, directory))
    except LoadError:
        stop_processes(processes, grace=5.0)
        raise
    return processes


def check_started(load: Load) -> None:
    """Fail at once when Locust dies on start (bad locustfile, port taken...)."""
    deadline = time.monotonic() + _STARTUP_CHECK
    while time.monotonic() < deadline:
        dead = [p for p in load.processes if p.poll() not in (None, 0)]
        if dead:
            stop_processes(load.processes, grace=5.0)
            logs = sorted(load.directory.glob("locust*.log"))
            tail = " | ".join(
                line for log in logs for line in log.read_text(errors="replace").splitlines()[-3:]
            )
            raise LoadError(
                f"Locust exited with code {dead[0].returncode} on start: {tail[-400:]!r}; see "
                f"the logs in {str(load.directory)!r}"
            )
        time.sleep(0.1)


def _final_totals(load: Load, lines: list[dict[str, Any]]) -> dict[str, Totals]:
    series = totals_from_series(lines)
    path = load.directory / "locust.json"
    if load.plan.master_url is not None or not path.exists():
        return series
    # Locust's own totals count every request, also those a killed worker never reported.
    totals = totals_from_locust_json(json.loads(path.read_text(encoding="utf-8")))
    for group, total in totals.items():
        if total.seconds <= 0:
            total.seconds = series[group].seconds
    return totals


def finish(load: Load) -> dict[str, Any]:
    """Write timeseries.jsonl and summary.json once; the final numbers."""
    with load.lock:
        if load.summary is not None:
            return load.summary
        lines = load.lines()
        merged = merge_series(lines)
        (load.directory / "timeseries.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in merged), encoding="utf-8"
        )
        load.final = _final_totals(load, lines)
        plan = load.plan
        summary = {
            **describe(load),
            "ended_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "sources": sorted({str(line.get("source")) for line in lines}),
            "groups": {group: stats_of(total) for group, total in load.final.items()},
        }
        (load.directory / "summary.json").write_text(
            json.dumps(summary, indent=2) + "\n", encoding="utf-8"
        )
        load.summary = summary
        all_stats = summary["groups"]["all"]
        logger.info(
            "load of run %s finished: %d requests, error rate %s",
            plan.run_id,
            all_stats["requests"],
            _percent(all_stats["error_rate"]),
        )
        return summary


def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.1%}"


def _progress(load: Load) -> None:
    now = int(time.time())
    recent = [line for line in load.lines() if now - 11 <= int(line["t"]) < now - 1]
    totals = totals_from_series(recent)
    parts = []
    for group in GROUPS[:2]:
        total = totals[group]
        rate = total.failures / total.requests if total.requests else None
        parts.append(f"{group} {total.requests / 10:.1f} rps, errors {_percent(rate)}")
    logger.info("load of run %s: %s", load.plan.run_id, "; ".join(parts))


def watch(load: Load) -> None:
    """Log progress every ~10 s; write the final files when the load ends by itself."""
    last = time.monotonic()
    remote_end = load.started + load.plan.duration_s + 10
    while not load.halt.wait(1.0):
        try:
            if time.monotonic() - last >= _PROGRESS_EVERY:
                last = time.monotonic()
                _progress(load)
            remote_over = load.plan.master_url is not None and time.time() > remote_end
            if remote_over or not load.running():
                finish(load)
                return
        except (LoadError, OSError, ValueError) as exc:
            logger.warning("load of run %s: %s", load.plan.run_id, exc)


def describe(load: Load) -> dict[str, Any]:
    """What start_load returns and summary.json starts with."""
    plan = load.plan
    where: dict[str, Any] = (
        {"master_url": plan.master_url}
        if plan.master_url is not None
        else {"pids": [p.pid for p in load.processes]}
    )
    return {
        "run_id": plan.run_id,
        "host": plan.host,
        "users": plan.users,
        "duration": f"{plan.duration_s}s",
        "group_users": {"control": plan.control, "experiment": plan.experiment},
        "header": plan.scope_header,
        "header_value": plan.scope_value,
        "group_header": plan.group_header,
        "workers": plan.workers,
        "started_at": dt.datetime.fromtimestamp(load.started, dt.UTC).isoformat(timespec="seconds"),
        "stats_dir": str(load.directory),
        **where,
    }
