"""Fault live and rollback: from the API call to what traffic sees on the data plane.

- fault live: `inject_abort` is called -> the first tagged request answered by the fault
  (HTTP 418) on the data plane; the clock includes argument checks, the read and the
  resourceVersion-guarded patch.
- rollback: `remove_faults` is called -> it returned (removal verified by reading back)
  and tagged requests are no longer faulted on the data plane; the later of the two.

Each over 50 injections, tagged requests polled back to back on a kept-alive connection.
"""

from __future__ import annotations

import time

import requests

from benchmarks.common import Result, percentile
from benchmarks.mesh import BenchMesh, wait_until
from chaosmesh_istio import actions

__all__ = ["run"]

ROUNDS = 50


def run(mesh: BenchMesh) -> list[Result]:
    live: list[float] = []
    gone: list[float] = []
    with requests.Session() as session:

        def status(run_id: str) -> int:
            return mesh.tagged_status(session, run_id)

        for n in range(ROUNDS):
            run_id = f"bench-live-{n}"
            config = mesh.config(run_id)
            started = time.perf_counter()
            actions.inject_abort("ratings", status=418, configuration=config)
            live.append(wait_until(lambda r=run_id: status(r) == 418) - started)

            started = time.perf_counter()
            actions.remove_faults("ratings", configuration=config)
            verified = time.perf_counter()
            seen = wait_until(lambda r=run_id: status(r) != 418)
            gone.append(max(verified, seen) - started)
    return [
        _result("fault live (write -> seen on data plane)", live, 0.200),
        _result("rollback (remove -> verified and gone)", gone, 0.250),
    ]


def _result(name: str, seconds: list[float], target: float) -> Result:
    p50, p99 = percentile(seconds, 0.5), percentile(seconds, 0.99)
    return Result(
        name,
        f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms",
        f"p99 <= {target * 1000:.0f} ms",
        p99 <= target,
        f"{len(seconds)} rounds",
    )
