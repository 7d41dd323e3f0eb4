"""Load with Locust: control and experiment users in one run, and their numbers as probes.

Like Netflix ChAP, a load has two groups: **control** users send no scope header, so
the run's faults never touch them; **experiment** users send the header the faults are
scoped on. Every request also carries the group header (``chaosmesh_group_header``,
default ``x-chaos-group``), so the mesh's own metrics can tell the groups apart.

Locust runs in subprocesses only (one process, a local master with workers, or a remote
master driven through its web API). Output goes to ``<chaosmesh_reports_dir>/<run-id>/
load/``: ``timeseries.jsonl`` (one line per second and group: requests, failures,
p50/p95/p99 and the latency histogram), ``summary.json`` (final per-group numbers),
Locust's ``locust.json`` and logs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaosmesh_istio.durations import bounded_duration
from chaosmesh_istio.errors import InvalidArgument, LoadError
from chaosmesh_istio.load_args import plan_load
from chaosmesh_istio.load_procs import remote_series, remote_swarm
from chaosmesh_istio.load_run import (
    LOADS,
    RAW_SERIES,
    REGISTRY_LOCK,
    Load,
    check_started,
    describe,
    finish,
    register,
    spawn_local,
    stop,
    watch,
)
from chaosmesh_istio.load_series import GROUPS, Totals, percentile, stats_of, totals_from_series
from chaosmesh_istio.settings import run_id as _run_id
from chaosmesh_istio.settings import setting

__all__ = [
    "load_latency_quantile",
    "load_request_rate",
    "load_stats",
    "load_success_rate",
    "start_load",
    "stop_load",
]

logger = logging.getLogger("chaostoolkit").getChild("chaosmesh_istio.load")

# Long enough for a master to collect its workers' last reports and write its JSON.
_STOP_GRACE = 30.0


def _reports_dir(configuration: Mapping[str, Any] | None, run: str) -> Path:
    base = setting(configuration, "chaosmesh_reports_dir", "reports")
    if not isinstance(base, str) or not base:
        raise InvalidArgument(f"chaosmesh_reports_dir must be a directory path, got {base!r}")
    return Path(base) / run / "load"


def start_load(
    host: str,
    users: int = 10,
    spawn_rate: float = 10.0,
    duration: str = "60s",
    experiment_ratio: float = 0.5,
    paths: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    target_rps: float | None = None,
    locustfile: str | None = None,
    workers: int = 0,
    master_url: str | None = None,
    scope: str = "header",
    header: str = "x-chaos-run",
    header_value: str | None = None,
    header_match: str = "exact",
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Start a Locust load on `host` in the background and return at once.

    `users` are split by `experiment_ratio` into control users (no scope header) and
    experiment users (the run's scope header, computed as the faults compute it; in
    `baggage` scope a `chaos-run=<value>` baggage member). Every request carries the group
    header `x-chaos-group: control|experiment` (name set by chaosmesh_group_header).
    `paths` lists {"path", "method", "weight", "body", "headers"} (default GET /);
    `headers` go on every request; `target_rps` keeps a constant total throughput.
    `locustfile` replaces the bundled users with your own: per-group numbers then count
    requests named "[control] ..." or "[experiment] ...". `workers` starts a local master
    with that many workers; `master_url` drives an existing master running the bundled
    locustfile through its web API instead (its users are split by the class weights it
    was started with, 1:1 by default).
    The load stops by itself after `duration`, or with stop_load.
    """
    run = _run_id(configuration)
    plan = plan_load(
        run, configuration, host, users, spawn_rate, duration, experiment_ratio, paths,
        headers, target_rps, locustfile, workers, master_url, scope, header, header_value,
        header_match,
    )  # fmt: skip
    directory = _reports_dir(configuration, run)
    with REGISTRY_LOCK:
        previous = LOADS.get(run)
        if previous is not None and previous.running():
            raise LoadError(
                f"a load is already running for run {run!r}; call stop_load before starting "
                "another one"
            )
        directory.mkdir(parents=True, exist_ok=True)
        for name in (RAW_SERIES, "timeseries.jsonl", "summary.json", "locust.json"):
            (directory / name).unlink(missing_ok=True)
        load = Load(plan, directory, time.time())
        if plan.master_url is not None:
            remote_series(plan.master_url)
            remote_swarm(
                plan.master_url,
                {
                    "user_count": str(plan.users),
                    "spawn_rate": str(plan.spawn_rate),
                    "host": plan.host,
                    "run_time": f"{plan.duration_s}s",
                    "chaosmesh_config": json.dumps(plan.locust_config()),
                },
            )
        else:
            load.processes = spawn_local(plan, directory)
        register(load)
    if plan.master_url is None:
        try:
            check_started(load)
        except LoadError:
            LOADS.pop(run, None)
            raise
    threading.Thread(target=watch, args=(load,), name=f"load-{run}", daemon=True).start()
    logger.info(
        "load of run %s started on %s: %d users (%d control, %d experiment) for %ss",
        run, plan.host, plan.users, plan.control, plan.experiment, plan.duration_s,
    )  # fmt: skip
    result = describe(load)
    result["groups"] = result.pop("group_users")
    return result


