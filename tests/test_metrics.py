"""The metrics probes against a real Prometheus scraping Istio-shaped series we control."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from chaosmesh_istio import metrics
from chaosmesh_istio.errors import ChaosMeshIstioError, Inconclusive, InvalidArgument, MetricsError

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
JOB = "fake-istio"
NS = "shop"
BUCKETS = ("5", "10", "25", "50", "100", "250", "500", "1000", "2500", "+Inf")
# Short enough that every series is older than the window once a few scrapes happened.
W = "5s"

pytestmark = pytest.mark.skipif(
    not Path(PROMETHEUS).exists(), reason="the prometheus server is not installed"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def istio_labels(
    destination: str,
    group: str,
    code: str = "200",
    flags: str = "-",
    reporter: str = "source",
    source: str = "frontend-v1",
) -> dict[str, str]:
    """The labels Istio's standard metrics carry, plus the group tag set from a header."""
    return {
        "reporter": reporter,
        "source_workload": source,
        "source_workload_namespace": NS,
        "source_app": source.rsplit("-", 1)[0],
        "destination_service": f"{destination}.{NS}.svc.cluster.local",
        "destination_service_name": destination,
        "destination_service_namespace": NS,
        "destination_workload": f"{destination}-v1",
        "destination_version": "v1",
        "response_code": code,
        "response_flags": flags,
        "chaos_group": group,
    }


@dataclass
class Counter:
    """A counter that starts at ``initial`` when added and grows by ``per_second``."""

    name: str
    labels: dict[str, str]
    per_second: float
    initial: float
    added: float = field(default_factory=time.monotonic)

    def value(self, now: float) -> float:
        return self.initial + self.per_second * (now - self.added)


class FakeIstio:
    """A Prometheus exporter of Istio-shaped series whose growth the test decides."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counters: list[Counter] = []

    def add(self, labels: dict[str, str], per_second: float, initial: float = 0.0) -> None:
        with self.lock:
            self.counters.append(Counter("istio_requests_total", labels, per_second, initial))

    def add_histogram(self, labels: dict[str, str], cumulative: Mapping[str, float]) -> None:
        """Buckets growing by ``cumulative[le]`` requests per second (``le`` as in BUCKETS)."""
        with self.lock:
            for le in BUCKETS:
                self.counters.append(
                    Counter(
                        "istio_request_duration_milliseconds_bucket",
                        {**labels, "le": le},
                        cumulative[le],
                        0.0,
                    )
                )

    def exposition(self) -> str:
        now = time.monotonic()
        with self.lock:
            counters = list(self.counters)
        lines = [
            "# TYPE istio_requests_total counter",
            "# TYPE istio_request_duration_milliseconds histogram",
        ]
        for counter in sorted(counters, key=lambda c: c.name, reverse=True):
            labels = ",".join(f"{k}={json.dumps(v)}" for k, v in counter.labels.items())
            lines.append(f"{counter.name}{{{labels}}} {counter.value(now):.3f}")
        return "\n".join(lines) + "\n"


def serve(handler: Callable[[http.server.BaseHTTPRequestHandler], None]) -> Any:
    """An HTTP server on 127.0.0.1 in a thread, answering every GET with ``handler``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            handler(self)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def reply(request: http.server.BaseHTTPRequestHandler, status: int, body: str, kind: str) -> None:
    data = body.encode()
    request.send_response(status)
    request.send_header("Content-Type", kind)
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)


