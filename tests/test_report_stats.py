"""Control vs experiment statistics: exact values, brute-force properties, the report section."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chaosmesh_istio.report import facts
from chaosmesh_istio.report.stats import (
    cliffs_magnitude,
    compare_groups,
    fisher_exact,
    mann_whitney_hist,
    proportion_difference,
    render_comparison_html,
)

T0 = 1_700_000_000.0
NASTY = "<script>alert(1)</script>"
CONTROL_HIST = {"10": 20, "12": 10}
DELAYED_HIST = {"510": 20, "515": 10}


def _brute_fisher(a: int, b: int, c: int, d: int) -> float:
    """Sum of the exact (integer) hypergeometric terms no likelier than the observed one."""
    row1, row2, col1 = a + b, c + d, a + c
    lo, hi = max(0, col1 - row2), min(row1, col1)
    terms, left, right = {}, math.comb(row1, lo), math.comb(row2, col1 - lo)
    for x in range(lo, hi + 1):
        terms[x] = left * right
        # C(row1, x + 1) and C(row2, col1 - x - 1), exactly, from the previous pair.
        left = left * (row1 - x) // (x + 1)
        right = right * (col1 - x) // (row2 - col1 + x + 1) if x < hi else right
    # The same relative tie tolerance as R's fisher.test, in exact arithmetic.
    kept = sum(t for t in terms.values() if t * 10**7 <= terms[a] * (10**7 + 1))
    return float(Fraction(kept, math.comb(row1 + row2, col1)))


def _expand(hist: Mapping[int, int]) -> list[int]:
    return [value for value, count in hist.items() for _ in range(count)]


def _brute_mann_whitney(x: list[int], y: list[int]) -> tuple[float, float, float]:
    """U, Cliff's delta and the asymptotic p-value, from ranks of the pooled sample."""
    pooled = sorted(x + y)
    first = {v: pooled.index(v) + 1 for v in set(pooled)}
    ties = Counter(pooled)
    rank = {v: first[v] + (ties[v] - 1) / 2 for v in ties}
    n_x, n_y, n = len(x), len(y), len(pooled)
    u = sum(rank[v] for v in x) - n_x * (n_x + 1) / 2
    delta = sum((yv > xv) - (yv < xv) for xv in x for yv in y) / (n_x * n_y)
    tie_term = sum(t**3 - t for t in ties.values())
    variance = n_x * n_y / 12 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if variance <= 0:
        return u, delta, 1.0
    z = (max(u, n_x * n_y - u) - n_x * n_y / 2 - 0.5) / math.sqrt(variance)
    return u, delta, min(1.0, math.erfc(z / math.sqrt(2)))


# --- Fisher's exact test ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ((8, 2, 1, 5), 0.034965034965034975),
        ((3, 1, 1, 3), 0.4857142857142857),  # Fisher's lady tasting tea
        ((6, 2, 1, 4), 0.10256410256410256),  # scipy's documentation
        ((0, 5, 5, 0), 2 / 252),
        ((30, 499970, 55, 499945), 0.008833351893061068),  # scipy and R
    ],
)
def test_fisher_exact_known_values(table: tuple[int, int, int, int], expected: float) -> None:
    assert fisher_exact(*table) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "table",
    [
        (400, 9600, 450, 9550),
        (318, 365, 304, 352),
        (2500, 2500, 2610, 2390),
        (3189, 3653, 3040, 3526),
        (1, 9999, 40, 9960),
    ],
)
def test_fisher_exact_matches_the_exact_sum_on_large_tables(
    table: tuple[int, int, int, int],
) -> None:
    assert fisher_exact(*table) == pytest.approx(_brute_fisher(*table), rel=1e-12)


