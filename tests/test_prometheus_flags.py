"""Istio's metrics in the real Prometheus show a header-scoped abort in the header group only."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from chaosmesh_istio import actions

RUN = {"chaosmesh_run_id": "prom-flags"}


def query(prometheus: str, promql: str) -> dict[str, float]:
    answer = requests.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=5)
    answer.raise_for_status()
    return {
        r["metric"].get("chaos_group", ""): float(r["value"][1])
        for r in answer.json()["data"]["result"]
    }


def wait_for(prometheus: str, promql: str, expected: dict[str, float]) -> dict[str, float]:
    """The query's result once Prometheus scraped the requests (scrapes are 1 s apart)."""
    deadline = time.monotonic() + 15
    found: dict[str, float] = {}
    while time.monotonic() < deadline:
        found = query(prometheus, promql)
        if found == expected:
            break
        time.sleep(0.5)
    return found


def test_abort_flags_appear_only_for_the_header_group(
    full_mesh: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(full_mesh.kubeconfig))
    injected = actions.inject_abort("catalog", status=503, configuration=RUN)
    try:
        time.sleep(0.3)  # the push reaches the data plane in tens of milliseconds
        session = requests.Session()
        session.trust_env = False
        for _ in range(20):
            tagged = session.get(
                f"{full_mesh.ingress_url}/product/1",
                headers={
                    injected["header"]: injected["header_value"],
                    "x-chaos-group": "experiment",
                },
                timeout=10,
            )
            assert tagged.status_code == 200 and tagged.json()["degraded"] is True
            assert tagged.json()["cause"]["catalog_status"] == 503
            plain = session.get(
                f"{full_mesh.ingress_url}/product/1",
                headers={"x-chaos-group": "control"},
                timeout=10,
            )
            assert plain.status_code == 200 and plain.json()["degraded"] is False
    finally:
        actions.remove_faults("catalog", configuration=RUN)

    selector = 'reporter="source", destination_service_name="catalog"'
    flagged = wait_for(
        full_mesh.prometheus_url,
        f'sum by (chaos_group) (istio_requests_total{{{selector}, response_flags="FI"}})',
        {"experiment": 20.0},
    )
    assert flagged == {"experiment": 20.0}
    healthy = wait_for(
        full_mesh.prometheus_url,
        f'sum by (chaos_group) (istio_requests_total{{{selector}, response_code="200"}})',
        {"control": 20.0},
    )
    assert healthy == {"control": 20.0}
    # The abort happened at the caller's sidecar: catalog's own sidecar never saw those.
    reached = query(
        full_mesh.prometheus_url,
        'sum by (chaos_group) (istio_requests_total{reporter="destination", '
        'destination_service_name="catalog"})',
    )
    assert "experiment" not in reached
