"""The benchmarks' own arithmetic: percentiles, the exact binomial interval, wrk's report,
the table. (The figures themselves are measured by `make bench`, never asserted here.)"""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.bench_fidelity import binomial_interval
from benchmarks.common import Result, parse_wrk, percentile, render_table

WRK_OK = """Running 5s test @ http://127.0.0.1:8080/ratings/1
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.20ms    1.10ms  30.00ms   90.00%
  30117 requests in 5.00s, 4.51MB read
Requests/sec:   6023.45
Transfer/sec:    923.12KB
"""


def _pmf(n: int, p: float, k: int) -> float:
    return math.comb(n, k) * p**k * (1 - p) ** (n - k)


@pytest.mark.parametrize(("n", "p"), [(10, 0.3), (50, 0.5), (200, 0.1), (1000, 0.3)])
def test_binomial_interval_is_the_central_99_percent(n: int, p: float) -> None:
    lo, hi = binomial_interval(n, p)
    below = sum(_pmf(n, p, k) for k in range(lo))
    above = sum(_pmf(n, p, k) for k in range(hi + 1, n + 1))
    # Each tail outside is at most 0.5%, and widening by one more value would break that.
    assert below <= 0.005 and above <= 0.005
    assert below + _pmf(n, p, lo) > 0.005
    assert above + _pmf(n, p, hi) > 0.005


def test_binomial_interval_of_the_benchmark() -> None:
    # 10,000 requests at 30%: mean 3000, sd 45.8; the 99% interval is about +-2.58 sd.
    lo, hi = binomial_interval(10_000, 0.3)
    assert 2875 <= lo <= 2885 and 3115 <= hi <= 3125


@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=200))
def test_percentile_matches_numpy_style_interpolation(values: list[float]) -> None:
    ordered = sorted(values)
    assert percentile(values, 0.5) == pytest.approx(statistics.median(values), abs=1e-6)
    assert min(ordered) - 1e-6 <= percentile(values, 0.99) <= max(ordered) + 1e-6
    assert percentile(values, 0.99) >= percentile(values, 0.5) - 1e-9


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_parse_wrk_reads_the_rate() -> None:
    assert parse_wrk(WRK_OK) == 6023.45


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("  Non-2xx or 3xx responses: 12\n", "12 answers were not 2xx/3xx"),
        ("  Socket errors: connect 0, read 3, write 0, timeout 0\n", "socket errors"),
    ],
)
def test_parse_wrk_refuses_a_run_with_failures(extra: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_wrk(WRK_OK + extra)


def test_parse_wrk_without_a_rate() -> None:
    with pytest.raises(ValueError, match="no Requests/sec"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_table_has_every_result_and_marks_misses() -> None:
    table = render_table(
        [
            Result("fault live", "p99 79 ms", "p99 <= 200 ms", True),
            Result("scale", "6.1 s", "<= 5 s", False, "200 VirtualServices"),
        ]
    )
    lines = table.splitlines()
    assert [cell.strip() for cell in lines[0].split("|")[1:-1]] == [
        "benchmark", "measured", "target", "met", "detail"
    ]  # fmt: skip
    assert len(lines) == 4 and set(lines[1]) <= {"|", "-"}
    assert [cell.strip() for cell in lines[2].split("|")[1:-1]] == [
        "fault live", "p99 79 ms", "p99 <= 200 ms", "yes", ""
    ]  # fmt: skip
    assert [cell.strip() for cell in lines[3].split("|")[1:-1]] == [
        "scale", "6.1 s", "<= 5 s", "NO", "200 VirtualServices"
    ]  # fmt: skip
    assert len({len(line) for line in lines}) == 1  # aligned columns