def feed(fake: FakeIstio) -> None:
    """The series the assertions below are computed from (rates in requests per second)."""
    # catalog, control: 10/s, 2/s of them 5xx (retry exhausted, timeout), 1/s a 404.
    fake.add(istio_labels("catalog", "control"), 7)
    fake.add(istio_labels("catalog", "control", code="404"), 1)
    fake.add(istio_labels("catalog", "control", code="503", flags="URX"), 1)
    fake.add(istio_labels("catalog", "control", code="504", flags="UT"), 1)
    fake.add(istio_labels("catalog", "control", reporter="destination"), 4)
    # catalog, experiment: 5/s; aborts (FI) 1.5/s, delays (DI) 1/s, 2/s fault-flagged.
    fake.add(istio_labels("catalog", "experiment"), 3)
    fake.add(istio_labels("catalog", "experiment", code="503", flags="FI"), 1)
    fake.add(istio_labels("catalog", "experiment", flags="DI"), 0.5)
    fake.add(istio_labels("catalog", "experiment", code="503", flags="DI,FI"), 0.5)
    # 90% of control in (5, 10] ms, 10% in (100, 250]; experiment 40% in (10, 25], 60% in
    # (1000, 2500] (delayed).
    control = dict(zip(BUCKETS, (0, 9, 9, 9, 9, 10, 10, 10, 10, 10), strict=True))
    fake.add_histogram(istio_labels("catalog", "control"), control)
    experiment = dict(zip(BUCKETS, (0, 0, 2, 2, 2, 2, 2, 2, 5, 5), strict=True))
    fake.add_histogram(istio_labels("catalog", "experiment"), experiment)
    # reviews: experiment traffic without any fault flag; ratings: control traffic only.
    fake.add(istio_labels("reviews", "experiment"), 2)
    fake.add(istio_labels("reviews", "control"), 2)
    fake.add(istio_labels("ratings", "control"), 1)
    # idle: series that exist but saw no request lately.
    fake.add(istio_labels("idle", "control"), 0, initial=5)
    fake.add_histogram(istio_labels("idle", "control"), dict.fromkeys(BUCKETS, 0.0))


