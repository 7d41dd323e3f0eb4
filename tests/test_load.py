"""Load with real Locust processes against a tiny upstream that fakes a scoped abort.

The upstream answers 503 to 30% of the requests carrying ``x-chaos-run`` (what a
header-scoped 30% abort does in the mesh) and 200 otherwise, and records the headers it saw.
Error-rate checks use a 99.999% binomial interval (z = 4.42), so they never fail by chance.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web

from chaosmesh_istio import load
from chaosmesh_istio.errors import ChaosMeshIstioError, InvalidArgument

Z = 4.42


class Upstream:
    """An aiohttp server on 127.0.0.1 in its own thread and event loop."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.seen.append({k.lower(): v for k, v in request.headers.items()})
        if "x-chaos-run" in request.headers and random.random() < 0.3:
            return web.Response(status=503, text="fault filter abort")
        return web.Response(text="ok")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    def close(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.sock.close()

    def by_group(self, group: str) -> list[dict[str, str]]:
        return [h for h in self.seen if h.get("x-chaos-group") == group]


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    try:
        server.start()
        yield server
    finally:
        server.close()


Configure = Callable[[str], dict[str, Any]]


@pytest.fixture
def configure(tmp_path: Path) -> Iterator[Configure]:
    """Configurations with their own run id; every load of them is stopped at the end."""
    made: list[dict[str, Any]] = []

    def make(run: str) -> dict[str, Any]:
        config = {"chaosmesh_run_id": run, "chaosmesh_reports_dir": str(tmp_path / "reports")}
        made.append(config)
        return config

    yield make
    for config in made:
        load.stop_load(configuration=config)


def _alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _locust_children() -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if ppid == os.getpid() and b"locust" in cmdline and _alive(int(stat.parent.name)):
            found.append(int(stat.parent.name))
    return found


def _wait_finished(config: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """The summary the load writes when it ends by itself."""
    summary = Path(config["chaosmesh_reports_dir"], config["chaosmesh_run_id"], "load")
    deadline = time.monotonic() + timeout
    while not (summary / "summary.json").exists():
        assert time.monotonic() < deadline, "the load did not finish in time"
        time.sleep(0.2)
    return dict(json.loads((summary / "summary.json").read_text()))


def _within(rate: float, expected: float, n: int) -> bool:
    return abs(rate - expected) <= Z * math.sqrt(expected * (1 - expected) / n)


@pytest.fixture(scope="module")
def header_run(
    upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, Any], dict[str, Any], list[dict[str, str]]]]:
    """One 6 s header-scoped load shared by the tests that only read its results."""
    reports = tmp_path_factory.mktemp("reports")
    config = {"chaosmesh_run_id": "load-header", "chaosmesh_reports_dir": str(reports)}
    before = len(upstream.seen)
    try:
        started = load.start_load(
            upstream.url,
            users=6,
            spawn_rate=20,
            duration="6s",
            paths=[{"path": "/a", "weight": 3}, {"path": "/b", "method": "POST", "body": {}}],
            headers={"x-team": "sre"},
            configuration=config,
        )
        summary = _wait_finished(config)
        yield started, summary, upstream.seen[before:]
    finally:
        load.stop_load(configuration=config)


def test_two_groups_send_the_right_headers(header_run: Any) -> None:
    started, summary, seen = header_run
    assert started["groups"] == {"control": 3, "experiment": 3}
    assert started["header"] == "x-chaos-run" and started["header_value"] == "load-header"
    control = [h for h in seen if h.get("x-chaos-group") == "control"]
    experiment = [h for h in seen if h.get("x-chaos-group") == "experiment"]
    assert control and experiment and len(control) + len(experiment) == len(seen)
    assert all("x-chaos-run" not in h for h in control)
    assert all(h["x-chaos-run"] == "load-header" for h in experiment)
    assert all(h["x-team"] == "sre" for h in seen)
    # Requests still in flight when Locust stopped are seen upstream but not counted.
    counted = summary["groups"]["all"]["requests"]
    assert counted <= len(seen) <= counted + 6


