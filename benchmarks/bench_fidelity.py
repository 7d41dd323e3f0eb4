"""Fault fidelity: does the data plane inject what the VirtualService says?

- abort: 30% HTTP 418 on the ratings hop; 10,000 tagged requests (32 concurrent). The count
  of aborted requests must fall inside the central 99% interval of Binomial(10000, 0.3).
- delay: 50 ms on 100%; 1,000 tagged requests (10 concurrent), each paired with an untagged
  one on the same hop; error = tagged - untagged - 50 ms; reported as p50/p99 of |error|.
"""

from __future__ import annotations

import asyncio
import math

import aiohttp

from benchmarks.common import Result, percentile
from benchmarks.mesh import BenchMesh
from chaosmesh_istio import actions

__all__ = ["binomial_interval", "run"]

REQUESTS = 10_000
SHARE = 0.3
DELAY_MS = 50
DELAY_REQUESTS = 1_000


def binomial_interval(n: int, p: float, level: float = 0.99) -> tuple[int, int]:
    """The central `level` interval [lo, hi] of Binomial(n, p), from its exact pmf."""
    tail = (1 - level) / 2

    def pmf(k: int) -> float:
        log = (
            math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p)
        )  # fmt: skip
        return math.exp(log)

    total, lo = 0.0, 0
    while total + pmf(lo) <= tail:
        total += pmf(lo)
        lo += 1
    total, hi = 0.0, n
    while total + pmf(hi) <= tail:
        total += pmf(hi)
        hi -= 1
    return lo, hi


async def _abort_counts(url: str, run_id: str) -> tuple[int, int]:
    headers = {"Host": "ratings", "x-chaos-run": run_id}
    counts = {"aborted": 0, "ok": 0}
    queue = iter(range(REQUESTS))
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            for _ in queue:
                async with session.get(url, headers=headers) as answer:
                    await answer.read()
                    counts["aborted" if answer.status == 418 else "ok"] += 1

        await asyncio.gather(*(worker() for _ in range(32)))
    return counts["aborted"], counts["ok"]


async def _delay_errors(url: str, run_id: str) -> list[float]:
    loop = asyncio.get_running_loop()
    errors: list[float] = []
    queue = iter(range(DELAY_REQUESTS))
    async with aiohttp.ClientSession() as session:

        async def timed(headers: dict[str, str]) -> float:
            started = loop.time()
            async with session.get(url, headers=headers) as answer:
                await answer.read()
                answer.raise_for_status()
            return (loop.time() - started) * 1000

        async def worker() -> None:
            for _ in queue:
                plain = await timed({"Host": "ratings"})
                tagged = await timed({"Host": "ratings", "x-chaos-run": run_id})
                errors.append(abs(tagged - plain - DELAY_MS))

        await asyncio.gather(*(worker() for _ in range(10)))
    return errors


def run(mesh: BenchMesh) -> list[Result]:
    config = mesh.config("bench-abort", chaosmesh_proxy_admin_urls=[mesh.info.admin_url])
    actions.inject_abort("ratings", status=418, percentage=SHARE * 100, configuration=config)
    try:
        aborted, ok = asyncio.run(_abort_counts(mesh.proxied_url, "bench-abort"))
    finally:
        actions.remove_faults("ratings", configuration=config)
    lo, hi = binomial_interval(REQUESTS, SHARE)

    config = mesh.config("bench-delay", chaosmesh_proxy_admin_urls=[mesh.info.admin_url])
    actions.inject_delay("ratings", delay=f"{DELAY_MS}ms", configuration=config)
    try:
        errors = asyncio.run(_delay_errors(mesh.proxied_url, "bench-delay"))
    finally:
        actions.remove_faults("ratings", configuration=config)
    return [
        Result(
            "fault fidelity: abort ratio",
            f"{aborted / (aborted + ok):.4f} ({aborted} of {aborted + ok})",
            f"99% interval [{lo / REQUESTS:.4f}, {hi / REQUESTS:.4f}]",
            lo <= aborted <= hi and aborted + ok == REQUESTS,
            f"{SHARE:.0%} abort, 32 concurrent",
        ),
        Result(
            "fault fidelity: delay error",
            f"p50 {percentile(errors, 0.5):.2f} ms, p99 {percentile(errors, 0.99):.2f} ms",
            "reported",
            True,
            f"{DELAY_MS} ms delay, {DELAY_REQUESTS} tagged vs untagged pairs, 10 concurrent",
        ),
    ]
