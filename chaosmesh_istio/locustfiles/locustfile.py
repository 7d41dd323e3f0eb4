"""The bundled Locust file: control and experiment users, and a per-second recorder.

Runs only inside Locust processes (never imported by the runner: Locust's gevent
monkey-patching would break the runner's HTTP clients). Configured by the JSON in
``CHAOSMESH_LOAD_CONFIG`` (or the ``chaosmesh_config`` field of a ``/swarm`` request):

- ``control`` / ``experiment``: user counts (``fixed_count``) of the two groups;
- ``group_header``: the header telling the mesh's metrics which group sent a request;
- ``scope_header`` / ``scope_value``: the header only experiment users send;
- ``headers``, ``paths``, ``rate_per_user`` (constant throughput) and ``bundled_users``
  (false when a user's own locustfile supplies the users and this file only records).

Requests are named ``[<group>] <path>``. Every request is counted per second and group
(requests, failures, response times rounded as Locust rounds them); standalone and master
processes append those counts as JSON lines to the file named by
``CHAOSMESH_LOAD_TIMESERIES``, workers send theirs to the master with their stats reports.
"""

# Locust's event and web UI helpers carry no type hints.
# mypy: disallow-untyped-calls=False

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from typing import Any

from locust import FastHttpUser, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner
from locust.user.wait_time import between, constant_throughput

__all__ = ["ControlUser", "ExperimentUser"]

_ENV_CONFIG: dict[str, Any] = json.loads(os.environ.get("CHAOSMESH_LOAD_CONFIG") or "{}")
_BUNDLED_USERS = _ENV_CONFIG.get("bundled_users", True) is not False
_NAME_PREFIXES = {"[control] ": "control", "[experiment] ": "experiment"}
_REPORT_KEY = "chaosmesh_timeseries"

# (second, group) -> [requests, failures, {rounded ms: count}]
_buckets: dict[tuple[int, str], list[Any]] = {}
_lines: list[dict[str, Any]] = []
_state: dict[str, Any] = {"source": "local", "second": 0, "forward": False}


def _bucket_ms(response_time: float) -> int:
    """Round like ``locust.stats.bucket_response_time``: about two significant digits."""
    if response_time < 100:
        return round(response_time)
    if response_time < 1000:
        return int(round(response_time, -1))
    if response_time < 10000:
        return int(round(response_time, -2))
    return int(round(response_time, -3))


def _group_of(name: str) -> str:
    for prefix, group in _NAME_PREFIXES.items():
        if name.startswith(prefix):
            return group
    return "other"


def _drain() -> list[dict[str, Any]]:
    drained = [
        {
            "t": second,
            "group": group,
            "requests": counts[0],
            "failures": counts[1],
            "hist": {str(ms): n for ms, n in sorted(counts[2].items())},
            "source": _state["source"],
        }
        for (second, group), counts in sorted(_buckets.items())
    ]
    _buckets.clear()
    return drained


def _write(lines: list[dict[str, Any]]) -> None:
    if not lines:
        return
    _lines.extend(lines)
    path = os.environ.get("CHAOSMESH_LOAD_TIMESERIES")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines))


def _add_arguments(parser: Any, **_: Any) -> None:
    parser.add_argument(
        "--chaosmesh-config",
        default="",
        env_var="CHAOSMESH_LOAD_CONFIG",
        help="JSON configuration of the chaosmesh_istio control and experiment users",
    )


def _on_init(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        _state["source"] = runner.client_id
        _state["forward"] = True
    web_ui = environment.web_ui
    app = web_ui.app if web_ui is not None else None
    if web_ui is None or app is None:
        return

    def timeseries() -> Any:
        # A remote runner reads the series of a master whose disk it cannot reach.
        if not isinstance(runner, MasterRunner):
            _write(_drain())
        return app.response_class(json.dumps(_lines), mimetype="application/json")

    app.add_url_rule(
        "/chaosmesh/timeseries",
        "chaosmesh_timeseries",
        web_ui.auth_required_if_enabled(timeseries),
    )


def _on_test_start(**_: Any) -> None:
    _buckets.clear()
    _lines.clear()


def _on_request(
    name: str, response_time: float | None, exception: BaseException | None, **_: Any
) -> None:
    now = int(time.time())
    counts = _buckets.setdefault((now, _group_of(name)), [0, 0, {}])
    counts[0] += 1
    if exception is not None:
        counts[1] += 1
    if response_time is not None:
        ms = _bucket_ms(response_time)
        counts[2][ms] = counts[2].get(ms, 0) + 1
    # Flush once per second from the request path itself: no extra greenlet to manage.
    if not _state["forward"] and now > _state["second"]:
        _state["second"] = now
        _write(_drain())


def _on_report_to_master(data: dict[str, Any], **_: Any) -> None:
    data[_REPORT_KEY] = _drain()


def _on_worker_report(data: dict[str, Any], **_: Any) -> None:
    _write(list(data.get(_REPORT_KEY) or []))


def _on_test_stop(**_: Any) -> None:
    if not _state["forward"]:
        _write(_drain())


def _on_quit(**_: Any) -> None:
    if not _state["forward"]:
        _write(_drain())


events.init_command_line_parser.add_listener(_add_arguments)
events.init.add_listener(_on_init)
events.test_start.add_listener(_on_test_start)
events.request.add_listener(_on_request)
events.report_to_master.add_listener(_on_report_to_master)
events.worker_report.add_listener(_on_worker_report)
events.test_stop.add_listener(_on_test_stop)
events.quit.add_listener(_on_quit)


def _config(environment: Environment) -> dict[str, Any]:
    options = environment.parsed_options
    text = getattr(options, "chaosmesh_config", "") if options is not None else ""
    return dict(json.loads(text)) if text else dict(_ENV_CONFIG)


class _ChaosMeshUser(FastHttpUser):
    abstract = True
    group = "control"

    def on_start(self) -> None:
        config = _config(self.environment)
        headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}
        headers[str(config.get("group_header") or "x-chaos-group")] = self.group
        if self.group == "experiment" and config.get("scope_header"):
            headers[str(config["scope_header"])] = str(config.get("scope_value", ""))
        self._headers = headers
        self._paths = list(config.get("paths") or [{"path": "/"}])
        self._weights = [int(p.get("weight", 1)) for p in self._paths]
        rate = config.get("rate_per_user")
        self._wait: Callable[[Any], float] = (
            constant_throughput(float(rate)) if rate else between(0.05, 0.15)
        )

    def wait_time(self) -> float:
        return self._wait(self)

    @task
    def send(self) -> None:
        entry = random.choices(self._paths, weights=self._weights)[0]
        path = str(entry["path"])
        body = entry.get("body")
        self.client.request(
            str(entry.get("method", "GET")),
            path,
            name=f"[{self.group}] {path}",
            headers={**self._headers, **(entry.get("headers") or {})},
            data=body if isinstance(body, str) else None,
            json=body if body is not None and not isinstance(body, str) else None,
        )


class ControlUser(_ChaosMeshUser):
    """Sends no scope header: its errors and latency are the baseline."""

    abstract = not _BUNDLED_USERS
    group = "control"
    fixed_count = int(_ENV_CONFIG.get("control", 0))


class ExperimentUser(_ChaosMeshUser):
    """Sends the run's scope header, so the injected faults apply to it."""

    abstract = not _BUNDLED_USERS
    group = "experiment"
    fixed_count = int(_ENV_CONFIG.get("experiment", 0))