def test_experiment_error_rate_matches_the_fault_and_control_is_clean(header_run: Any) -> None:
    _, summary, _ = header_run
    control, experiment = summary["groups"]["control"], summary["groups"]["experiment"]
    assert control["requests"] > 30 and control["failures"] == 0
    assert control["error_rate"] == 0.0 and control["success_rate"] == 1.0
    assert _within(experiment["error_rate"], 0.3, experiment["requests"]), experiment
    assert experiment["success_rate"] == pytest.approx(1 - experiment["error_rate"])


def test_latency_quantiles_and_rates_are_sane(header_run: Any) -> None:
    _, summary, _ = header_run
    for group in ("control", "experiment", "all"):
        stats = summary["groups"][group]
        assert 0 <= stats["p50"] <= stats["p95"] <= stats["p99"] < 5000, stats
        assert stats["rps"] > 1, stats
    groups = summary["groups"]
    assert (
        groups["all"]["requests"]
        == groups["control"]["requests"] + groups["experiment"]["requests"]
    )
    config = {"chaosmesh_run_id": "load-header"}
    stats = load.load_stats(configuration=config)
    assert stats == groups
    assert load.load_stats("experiment", configuration=config) == groups["experiment"]
    assert load.load_success_rate("control", configuration=config) == 1.0
    p95 = load.load_latency_quantile("all", 0.95, configuration=config)
    assert p95 == groups["all"]["p95"]
    assert load.load_request_rate("all", configuration=config) == pytest.approx(
        groups["all"]["rps"]
    )


def test_time_series_has_per_second_lines_for_both_groups(header_run: Any) -> None:
    _, summary, _ = header_run
    lines = [
        json.loads(line)
        for line in Path(summary["stats_dir"], "timeseries.jsonl").read_text().splitlines()
    ]
    for group in ("control", "experiment"):
        rows = [row for row in lines if row["group"] == group]
        seconds = [row["t"] for row in rows]
        assert len(rows) >= 5 and seconds == sorted(set(seconds))
        assert max(seconds) - min(seconds) + 1 == len(rows)
        assert sum(row["requests"] for row in rows) == summary["groups"][group]["requests"]
        assert all(sum(row["hist"].values()) == row["requests"] for row in rows)
        assert all(row["p50"] <= row["p99"] for row in rows)
    assert sum(r["failures"] for r in lines if r["group"] == "control") == 0


def test_baggage_scope_sends_the_run_member(upstream: Upstream, configure: Configure) -> None:
    config = configure("load-baggage")
    before = len(upstream.seen)
    started = load.start_load(
        upstream.url,
        users=2,
        duration="2s",
        scope="baggage",
        headers={"baggage": "tenant=a"},
        configuration=config,
    )
    assert started["header"] == "baggage"
    assert started["header_value"] == "tenant=a,chaos-run=load-baggage"
    _wait_finished(config)
    seen = upstream.seen[before:]
    experiment = [h for h in seen if h.get("x-chaos-group") == "experiment"]
    control = [h for h in seen if h.get("x-chaos-group") == "control"]
    assert experiment and control
    assert {h["baggage"] for h in experiment} == {"tenant=a,chaos-run=load-baggage"}
    assert {h["baggage"] for h in control} == {"tenant=a"}
    assert all("x-chaos-run" not in h for h in seen)


def test_target_rps_is_roughly_reached(upstream: Upstream, configure: Configure) -> None:
    config = configure("load-rps")
    load.start_load(upstream.url, users=4, duration="6s", target_rps=20, configuration=config)
    rps = _wait_finished(config)["groups"]["all"]["rps"]
    print(f"target_rps 20: measured {rps:.1f} rps, ratio {rps / 20:.2f}")
    assert 0.6 < rps / 20 < 1.4


def test_master_and_two_workers_merge_their_numbers(
    upstream: Upstream, configure: Configure
) -> None:
    config = configure("load-workers")
    before = len(upstream.seen)
    started = load.start_load(upstream.url, users=4, duration="4s", workers=2, configuration=config)
    assert len(started["pids"]) == 3
    summary = _wait_finished(config)
    assert len(summary["sources"]) == 2, "both workers sent per-second data"
    raw = Path(summary["stats_dir"], "locust-timeseries.jsonl").read_text().splitlines()
    per_worker: dict[str, int] = {}
    for line in map(json.loads, raw):
        per_worker[line["source"]] = per_worker.get(line["source"], 0) + line["requests"]
    assert len(per_worker) == 2 and all(n > 0 for n in per_worker.values())
    groups = summary["groups"]
    assert groups["all"]["requests"] == sum(per_worker.values())
    assert groups["control"]["failures"] == 0
    assert _within(groups["experiment"]["error_rate"], 0.3, groups["experiment"]["requests"])
    seen = upstream.seen[before:]
    assert groups["all"]["requests"] <= len(seen) <= groups["all"]["requests"] + 4
    for pid in started["pids"]:
        assert not _alive(pid)