def stop_load(
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Stop the run's load (waiting for Locust's final numbers) and return its summary.

    The summary has per-group stats under "groups" ("control", "experiment", "all"). Safe to
    call again, or when no load was started (then "groups" is empty).
    """
    run = _run_id(configuration)
    load = LOADS.get(run)
    if load is None:
        return {"run_id": run, "groups": {}}
    stop(load, grace=_STOP_GRACE)
    return finish(load)


def _check_group(group: object) -> str:
    if isinstance(group, str) and group in GROUPS:
        return group
    raise InvalidArgument(f"group must be 'control', 'experiment' or 'all', got {group!r}")


def _window(window: object) -> int | None:
    """A window in whole seconds (None = the whole load)."""
    if window is None:
        return None
    try:
        return bounded_duration("window", window, 10**9, 24 * 3600 * 10**9) // 10**9
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None


def _totals(
    configuration: Mapping[str, Any] | None, window: int | None = None
) -> dict[str, Totals]:
    run = _run_id(configuration)
    load = LOADS.get(run)
    if load is None:
        raise LoadError(f"no load was started for run {run!r}; call start_load first")
    with load.lock:
        if window is None and load.final is not None:
            return load.final
        lines = load.lines()
    if window is not None and lines:
        # The last `window` seconds of what was recorded, also once the load has ended.
        end = max(int(line["t"]) for line in lines)
        lines = [line for line in lines if int(line["t"]) > end - window]
    return totals_from_series(lines)


def _with_requests(
    group: str, configuration: Mapping[str, Any] | None, window: object = None
) -> Totals:
    seconds = _window(window)
    total = _totals(configuration, seconds)[group]
    if total.requests == 0:
        within = f" in the last {seconds}s" if seconds else ""
        raise LoadError(
            f"no request of group {group!r} has been recorded{within} yet; wait for the load "
            "to run or check that it reaches its host"
        )
    return total


def load_stats(
    group: str | None = None,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Numbers of the running or finished load, per group ("control", "experiment", "all").

    Each group has requests, failures, error_rate, success_rate, p50, p95, p99 (ms) and rps;
    rates and latencies are null until a request was recorded. With `group`, only that
    group's numbers.
    """
    wanted = None if group is None else _check_group(group)
    stats = {name: stats_of(total) for name, total in _totals(configuration).items()}
    return stats if wanted is None else stats[wanted]


def load_success_rate(
    group: str,
    window: str | None = None,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> float:
    """Share of successful requests of `group` ("control", "experiment" or "all"), 0 to 1.

    Over the whole load, or its last `window` (e.g. "10s"). Raises when the group has no
    request: no data is never a pass.
    """
    total = _with_requests(_check_group(group), configuration, window)
    return 1.0 - total.failures / total.requests


def load_latency_quantile(
    group: str,
    quantile: float,
    window: str | None = None,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> float:
    """Response time (ms) under which `quantile` (e.g. 0.95) of `group`'s requests fell.

    Over the whole load, or its last `window` (e.g. "10s"). Raises when the group has no
    request: no data is never a pass.
    """
    name = _check_group(group)
    if not isinstance(quantile, int | float) or isinstance(quantile, bool) or not 0 < quantile < 1:
        raise InvalidArgument(
            f"quantile must be a number between 0 and 1 (exclusive), such as 0.95, got {quantile!r}"
        )
    value = percentile(_with_requests(name, configuration, window).hist, float(quantile))
    if value is None:
        raise LoadError(f"no response time of group {name!r} has been recorded yet")
    return value


def load_request_rate(
    group: str,
    window: str | None = None,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> float:
    """Requests per second of `group` over the load so far, or its last `window` ("10s").

    Raises when the group has no request: no data is never a pass.
    """
    total = _with_requests(_check_group(group), configuration, window)
    return total.requests / max(total.seconds, 1.0)