def test_fisher_exact_is_exact_for_a_million_requests() -> None:
    # Margins (500000, 500000) and 3 failures: the two extreme tables, 2 * C(5e5, 3) / C(1e6, 3).
    exact = Fraction(2 * math.comb(500_000, 3), math.comb(1_000_000, 3))
    assert fisher_exact(0, 500_000, 3, 499_997) == pytest.approx(float(exact), rel=1e-13)
    assert fisher_exact(250_000, 250_000, 250_000, 250_000) == 1.0
    assert fisher_exact(1_000, 499_000, 0, 500_000) < 1e-290


@pytest.mark.parametrize("table", [(0, 0, 0, 0), (5, 0, 0, 0), (0, 7, 0, 3), (4, 4, 4, 4)])
def test_fisher_exact_is_one_without_evidence(table: tuple[int, int, int, int]) -> None:
    assert fisher_exact(*table) == 1.0


def test_fisher_exact_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match="negative"):
        fisher_exact(1, -1, 2, 3)


@settings(max_examples=300, deadline=None)
@given(st.tuples(*[st.integers(0, 30)] * 4))
def test_fisher_exact_property_matches_brute_force(table: tuple[int, int, int, int]) -> None:
    assert fisher_exact(*table) == pytest.approx(_brute_fisher(*table), rel=1e-11)


@settings(max_examples=100, deadline=None)
@given(st.tuples(*[st.integers(0, 20_000)] * 4))
def test_fisher_exact_ignores_the_orientation_of_the_table(
    table: tuple[int, int, int, int],
) -> None:
    a, b, c, d = table
    p = fisher_exact(a, b, c, d)
    assert 0.0 <= p <= 1.0
    for same in ((c, d, a, b), (b, a, d, c), (a, c, b, d)):
        assert fisher_exact(*same) == pytest.approx(p, rel=1e-9, abs=1e-300)


# --- Mann-Whitney U and Cliff's delta ------------------------------------------------------


def test_mann_whitney_known_values() -> None:
    # scipy's documentation: mannwhitneyu(males, females, method="asymptotic").
    result = mann_whitney_hist({19: 1, 22: 1, 16: 1, 29: 1, 24: 1}, {20: 1, 11: 1, 17: 1, 12: 1})
    assert result.u == 17.0
    assert result.p_value == pytest.approx(0.11134688653314041, rel=1e-12)
    assert result.effect_size == pytest.approx(-0.7)
    assert (result.n_x, result.n_y) == (5, 4)
    tied = mann_whitney_hist({1: 1, 2: 2, 3: 3, 4: 1}, {3: 1, 4: 2, 5: 2, 6: 1})
    assert tied.u == 3.5
    assert tied.p_value == pytest.approx(0.012999854364387305, rel=1e-12)
    heavy = mann_whitney_hist({"12": 40, "15": 10}, {"12": 30, "15": 15, "40": 5})
    assert heavy.u == 975.0
    assert heavy.p_value == pytest.approx(0.01812683017055133, rel=1e-12)


def test_mann_whitney_of_separated_and_equal_samples() -> None:
    apart = mann_whitney_hist({10: 5000}, {500: 5000})
    assert (apart.u, apart.effect_size) == (0.0, 1.0)
    assert apart.p_value < 1e-300
    same = mann_whitney_hist({10: 3, 11: 4}, {10: 3, 11: 4})
    assert (same.effect_size, same.p_value) == (0.0, 1.0)
    all_tied = mann_whitney_hist({7: 3}, {7: 2})
    assert (all_tied.u, all_tied.p_value, all_tied.effect_size) == (3.0, 1.0, 0.0)


@pytest.mark.parametrize(("x", "y"), [({}, {1: 1}), ({1: 1}, {2: 0}), ({1: -1}, {1: 1})], ids=str)
def test_mann_whitney_needs_two_nonempty_histograms(x: dict[int, int], y: dict[int, int]) -> None:
    with pytest.raises(ValueError, match="histogram"):
        mann_whitney_hist(x, y)


