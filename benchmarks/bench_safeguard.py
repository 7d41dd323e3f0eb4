"""Safeguard reaction: a guard's condition turns bad -> the run's faults are gone.

The chaosmesh control runs in this process exactly as under `chaos run` (its guard thread
polls every `INTERVAL` s); the guard probe reads a flag this benchmark flips at a random
moment of the guard's cycle, so the reaction includes the wait for the next poll. The
reaction ends when tagged requests are no longer faulted on the data plane.
Target: p99 <= interval + 500 ms, over 20 breaches.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import requests

from benchmarks.common import Result, percentile
from benchmarks.mesh import BenchMesh, wait_until
from chaosmesh_istio import actions, controls

__all__ = ["healthy", "run"]

ROUNDS = 20
INTERVAL = 1.0
_BREACH = threading.Event()


def healthy() -> bool:
    """The guard probe: true until the benchmark starts a breach."""
    return not _BREACH.is_set()


def run(mesh: BenchMesh) -> list[Result]:
    guard = {
        "type": "probe",
        "name": "bench-guard",
        "tolerance": True,
        "provider": {"type": "python", "module": __name__, "func": "healthy"},
    }
    rng = random.Random(11)
    reactions: list[float] = []
    with requests.Session() as session:

        def status(run_id: str) -> int:
            return mesh.tagged_status(session, run_id)

        for n in range(ROUNDS):
            run_id = f"bench-guard-{n}"
            config = mesh.config(run_id)
            experiment: dict[str, Any] = {"title": f"safeguard reaction {n}", "method": []}
            _BREACH.clear()
            controls.configure_control(experiment, config)
            controls.before_experiment_control(
                experiment, configuration=config, safeguards=[guard], interval=INTERVAL,
                report=False,
            )  # fmt: skip
            controls.before_method_control(experiment)
            try:
                actions.inject_abort("ratings", status=418, configuration=config)
                wait_until(lambda r=run_id: status(r) == 418)
                time.sleep(rng.uniform(0, INTERVAL))
                started = time.perf_counter()
                _BREACH.set()
                reactions.append(
                    wait_until(lambda r=run_id: status(r) != 418, timeout=INTERVAL + 10) - started
                )
            finally:
                controls.after_method_control(experiment)
                controls.after_experiment_control(experiment, state={}, configuration=config)
                controls.cleanup_control()
    p50, p99 = percentile(reactions, 0.5), percentile(reactions, 0.99)
    bound = INTERVAL + 0.5
    return [
        Result(
            "safeguard reaction (breach -> faults gone)",
            f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms",
            f"p99 <= interval + 500 ms ({bound * 1000:.0f} ms)",
            p99 <= bound,
            f"{len(reactions)} breaches, guard interval {INTERVAL:g} s",
        )
    ]