def test_stop_load_stops_every_process_and_is_idempotent(
    upstream: Upstream, configure: Configure
) -> None:
    config = configure("load-stop")
    started = load.start_load(upstream.url, users=4, duration="5m", workers=1, configuration=config)
    with pytest.raises(ChaosMeshIstioError, match="already running for run 'load-stop'"):
        load.start_load(upstream.url, users=2, duration="5s", configuration=config)
    deadline = time.monotonic() + 30
    while True:
        try:
            live = load.load_success_rate("control", configuration=config)
            break
        except ChaosMeshIstioError:
            assert time.monotonic() < deadline
            time.sleep(0.5)
    assert live == 1.0
    assert load.load_request_rate("experiment", configuration=config) > 0
    first = load.stop_load(configuration=config)
    assert not any(_alive(pid) for pid in started["pids"])
    assert _locust_children() == []
    assert first["groups"]["control"]["requests"] > 0
    assert load.stop_load(configuration=config) == first
    assert load.load_stats(configuration=config) == first["groups"]


def test_drives_an_existing_master_through_its_web_api(
    upstream: Upstream, configure: Configure, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bundled = Path(load.__file__).parent / "locustfiles" / "locustfile.py"
    args = ["-f", str(bundled), "--web-host", "127.0.0.1", "--web-port", str(port)]
    with (tmp_path / "master.log").open("wb") as log:
        master = subprocess.Popen([sys.executable, "-m", "locust", *args], stdout=log, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and master.poll() is None
                time.sleep(0.2)
        config = configure("load-remote")
        before = len(upstream.seen)
        started = load.start_load(
            upstream.url, users=4, duration="3s", master_url=url, configuration=config
        )
        assert started["master_url"] == url and "pids" not in started
        time.sleep(4)
        groups = load.stop_load(configuration=config)["groups"]
        assert groups["control"]["requests"] > 0 and groups["control"]["failures"] == 0
        assert groups["experiment"]["requests"] > 0
        experiment = [h for h in upstream.seen[before:] if h.get("x-chaos-group") == "experiment"]
        assert {h["x-chaos-run"] for h in experiment} == {"load-remote"}
    finally:
        master.terminate()
        master.wait(30)


def test_the_end_of_the_runner_process_stops_its_locust_processes(
    upstream: Upstream, tmp_path: Path
) -> None:
    script = (
        "import json, sys\n"
        "from chaosmesh_istio import load\n"
        "config = {'chaosmesh_run_id': 'load-exit',"
        f" 'chaosmesh_reports_dir': {str(tmp_path)!r}}}\n"
        f"started = load.start_load({upstream.url!r}, users=2, duration='5m', workers=1,"
        " configuration=config)\n"
        "print(json.dumps(started['pids']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    pids = json.loads(done.stdout.splitlines()[-1])
    assert len(pids) == 2
    assert not any(_alive(pid) for pid in pids)


def test_own_locustfile_and_no_data_is_an_error(
    upstream: Upstream, configure: Configure, tmp_path: Path
) -> None:
    locustfile = tmp_path / "mine.py"
    locustfile.write_text(
        "from locust import FastHttpUser, constant, task\n\n\n"
        "class Mine(FastHttpUser):\n"
        "    wait_time = constant(0.1)\n\n"
        "    @task\n"
        "    def hit(self):\n"
        '        self.client.get("/x", name="[experiment] /x", headers={"x-chaos-run": "m"})\n'
        '        self.client.get("/y")\n'
    )
    config = configure("load-own")
    load.start_load(
        upstream.url, users=2, duration="3s", locustfile=str(locustfile), configuration=config
    )
    groups = _wait_finished(config)["groups"]
    assert groups["control"]["requests"] == 0 and groups["control"]["error_rate"] is None
    assert groups["experiment"]["requests"] > 0
    assert groups["all"]["requests"] == 2 * groups["experiment"]["requests"]
    with pytest.raises(ChaosMeshIstioError, match="no request of group 'control'"):
        load.load_success_rate("control", configuration=config)
    with pytest.raises(ChaosMeshIstioError, match="no request of group 'control'"):
        load.load_latency_quantile("control", 0.5, configuration=config)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"users": 0}, "users must be an integer of at least 2"),
        ({"experiment_ratio": 1.5}, "experiment_ratio must be a number between 0 and 1"),
        ({"duration": "5 s"}, "duration '5 s' is not a duration"),
        ({"spawn_rate": 0}, "spawn_rate must be a positive number"),
        ({"host": "127.0.0.1:80"}, "host must be an http"),
        ({"workers": 2, "master_url": "http://127.0.0.1:8089"}, "exclude each other"),
        ({"locustfile": "/nonexistent/locustfile.py"}, "locustfile must be the path of an"),
        ({"paths": [{"path": "x"}]}, r"paths\[0\].path must start with '/'"),
        ({"headers": {"x-chaos-run": "a"}}, "headers sets 'x-chaos-run'"),
        ({"target_rps": -1}, "target_rps must be a positive number"),
        ({"scope": "none"}, "scope of a load must be 'header' or 'baggage'"),
    ],
)
def test_bad_input_is_one_clear_sentence_and_starts_nothing(
    kwargs: dict[str, Any], message: str, configure: Configure, tmp_path: Path
) -> None:
    config = configure("load-bad")
    args: dict[str, Any] = {"host": "http://127.0.0.1:9", **kwargs}
    with pytest.raises(InvalidArgument, match=message) as caught:
        load.start_load(configuration=config, **args)
    text = str(caught.value)
    assert text.count(". ") == 0 and "\n" not in text
    assert not (tmp_path / "reports").exists()
    assert _locust_children() == []