@dataclass(frozen=True)
class Stack:
    fake: FakeIstio
    url: str

    @property
    def config(self) -> dict[str, Any]:
        return {"prometheus_url": self.url}

    def raw(self, promql: str) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        answer.raise_for_status()
        result: list[dict[str, Any]] = answer.json()["data"]["result"]
        return result

    def wait(self, promql: str, ok: Callable[[float], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                result = self.raw(promql)
            except requests.RequestException:
                result = []
            if result and ok(float(result[0]["value"][1])):
                return
            time.sleep(0.25)
        raise AssertionError(f"Prometheus never satisfied {promql!r}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    fake = FakeIstio()
    feed(fake)
    exporter = serve(lambda r: reply(r, 200, fake.exposition(), "text/plain; version=0.0.4"))
    directory = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": JOB,
                "static_configs": [{"targets": [f"127.0.0.1:{exporter.server_address[1]}"]}],
            }
        ],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (directory / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        running = Stack(fake, f"http://127.0.0.1:{port}")
        # Every window of W seconds must lie inside the scraped history.
        running.wait(f'count_over_time(up{{job="{JOB}"}}[1m])', lambda n: n >= 8)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        exporter.shutdown()
        exporter.server_close()


def near(found: float, expected: float, tolerance: float) -> bool:
    print(f"found {found:.4f}, expected {expected} ± {tolerance}")
    return abs(found - expected) <= tolerance


def one_sentence(exc: pytest.ExceptionInfo[ChaosMeshIstioError]) -> str:
    message = str(exc.value)
    print(message)
    assert "\n" not in message and message.strip() == message and message
    return message


# --- rates -------------------------------------------------------------------------------


def test_success_and_error_rates_match_the_fed_series(stack: Stack) -> None:
    control: dict[str, Any] = {"destination_service": "catalog", "group": "control", "window": W}
    assert near(metrics.success_rate(**control, configuration=stack.config), 0.8, 0.02)
    assert near(metrics.error_rate(**control, configuration=stack.config), 0.2, 0.02)
    experiment: dict[str, Any] = {
        "destination_service": "catalog",
        "group": "experiment",
        "window": W,
    }
    assert near(metrics.success_rate(**experiment, configuration=stack.config), 0.7, 0.02)
    assert near(metrics.error_rate(**experiment, configuration=stack.config), 0.3, 0.02)
    # Both groups together: 8 + 3.5 of 10 + 5 per second succeed.
    everyone = metrics.success_rate("catalog", namespace=NS, window=W, configuration=stack.config)
    assert near(everyone, 11.5 / 15, 0.02)


def test_filters_by_fqdn_namespace_and_source_workload(stack: Stack) -> None:
    fqdn = f"catalog.{NS}.svc.cluster.local"
    short = metrics.request_rate("catalog", group="control", window=W, configuration=stack.config)
    full = metrics.request_rate(fqdn, group="control", window=W, configuration=stack.config)
    assert near(full, short, 0.5)
    by_source = metrics.request_rate(
        "catalog",
        source_workload="frontend-v1",
        group="control",
        window=W,
        configuration=stack.config,
    )
    assert near(by_source, short, 0.5)
    with pytest.raises(Inconclusive):
        metrics.request_rate("catalog", namespace="elsewhere", window=W, configuration=stack.config)
    with pytest.raises(Inconclusive):
        metrics.request_rate(
            "catalog", source_workload="nobody", window=W, configuration=stack.config
        )


def test_request_rate_per_group_and_reporter(stack: Stack) -> None:
    rate = metrics.request_rate("catalog", group="control", window=W, configuration=stack.config)
    assert near(rate, 10, 1)
    rate = metrics.request_rate("catalog", group="experiment", window=W, configuration=stack.config)
    assert near(rate, 5, 0.5)
    rate = metrics.request_rate(
        "catalog", group="control", reporter="destination", window=W, configuration=stack.config
    )
    assert near(rate, 4, 0.4)
    # Prometheus' compound durations are windows too.
    rate = metrics.request_rate(
        "catalog", group="control", window="0m5s", configuration=stack.config
    )
    assert near(rate, 10, 1)


def test_latency_quantile_falls_in_the_fed_buckets(stack: Stack) -> None:
    control: dict[str, Any] = {"destination_service": "catalog", "group": "control", "window": W}
    p50 = metrics.latency_quantile(0.5, **control, configuration=stack.config)
    p99 = metrics.latency_quantile(0.99, **control, configuration=stack.config)
    print(f"control p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    assert 5 <= p50 <= 10 and 100 <= p99 <= 250
    slow = metrics.latency_quantile(
        0.99, "catalog", group="experiment", window=W, configuration=stack.config
    )
    print(f"experiment p99 {slow:.1f} ms")
    assert 1000 <= slow <= 2500


# --- faults ------------------------------------------------------------------------------


def test_fault_injected_requests_count_fi_and_di_of_the_experiment_group(stack: Stack) -> None:
    def count(kind: str, group: str) -> float:
        return metrics.fault_injected_requests(
            "catalog", group=group, kind=kind, window=W, configuration=stack.config
        )

    # Over 5 s: FI 1.5/s, DI 1/s, either 2/s (one series carries both flags).
    assert near(count("any", "experiment"), 10, 1.5)
    assert near(count("abort", "experiment"), 7.5, 1.2)
    assert near(count("delay", "experiment"), 5, 1)
    # URX and UT are not faults: the control group has traffic and 0 injected requests.
    assert count("any", "control") == 0.0


def test_series_that_appear_during_the_window_are_counted(stack: Stack) -> None:
    # A burst of 20 aborts creates a new series whose first scrape already reads 20:
    # increase() alone sees no growth, the probes count the 20.
    stack.fake.add(istio_labels("payments", "experiment", code="503", flags="FI"), 0, 20)
    stack.wait(
        'count_over_time(istio_requests_total{destination_service_name="payments"}[10s])',
        lambda n: n >= 2,
    )
    plain = metrics.prometheus_query(
        'sum(increase(istio_requests_total{destination_service_name="payments"}[10s]))',
        configuration=stack.config,
    )
    counted = metrics.fault_injected_requests(
        "payments", group="experiment", window="10s", configuration=stack.config
    )
    print(f"increase() alone: {plain}, counted: {counted}")
    assert plain == 0.0 and counted == 20.0
    assert metrics.fault_fired(
        "payments", window="10s", min_requests=20, configuration=stack.config
    )


def test_fault_fired_when_the_experiment_group_saw_the_fault(stack: Stack) -> None:
    assert metrics.fault_fired("catalog", namespace=NS, window=W, configuration=stack.config)


def test_fault_fired_needs_min_requests(stack: Stack) -> None:
    with pytest.raises(Inconclusive) as exc:
        metrics.fault_fired("catalog", window=W, min_requests=1000, configuration=stack.config)
    assert "fewer than min_requests=1000" in one_sentence(exc)


def test_fault_not_fired_with_experiment_traffic_blames_the_header(stack: Stack) -> None:
    with pytest.raises(Inconclusive) as exc:
        metrics.fault_fired("reviews", window=W, configuration=stack.config)
    message = one_sentence(exc)
    assert "header not propagated to the faulted hop" in message
    assert "route selection did not cover the traffic" in message
    assert "config propagation can take seconds" in message


def test_fault_not_fired_without_experiment_traffic_says_so(stack: Stack) -> None:
    with pytest.raises(Inconclusive) as exc:
        metrics.fault_fired("ratings", window=W, configuration=stack.config)
    message = one_sentence(exc)
    assert "no experiment traffic reached 'ratings'" in message
    assert "dropped by an intermediate service" in message
    assert "config propagation can take seconds" in message


def test_fault_not_fired_without_any_data_says_no_data(stack: Stack) -> None:
    with pytest.raises(Inconclusive) as exc:
        metrics.fault_fired("nowhere", window=W, configuration=stack.config)
    message = one_sentence(exc)
    assert message.startswith("no data") and "config propagation can take seconds" in message


# --- prometheus_query --------------------------------------------------------------------


def test_prometheus_query_scalar_and_single_series(stack: Stack) -> None:
    assert metrics.prometheus_query("scalar(vector(42)) / 2", configuration=stack.config) == 21
    assert metrics.prometheus_query(f'up{{job="{JOB}"}}', configuration=stack.config) == 1
    assert metrics.prometheus_query("1 + 1", configuration=stack.config) == 2


def test_prometheus_query_refuses_ambiguous_answers(stack: Stack) -> None:
    with pytest.raises(MetricsError) as exc:
        metrics.prometheus_query(
            'istio_requests_total{destination_service_name="catalog"}', configuration=stack.config
        )
    assert "aggregate them into one" in one_sentence(exc)
    with pytest.raises(MetricsError) as exc:
        metrics.prometheus_query("up[1m]", configuration=stack.config)
    assert f"Prometheus at {stack.url} answered the query 'up[1m]' with a range vector" in (
        one_sentence(exc)
    )
    with pytest.raises(MetricsError) as exc:
        metrics.prometheus_query("sum(", configuration=stack.config)
    message = one_sentence(exc)
    assert stack.url in message and "rejected the query 'sum('" in message


# --- no data is inconclusive, never 0 ----------------------------------------------------

NO_DATA: list[tuple[str, Callable[..., float]]] = [
    ("success_rate", metrics.success_rate),
    ("error_rate", metrics.error_rate),
    ("latency_quantile", lambda **kw: metrics.latency_quantile(0.9, **kw)),
    ("request_rate", metrics.request_rate),
    ("fault_injected_requests", metrics.fault_injected_requests),
]


@pytest.mark.parametrize(("name", "probe"), NO_DATA, ids=[n for n, _ in NO_DATA])
def test_no_series_is_inconclusive(stack: Stack, name: str, probe: Callable[..., float]) -> None:
    with pytest.raises(Inconclusive) as exc:
        probe(destination_service="nowhere", group="control", window=W, configuration=stack.config)
    message = one_sentence(exc)
    assert message.startswith(f"no data for {name}")
    assert 'destination_service_name="nowhere"' in message and 'chaos_group="control"' in message


@pytest.mark.parametrize("probe", ["success_rate", "error_rate", "latency_quantile"])
def test_series_without_requests_in_the_window_are_inconclusive(stack: Stack, probe: str) -> None:
    # 0 requests / 0 requests is NaN in Prometheus: that is no data, not a 0% success rate.
    with pytest.raises(Inconclusive):
        getattr(metrics, probe)(destination_service="idle", window=W, configuration=stack.config)


def test_a_request_rate_of_zero_is_a_measurement(stack: Stack) -> None:
    assert metrics.request_rate("idle", window=W, configuration=stack.config) == 0.0


def test_prometheus_query_without_data_is_inconclusive(stack: Stack) -> None:
    for empty in ('istio_requests_total{destination_service_name="nowhere"}', "0 / 0"):
        with pytest.raises(Inconclusive) as exc:
            metrics.prometheus_query(empty, configuration=stack.config)
        assert "returned no data" in one_sentence(exc)


def test_label_values_are_escaped(stack: Stack) -> None:
    for odd in ('cat"alog', "cat\\alog", "cat\nalog", "x'}) or vector(1) #"):
        with pytest.raises(Inconclusive):
            metrics.request_rate(odd, window=W, configuration=stack.config)


# --- bad input: one sentence, before any request -----------------------------------------

# Validation happens before any request, so a closed port must never be reached.
CLOSED = {"prometheus_url": "http://127.0.0.1:9"}

PROBES: dict[str, Callable[..., Any]] = {
    "success_rate": metrics.success_rate,
    "error_rate": metrics.error_rate,
    "latency_quantile": metrics.latency_quantile,
    "request_rate": metrics.request_rate,
    "fault_injected_requests": metrics.fault_injected_requests,
    "fault_fired": metrics.fault_fired,
}
BAD_COMMON: list[tuple[dict[str, Any], str]] = [
    ({"group": "canary"}, "group must be 'control' or 'experiment' or null, got 'canary'"),
    ({"window": "5 s"}, "window must be a Prometheus duration"),
    ({"window": "-1m"}, "got '-1m'"),
    ({"window": "abc"}, "got 'abc'"),
    ({"window": "0s"}, "above zero"),
    ({"window": 60}, "got 60"),
    ({"destination_service": ""}, "destination_service must be a service name"),
    ({"namespace": "Shop"}, "namespace must be a Kubernetes namespace name"),
]
BAD_INPUT = (
    [
        pytest.param(name, args, expected, id=f"{name}-{expected[:24]}")
        for name in PROBES
        for args, expected in BAD_COMMON
    ]
    + [
        pytest.param(
            name, {"reporter": "both"}, "reporter must be 'source' or 'destination'", id=name
        )
        for name in ("success_rate", "error_rate", "latency_quantile", "request_rate")
    ]
    + [
        pytest.param(
            "latency_quantile", {"quantile": q}, "quantile must be a number between 0 and 1"
        )
        for q in (0, 1, 1.5, -0.5, "0.9", True)
    ]
    + [
        pytest.param(
            "fault_injected_requests", {"kind": "crash"}, "kind must be 'abort' or 'delay'"
        ),
        pytest.param("fault_fired", {"min_requests": 0}, "min_requests must be a whole number"),
        pytest.param("fault_fired", {"min_requests": 1.5}, "min_requests must be a whole number"),
        pytest.param("fault_fired", {"wait": "soon"}, "wait 'soon' is not a duration"),
        pytest.param("fault_fired", {"wait": 20}, "wait 20 is not a duration"),
        pytest.param(
            "success_rate", {"source_workload": ""}, "source_workload must be a workload name"
        ),
    ]
)


@pytest.mark.parametrize(("name", "args", "expected"), BAD_INPUT)
def test_bad_input_is_one_clear_sentence(name: str, args: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        PROBES[name](**args, configuration=CLOSED)
    assert expected in one_sentence(exc)


def test_prometheus_query_needs_a_query() -> None:
    for query in ("", "   ", None, 42):
        with pytest.raises(InvalidArgument) as exc:
            metrics.prometheus_query(query, configuration=CLOSED)  # type: ignore[arg-type]
        assert "query must be a non-empty PromQL expression" in one_sentence(exc)


BAD_SETTINGS: list[tuple[dict[str, Any] | None, dict[str, Any] | None, str]] = [
    (None, None, "prometheus_url is not configured"),
    ({}, None, "prometheus_url is not configured"),
    ({"prometheus_url": "localhost:9090"}, None, "must be an http(s) URL"),
    ({"prometheus_url": "http://:9090"}, None, "must be an http(s) URL"),
    ({"prometheus_url": "http://h:99999"}, None, "must be an http(s) URL"),
    ({**CLOSED, "prometheus_timeout": 0}, None, "prometheus_timeout must be a number"),
    ({**CLOSED, "prometheus_timeout": "soon"}, None, "prometheus_timeout must be a number"),
    ({**CLOSED, "prometheus_verify_tls": "/no/such/ca.pem"}, None, "prometheus_verify_tls"),
    ({**CLOSED, "chaosmesh_group_label": "chaos-group"}, None, "chaosmesh_group_label"),
    (CLOSED, {"prometheus_token": "t", "prometheus_username": "u"}, "not both"),
    (CLOSED, {"prometheus_username": "u"}, "must both be set"),
    (CLOSED, {"prometheus_token": ""}, "prometheus_token secret must be a non-empty string"),
]


@pytest.mark.parametrize(("configuration", "secrets", "expected"), BAD_SETTINGS)
def test_bad_settings_are_one_clear_sentence(
    configuration: dict[str, Any] | None, secrets: dict[str, Any] | None, expected: str
) -> None:
    with pytest.raises(InvalidArgument) as exc:
        metrics.request_rate(group="control", configuration=configuration, secrets=secrets)
    assert expected in one_sentence(exc)


def test_unreachable_prometheus_names_the_url_and_not_the_token() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for probe in PROBES.values():
        with pytest.raises(MetricsError) as exc:
            probe(
                configuration={"prometheus_url": url, "prometheus_timeout": 2},
                secrets={"prometheus_token": "s3cr3t-token"},
            )
        message = one_sentence(exc)
        assert f"could not reach Prometheus at {url}" in message
        assert "s3cr3t" not in message


def test_a_password_in_the_url_stays_out_of_messages() -> None:
    url = f"http://admin:hunter2@127.0.0.1:{free_port()}/prom/"
    with pytest.raises(MetricsError) as exc:
        metrics.prometheus_query("1", configuration={"prometheus_url": url})
    message = one_sentence(exc)
    assert "hunter2" not in message and "http://127.0.0.1:" in message


# --- credentials and odd servers ---------------------------------------------------------


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[dict[str, str]], list[tuple[int, str]]]]:
    """A fake Prometheus API: records request headers, answers the queued replies."""
    seen: list[dict[str, str]] = []
    replies: list[tuple[int, str]] = []

    def answer(request: http.server.BaseHTTPRequestHandler) -> None:
        seen.append(dict(request.headers))
        status, body = replies.pop(0) if replies else (200, SCALAR)
        reply(request, status, body, "application/json")

    server = serve(answer)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen, replies
    finally:
        server.shutdown()
        server.server_close()


SCALAR = json.dumps({"status": "success", "data": {"resultType": "scalar", "result": [0, "3.5"]}})


def test_bearer_token_and_basic_auth_are_sent(
    recorder: tuple[str, list[dict[str, str]], list[tuple[int, str]]],
) -> None:
    url, seen, _ = recorder
    config = {"prometheus_url": url}
    assert metrics.prometheus_query("x", config, {"prometheus_token": "tok"}) == 3.5
    assert seen[-1]["Authorization"] == "Bearer tok"
    secrets = {"prometheus_username": "u", "prometheus_password": "p"}
    assert metrics.prometheus_query("x", config, secrets) == 3.5
    assert seen[-1]["Authorization"] == "Basic dTpw"
    metrics.prometheus_query("x", config)
    assert "Authorization" not in seen[-1]


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, "Unauthorized", "refused the credentials (HTTP 401)"),
        (403, "{}", "refused the credentials (HTTP 403)"),
        (502, "<html>\nbad gateway\n</html>", "answered HTTP 502 without the Prometheus API"),
        (200, "[]", "answered HTTP 200 without the Prometheus API"),
        (
            422,
            json.dumps({"status": "error", "errorType": "execution", "error": "too\nmany"}),
            "rejected the query 'x': too many",
        ),
        (
            200,
            json.dumps({"status": "success", "data": {"resultType": "string", "result": []}}),
            "with a 'string' result",
        ),
    ],
)
def test_server_errors_are_one_sentence_without_the_token(
    recorder: tuple[str, list[dict[str, str]], list[tuple[int, str]]],
    status: int,
    body: str,
    expected: str,
) -> None:
    url, _, replies = recorder
    replies.append((status, body))
    with pytest.raises(MetricsError) as exc:
        metrics.prometheus_query("x", {"prometheus_url": url}, {"prometheus_token": "s3cr3t-token"})
    message = one_sentence(exc)
    assert expected in message and url in message
    assert "s3cr3t" not in message