_HISTS = st.dictionaries(st.integers(0, 12), st.integers(1, 6), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(_HISTS, _HISTS)
def test_mann_whitney_property_matches_pairwise_brute_force(
    x_hist: dict[int, int], y_hist: dict[int, int]
) -> None:
    u, delta, p = _brute_mann_whitney(_expand(x_hist), _expand(y_hist))
    result = mann_whitney_hist(x_hist, y_hist)
    assert result.u == u
    assert result.effect_size == pytest.approx(delta, abs=1e-12)
    assert result.p_value == pytest.approx(p, rel=1e-9)


@settings(max_examples=200, deadline=None)
@given(_HISTS, _HISTS)
def test_swapping_the_groups_flips_the_effect(
    x_hist: dict[int, int], y_hist: dict[int, int]
) -> None:
    forward, backward = mann_whitney_hist(x_hist, y_hist), mann_whitney_hist(y_hist, x_hist)
    assert backward.effect_size == pytest.approx(-forward.effect_size, abs=1e-12)
    assert forward.u + backward.u == forward.n_x * forward.n_y
    assert backward.p_value == pytest.approx(forward.p_value, rel=1e-12)
    assert -1.0 <= forward.effect_size <= 1.0


@pytest.mark.parametrize(
    ("delta", "name"),
    [
        (0.0, "negligible"),
        (-0.146, "negligible"),
        (0.147, "small"),
        (-0.4, "medium"),
        (0.474, "large"),
        (-1.0, "large"),
    ],
)
def test_cliffs_magnitude(delta: float, name: str) -> None:
    assert cliffs_magnitude(delta) == name


# --- error-rate effect size ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "ci95"),
    # Newcombe (1998), Statistics in Medicine 17:873, table II, method 10.
    [((48, 80, 56, 70), (0.0524, 0.3339)), ((3, 10, 9, 10), (0.1705, 0.8090))],
)
def test_proportion_difference_newcombe_intervals(
    counts: tuple[int, int, int, int], ci95: tuple[float, float]
) -> None:
    result = proportion_difference(*counts)
    assert result.difference == pytest.approx(counts[2] / counts[3] - counts[0] / counts[1])
    assert result.ci95 == pytest.approx(ci95, abs=5e-5)


def test_proportion_difference_odds_ratio() -> None:
    assert proportion_difference(3, 10, 9, 10).odds_ratio == pytest.approx(21.0)
    # A zero cell: Haldane-Anscombe keeps the ratio finite (and 1 when nothing failed).
    assert proportion_difference(0, 100, 0, 100).odds_ratio == 1.0
    assert proportion_difference(0, 100, 50, 100).odds_ratio == pytest.approx(
        (50.5 * 100.5) / (50.5 * 0.5)
    )


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 500), st.integers(1, 500), st.data())
def test_proportion_difference_interval_properties(
    x_total: int, y_total: int, data: st.DataObject
) -> None:
    x_events = data.draw(st.integers(0, x_total))
    y_events = data.draw(st.integers(0, y_total))
    forward = proportion_difference(x_events, x_total, y_events, y_total)
    backward = proportion_difference(y_events, y_total, x_events, x_total)
    low, high = forward.ci95
    assert -1.0 <= low <= forward.difference <= high <= 1.0
    assert backward.difference == pytest.approx(-forward.difference)
    assert backward.ci95 == pytest.approx((-high, -low))
    assert backward.odds_ratio == pytest.approx(1 / forward.odds_ratio)


def test_proportion_difference_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError, match="events <= total"):
        proportion_difference(5, 4, 1, 10)
    with pytest.raises(ValueError, match="total > 0"):
        proportion_difference(0, 0, 1, 10)


# --- compare_groups ------------------------------------------------------------------------


def _iso(offset: float) -> str:
    return datetime.fromtimestamp(T0 + offset, UTC).replace(tzinfo=None).isoformat()


def _activity(func: str, start: float, end: float) -> dict[str, Any]:
    return {
        "activity": {"type": "action", "name": func, "provider": {"type": "python", "func": func}},
        "status": "succeeded",
        "start": _iso(start),
        "end": _iso(end),
    }


