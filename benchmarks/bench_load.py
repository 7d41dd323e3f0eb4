"""Load generation: constant throughput, Locust vs wrk, and whether the mesh keeps up.

- constant throughput: `start_load(target_rps=200)` for 10 s; achieved / target.
- one Locust process (the bundled locustfile, both groups, no pacing) vs `wrk` against the
  same endpoint (ratings, direct), one after the other.
- the data plane must sustain at least 0.8x what Locust generates: wrk through the proxy,
  measured in the same run, over Locust's rate.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

from benchmarks.common import Result, wrk
from benchmarks.mesh import BenchMesh
from chaosmesh_istio import actions

__all__ = ["run"]

TARGET_RPS = 200
SECONDS = 10


def _locust(mesh: BenchMesh, run_id: str, reports: str, **load: Any) -> float:
    config = mesh.config(run_id, chaosmesh_reports_dir=reports)
    actions.start_load(
        mesh.direct, duration=f"{SECONDS}s", paths=[{"path": "/ratings/1"}],
        configuration=config, **load,
    )  # fmt: skip
    time.sleep(SECONDS + 1)
    summary = actions.stop_load(configuration=config)
    rps = summary["groups"]["all"]["rps"]
    if not rps:
        raise RuntimeError(f"Locust sent nothing: {summary}")
    return float(rps)


def run(mesh: BenchMesh) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="bench-load-") as reports:
        paced = _locust(mesh, "bench-paced", reports, users=10, target_rps=TARGET_RPS)
        # A target far above what one process can do: every user sends back to back.
        flat_out = _locust(mesh, "bench-max", reports, users=32, target_rps=100_000)
    rps_wrk = wrk(mesh.direct_url)
    rps_proxy = wrk(mesh.proxied_url, host="ratings")
    ratio = paced / TARGET_RPS
    return [
        Result(
            "load: constant throughput",
            f"{paced:.1f} of {TARGET_RPS} req/s ({ratio:.3f})",
            "reported",
            True,
            f"10 users, {SECONDS} s",
        ),
        Result(
            "load: one Locust process vs wrk",
            f"{flat_out:,.0f} vs {rps_wrk:,.0f} req/s ({flat_out / rps_wrk:.2f}x)",
            "reported",
            True,
            "same endpoint (ratings, direct); Locust: 32 users, bundled locustfile",
        ),
        Result(
            "data plane sustains Locust's rate",
            f"{rps_proxy:,.0f} / {flat_out:,.0f} req/s = {rps_proxy / flat_out:.2f}x",
            ">= 0.8x",
            rps_proxy >= 0.8 * flat_out,
            "wrk through the proxy vs one Locust process",
        ),
    ]
