"""Load, Prometheus probes and Locust probes together on the local mesh (short, bounded loads)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import pytest

from chaosmesh_istio import actions, probes
from chaosmesh_istio.errors import Inconclusive

Z = 4.42  # a 99.999% interval: CI must not fail by chance


@pytest.fixture
def mesh_env(full_mesh: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Any]:
    monkeypatch.setenv("KUBECONFIG", str(full_mesh.kubeconfig))
    monkeypatch.chdir(tmp_path)  # reports/<run-id>/ lands in the test's directory
    yield full_mesh


def run_load(conf: dict[str, Any], host: str, seconds: float, **kwargs: Any) -> dict[str, Any]:
    actions.start_load(host, duration=f"{int(seconds) + 30}s", configuration=conf, **kwargs)
    try:
        time.sleep(seconds)
    finally:
        final = actions.stop_load(configuration=conf)
    return final


def test_a_30_percent_abort_hits_the_experiment_group_only_and_both_sources_agree(
    mesh_env: Any,
) -> None:
    conf = {"chaosmesh_run_id": "abort30", "prometheus_url": mesh_env.prometheus_url}
    # The ingress route: the abort reaches the client directly, with no fallback in between.
    actions.inject_abort("frontend-ingress", status=503, percentage=30, configuration=conf)
    try:
        time.sleep(0.3)
        final = run_load(conf, mesh_env.ingress_url, 6, users=6, paths=[{"path": "/product/1"}])
    finally:
        actions.remove_faults("frontend-ingress", configuration=conf)
    groups = final["groups"]
    experiment, control = groups["experiment"], groups["control"]
    n = experiment["requests"]
    assert n >= 100 and control["requests"] >= 100
    sigma = math.sqrt(0.3 * 0.7 / n)
    assert abs(experiment["error_rate"] - 0.3) <= Z * sigma, experiment
    assert control["failures"] == 0

    # Locust's numbers and Istio's, for the same requests at the ingress, agree.
    locust_rate = probes.load_success_rate("experiment", configuration=conf)
    time.sleep(2.5)  # the next scrapes
    prom_rate = probes.success_rate(
        destination_service="frontend", group="experiment", window="1m", configuration=conf
    )
    print(f"experiment success rate: Locust {locust_rate:.4f}, Prometheus {prom_rate:.4f}")
    assert abs(locust_rate - prom_rate) <= 0.02
    assert probes.success_rate(
        destination_service="frontend", group="control", window="1m", configuration=conf
    ) == pytest.approx(1.0)
    assert probes.fault_fired("frontend", group="experiment", configuration=conf) is True


def test_a_delay_below_a_caller_with_a_timeout_is_bounded_by_that_timeout(
    mesh_env: Any,
) -> None:
    conf = {"chaosmesh_run_id": "delay-bounded", "prometheus_url": mesh_env.prometheus_url}
    # frontend calls catalog with a 2 s timeout and falls back: a 3 s delay must not pass.
    actions.inject_delay("catalog", delay="3s", configuration=conf)
    try:
        time.sleep(0.3)
        run_load(conf, mesh_env.ingress_url, 7, users=4, paths=[{"path": "/product/1"}])
    finally:
        actions.remove_faults("catalog", configuration=conf)
    p99 = probes.load_latency_quantile("experiment", 0.99, configuration=conf)
    p50 = probes.load_latency_quantile("experiment", 0.5, configuration=conf)
    control_p99 = probes.load_latency_quantile("control", 0.99, configuration=conf)
    print(f"experiment p50 {p50} ms p99 {p99} ms, control p99 {control_p99} ms")
    assert 1900 <= p50 <= 2300  # the timeout, not the delay
    assert p99 <= 2300
    assert control_p99 < 500
    assert probes.load_success_rate("experiment", configuration=conf) == 1.0  # the fallback


def test_fault_fired_is_inconclusive_when_the_load_does_not_send_the_header(
    mesh_env: Any,
) -> None:
    conf = {"chaosmesh_run_id": "no-header", "prometheus_url": mesh_env.prometheus_url}
    actions.inject_abort("ratings", status=503, configuration=conf)
    try:
        time.sleep(0.3)
        # Deliberately the wrong header: the experiment group never carries the scope.
        run_load(
            conf, mesh_env.ingress_url, 4, users=4, header="x-not-the-scope",
            paths=[{"path": "/product/1"}],
        )  # fmt: skip
    finally:
        actions.remove_faults("ratings", configuration=conf)
    time.sleep(2.5)
    with pytest.raises(Inconclusive, match="header not propagated") as caught:
        probes.fault_fired("ratings", group="experiment", window="1m", configuration=conf)
    assert "\n" not in str(caught.value)