def test_bad_probe_arguments_are_one_clear_sentence(configure: Configure) -> None:
    config = configure("load-probe")
    with pytest.raises(InvalidArgument, match="group must be 'control', 'experiment' or 'all'"):
        load.load_stats("canary", configuration=config)
    for quantile in (0, 1.5, 1):
        with pytest.raises(InvalidArgument, match="quantile must be a number between 0 and 1"):
            load.load_latency_quantile("all", quantile, configuration=config)
    with pytest.raises(ChaosMeshIstioError, match="no load was started for run 'load-probe'"):
        load.load_request_rate("all", configuration=config)
    assert load.stop_load(configuration=config) == {"run_id": "load-probe", "groups": {}}


def test_against_the_local_mesh(
    request: pytest.FixtureRequest, configure: Configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        mesh = request.getfixturevalue("full_mesh")
    except pytest.FixtureLookupError:
        pytest.skip("tests/conftest.py has no full_mesh fixture")
    from chaosmesh_istio.actions import inject_abort, remove_faults  # noqa: PLC0415

    config = configure("load-mesh")
    monkeypatch.setenv("KUBECONFIG", str(mesh.kubeconfig))
    page = f"{mesh.ingress_url}/product/1"
    tagged = {"x-chaos-run": "load-mesh"}
    inject_abort("catalog", status=503, percentage=100, configuration=config)
    try:
        with requests.Session() as session:
            session.trust_env = False
            deadline = time.monotonic() + 15
            while not session.get(page, headers=tagged, timeout=10).json()["degraded"]:
                assert time.monotonic() < deadline, "the abort never went live"
                time.sleep(0.2)
        load.start_load(
            mesh.ingress_url, users=6, duration="5s", paths=[{"path": "/product/1"}],
            configuration=config,
        )  # fmt: skip
        groups = _wait_finished(config)["groups"]
        print(f"through the mesh with catalog aborted for the experiment group: {groups}")
    finally:
        remove_faults("catalog", configuration=config)
    # The frontend's fallback turns catalog's 503 into a degraded 200 page, so neither group
    # fails: the load proves the blast radius, the page body proves the fallback.
    assert groups["control"]["requests"] > 0 and groups["control"]["failures"] == 0
    assert groups["experiment"]["requests"] > 0 and groups["experiment"]["failures"] == 0
