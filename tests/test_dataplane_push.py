"""Config push: how fast an API write changes what the data plane does, measured by
requests through the proxy (not only by the version it reports)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import LocalMesh
from tests.dataplane_support import DataPlane, EchoFarm, run_dataplane

FAULT = {
    "hosts": ["reviews"],
    "http": [
        {
            "match": [{"headers": {"x-chaos-run": {"exact": "push"}}}],
            "fault": {"abort": {"httpStatus": 503, "percentage": {"value": 100}}},
            "route": [{"destination": {"host": "reviews"}}],
        },
        {"route": [{"destination": {"host": "reviews"}}]},
    ],
}
SCOPED = {"x-chaos-run": "push"}


@pytest.fixture(scope="module")
def dp(local_mesh: LocalMesh, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataPlane]:
    farm = EchoFarm(["reviews-v1"])
    try:
        farm.start()
        listeners = [
            {
                "name": "frontend",
                "port": 0,
                "gateway": "mesh",
                "workload": "frontend-v1",
                "namespace": "default",
                "labels": {"app": "frontend", "version": "v1"},
            },
        ]
        services: list[dict[str, Any]] = [
            {
                "name": "reviews",
                "namespace": "default",
                "instances": [
                    {
                        "address": farm["reviews-v1"].address,
                        "workload": "reviews-v1",
                        "labels": {"app": "reviews", "version": "v1"},
                    }
                ],
            },
        ]
        with run_dataplane(
            tmp_path_factory.mktemp("dataplane"), local_mesh, listeners, services
        ) as plane:
            yield plane
    finally:
        farm.stop()


def _until(dp: DataPlane, status: int, deadline: float) -> float:
    """Poll until a scoped request answers ``status``; the time it happened."""
    while time.perf_counter() < deadline:
        if dp.get("/", "reviews", headers=SCOPED).status_code == status:
            return time.perf_counter()
    raise AssertionError(f"the data plane did not answer {status} in time")


def _delete_fault(dp: DataPlane) -> None:
    url = f"{dp.api_url}/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews"
    assert dp.api.delete(url, timeout=5).status_code == 200


def test_write_to_live_latency(dp: DataPlane) -> None:
    on, off = [], []
    for _ in range(5):
        start = time.perf_counter()
        dp.apply("virtualservices", "reviews", FAULT, wait=False)
        on.append(_until(dp, 503, start + 5) - start)
        start = time.perf_counter()
        _delete_fault(dp)
        off.append(_until(dp, 200, start + 5) - start)
    print(
        f"\nwrite-to-live: inject median {statistics.median(on) * 1000:.1f} ms "
        f"(max {max(on) * 1000:.1f}), remove median {statistics.median(off) * 1000:.1f} ms "
        f"(max {max(off) * 1000:.1f})"
    )
    assert max(on + off) < 1.0


def test_removed_fault_stops_within_one_push(dp: DataPlane) -> None:
    dp.vs("reviews", FAULT)
    assert dp.get("/", "reviews", headers=SCOPED).status_code == 503
    _delete_fault(dp)
    listing = dp.api.get(f"{dp.api_url}/apis/networking.istio.io/v1/virtualservices", timeout=5)
    dp.wait_for(listing.json()["metadata"]["resourceVersion"])
    # The very next request after the version is live is unfaulted.
    assert dp.get("/", "reviews", headers=SCOPED).status_code == 200
    assert dp.get("/", "reviews").status_code == 200


def test_version_reports_the_applied_write(dp: DataPlane) -> None:
    rv = dp.apply("virtualservices", "reviews", FAULT, wait=False)
    state = dp.wait_for(rv)
    assert int(state["version"]) >= rv
    assert state["virtual_services"] == 1
    assert dp.get("/", "reviews", headers=SCOPED).status_code == 503
    _delete_fault(dp)