def test_slow_prometheus_times_out_with_one_sentence() -> None:
    release = threading.Event()

    def late(request: http.server.BaseHTTPRequestHandler) -> None:
        release.wait(5)
        reply(request, 200, SCALAR, "application/json")

    server = serve(late)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(MetricsError) as exc:
            metrics.prometheus_query("x", {"prometheus_url": url, "prometheus_timeout": "0.3"})
        assert f"Prometheus at {url} did not answer within 0.3s" in one_sentence(exc)
    finally:
        release.set()
        server.shutdown()
        server.server_close()


# --- against the local mesh --------------------------------------------------------------


def mesh_get(url: str, group: str, headers: dict[str, str] | None = None) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False
        return session.get(url, headers={"x-chaos-group": group, **(headers or {})}, timeout=10)


def eventually(probe: Callable[[], Any], timeout: float = 20) -> Any:
    """The probe's answer once Prometheus scraped the requests (it scrapes every second)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return probe()
        except Inconclusive:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_request_rate_on_the_local_mesh(full_mesh: Any) -> None:
    for _ in range(10):
        assert mesh_get(f"{full_mesh.ingress_url}/product/1", "control").status_code == 200
    config = {"prometheus_url": full_mesh.prometheus_url}
    rate = eventually(
        lambda: metrics.request_rate(
            destination_service="catalog", group="control", configuration=config
        )
    )
    print(f"catalog control request rate {rate:.3f}/s")
    assert rate > 0
    assert metrics.success_rate("catalog", group="control", configuration=config) == 1.0


def test_fault_fired_on_the_local_mesh(full_mesh: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from chaosmesh_istio import actions  # noqa: PLC0415 - only this test needs the kube layer

    monkeypatch.setenv("KUBECONFIG", str(full_mesh.kubeconfig))
    run = {"chaosmesh_run_id": "metrics-fired"}
    injected = actions.inject_abort("catalog", status=503, configuration=run)
    try:
        time.sleep(0.3)  # the push reaches the data plane in tens of milliseconds
        header = {injected["header"]: injected["header_value"]}
        for _ in range(5):
            mesh_get(f"{full_mesh.ingress_url}/product/1", "experiment", header)
    finally:
        actions.remove_faults("catalog", configuration=run)
    config = {"prometheus_url": full_mesh.prometheus_url}
    # A burst of aborts on a fresh series: counted although increase() alone sees none.
    assert eventually(lambda: metrics.fault_fired("catalog", min_requests=5, configuration=config))
    count = metrics.fault_injected_requests(
        "catalog", group="experiment", kind="abort", configuration=config
    )
    assert count == 5


def test_fault_fired_waits_for_delayed_requests_to_end(
    full_mesh: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A delayed request is counted when it ends: right after the injection there is nothing
    # to see yet, and `wait` asks again until the delayed requests have ended.
    from chaosmesh_istio import actions  # noqa: PLC0415 - only this test needs the kube layer

    monkeypatch.setenv("KUBECONFIG", str(full_mesh.kubeconfig))
    run = {"chaosmesh_run_id": "metrics-wait"}
    config = {"prometheus_url": full_mesh.prometheus_url}
    group = "experiment"
    injected = actions.inject_delay("reviews", delay="2s", configuration=run)
    header = {injected["header"]: injected["header_value"]}
    url = f"{full_mesh.ingress_url}/product/1"
    senders = [
        threading.Thread(target=mesh_get, args=(url, group, header), daemon=True) for _ in range(3)
    ]
    try:
        time.sleep(0.3)  # the push reaches the data plane in tens of milliseconds
        for sender in senders:
            sender.start()
        with pytest.raises(Inconclusive):
            metrics.fault_fired("reviews", group=group, window="5s", configuration=config)
        started = time.monotonic()
        assert metrics.fault_fired(
            "reviews", group=group, window="5s", wait="20s", configuration=config
        )
        assert time.monotonic() - started < 20
    finally:
        for sender in senders:
            sender.join(timeout=15)
        actions.remove_faults("reviews", configuration=run)