JOURNAL = {
    "run": [_activity("inject_delay", 0, 1)],
    "rollbacks": [_activity("remove_faults", 61, 62)],
}


def _series(
    experiment_hist: Mapping[str, int], experiment_failures: int = 0, control_failures: int = 0
) -> list[dict[str, Any]]:
    """80 s of load, 30 requests/s per group; the experiment differs inside [T0+1, T0+61)."""
    lines: list[dict[str, Any]] = []
    for second in range(-10, 71):
        faulted = 1 <= second < 61
        lines.append(_line(second, "control", 30, control_failures, CONTROL_HIST))
        hist = experiment_hist if faulted else CONTROL_HIST
        failures = experiment_failures if faulted else 0
        # Two Locust workers report the experiment group; their lines add up.
        half = {ms: count // 2 for ms, count in hist.items()}
        rest = {ms: count - half[ms] for ms, count in hist.items()}
        lines.append(_line(second, "experiment", 15, failures // 2, half, "w1"))
        lines.append(_line(second, "experiment", 15, failures - failures // 2, rest, "w2"))
    return lines


def _line(
    second: int, group: str, requests: int, failures: int, hist: Mapping[str, int], src: str = "w"
) -> dict[str, Any]:
    return {
        "t": T0 + second,
        "group": group,
        "requests": requests,
        "failures": failures,
        "hist": dict(hist),
        "source": src,
    }


def test_compare_groups_sees_a_clear_delay() -> None:
    result = compare_groups(JOURNAL, _series(DELAYED_HIST))
    assert result["available"] is True
    assert result["window"] == {"start": T0 + 1, "end": T0 + 61, "seconds": 60.0}
    assert result["groups"]["control"] == {
        "requests": 1800,
        "failures": 0,
        "error_rate": 0.0,
        "p50": 10.0,
        "p95": 12.0,
        "p99": 12.0,
    }
    assert result["groups"]["experiment"]["requests"] == 1800
    assert (result["groups"]["experiment"]["p50"], result["groups"]["experiment"]["p99"]) == (
        510.0,
        515.0,
    )
    latency = result["latency"]
    assert latency["test"] == "Mann-Whitney U"
    assert latency["u"] == 0.0
    assert latency["effect_size"] == 1.0
    assert latency["magnitude"] == "large"
    assert latency["significant"] is True
    assert latency["p_value"] < 1e-300
    assert latency["interpretation"] == (
        "experiment latency is higher than control (Cliff's delta 1.00, large; p < 1e-300)"
    )
    errors = result["error_rate"]
    assert errors["test"] == "Fisher's exact test"
    assert (errors["p_value"], errors["difference"], errors["significant"]) == (1.0, 0.0, False)
    assert errors["odds_ratio"] == 1.0
    assert errors["interpretation"].startswith("no significant error-rate difference")
    assert "1800 control and 1800 experiment requests" in result["confidence"]
    json.dumps(result, allow_nan=False)


def test_compare_groups_sees_aborted_requests() -> None:
    errors = compare_groups(JOURNAL, _series(CONTROL_HIST, experiment_failures=15))["error_rate"]
    assert errors["significant"] is True
    assert errors["p_value"] < 1e-100
    assert errors["difference"] == pytest.approx(0.5)
    low, high = errors["ci95"]
    assert 0.4 < low < 0.5 < high < 0.6
    assert errors["interpretation"].startswith(
        "experiment error rate is higher than control (50.0% vs 0.0%, +50.0 percentage points"
    )


def test_compare_groups_on_identical_groups_finds_nothing() -> None:
    result = compare_groups(JOURNAL, _series(CONTROL_HIST, 1, 1))
    assert result["available"] is True
    assert result["groups"]["control"] == result["groups"]["experiment"]
    assert (result["error_rate"]["significant"], result["latency"]["significant"]) == (
        False,
        False,
    )
    assert result["error_rate"]["p_value"] == 1.0
    assert result["latency"]["effect_size"] == 0.0
    assert result["latency"]["magnitude"] == "negligible"
    assert result["latency"]["interpretation"] == (
        "no significant latency difference between experiment and control"
        " (Cliff's delta 0.00, negligible; p = 1)"
    )


def test_compare_groups_without_an_end_uses_the_rest_of_the_series() -> None:
    result = compare_groups({"run": JOURNAL["run"]}, _series(DELAYED_HIST))
    assert result["window"]["end"] is None
    assert result["groups"]["control"]["requests"] == 70 * 30


def test_compare_groups_judges_whole_seconds_inside_the_window() -> None:
    # Injected at T0+0.5, removed at T0+60.5: seconds T0+1 to T0+59 lie wholly inside.
    journal = {
        "run": [_activity("inject_delay", 0, 0.5)],
        "rollbacks": [_activity("remove_faults", 60.5, 61)],
    }
    series = _series(DELAYED_HIST)
    result = compare_groups(journal, series)
    assert result["window"] == {"start": T0 + 0.5, "end": T0 + 60.5, "seconds": 59.0}
    assert result["groups"]["experiment"]["requests"] == 59 * 30
    during_fault = facts.window_groups(journal, series)
    for group in ("control", "experiment"):
        shown = {key: during_fault[group][key] for key in result["groups"][group]}
        assert result["groups"][group] == shown


@pytest.mark.parametrize(
    ("journal", "series", "reason"),
    [
        (JOURNAL, [], "no per-second load series"),
        (JOURNAL, None, "no per-second load series"),
        ({"run": []}, _series(DELAYED_HIST), "no fault window"),
        (
            JOURNAL,
            [line for line in _series(DELAYED_HIST) if line["group"] == "control"],
            "experiment group sent no requests",
        ),
        (
            JOURNAL,
            [
                line
                for line in _series(DELAYED_HIST)
                if line["t"] < T0 or line["group"] == "experiment"
            ],
            "control group sent no requests",
        ),
        (
            JOURNAL,
            [{**line, "hist": {}} for line in _series(DELAYED_HIST)],
            "control group has no response times",
        ),
    ],
)
def test_compare_groups_not_available(
    journal: Mapping[str, Any], series: list[dict[str, Any]] | None, reason: str
) -> None:
    result = compare_groups(journal, series)
    assert result["available"] is False
    assert reason in result["reason"]
    assert set(result) == {"available", "reason"}


# --- HTML ----------------------------------------------------------------------------------


def test_render_comparison_html_shows_the_tests() -> None:
    page = render_comparison_html(compare_groups(JOURNAL, _series(DELAYED_HIST)))
    assert page.startswith("<h2>Control vs experiment</h2>")
    assert "<table>" in page
    assert "Fisher&#x27;s exact test" in page
    assert "Mann-Whitney U" in page
    assert "p &lt; 1e-300" in page
    assert "<td>510</td>" in page


def test_render_comparison_html_escapes_every_value() -> None:
    comparison = compare_groups(JOURNAL, _series(DELAYED_HIST))
    comparison["confidence"] = NASTY
    comparison["groups"]["control"]["p50"] = NASTY
    comparison["error_rate"].update(test=NASTY, interpretation=NASTY, ci95=[NASTY, NASTY])
    comparison["latency"].update(magnitude=NASTY, u=NASTY, p_value=NASTY)
    page = render_comparison_html(comparison)
    assert "<script" not in page
    assert page.count("&lt;script&gt;") >= 8
    unavailable = render_comparison_html({"available": False, "reason": NASTY})
    assert "<script" not in unavailable
    assert unavailable == (
        "<h2>Control vs experiment</h2><p>No statistical comparison:"
        " &lt;script&gt;alert(1)&lt;/script&gt;.</p>"
    )


def test_render_comparison_html_uses_no_script_or_external_resource() -> None:
    page = render_comparison_html(compare_groups(JOURNAL, _series(DELAYED_HIST)))
    for forbidden in ("<script", "src=", "href=", "http", "<link", "<style"):
        assert forbidden not in page
