"""Control vs experiment in the fault window: is the difference real, and how large is it?

Pure: no I/O, plain `math`. Error rates are compared with Fisher's exact test, a difference of
proportions (Newcombe's interval) and the odds ratio; latencies with the Mann-Whitney U test
and Cliff's delta, straight from Locust's histograms (no per-request expansion).

The hypergeometric probabilities use Loader's saddle-point formulas (as R's ``dhyper``) rather
than ``lgamma`` differences, which lose about 1e-9 of relative precision at a million requests.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaosmesh_istio.load_series import Totals, stats_of, totals_from_series
from chaosmesh_istio.report import facts

__all__ = [
    "ALPHA",
    "MannWhitney",
    "ProportionDifference",
    "cliffs_magnitude",
    "compare_groups",
    "fisher_exact",
    "mann_whitney_hist",
    "proportion_difference",
    "render_comparison_html",
]

ALPHA = 0.01
_Z95 = 1.959963984540054
# R's fisher.test: tables whose probability is within this relative distance of the observed
# one count as "as extreme", so that floating-point noise does not split exact ties.
_TIE_TOLERANCE = 1e-7
# A tail remainder below this share of the running sum cannot change a double.
_NEGLIGIBLE = 1e-17
_TINY_P = 1e-300
_LN_2PI = math.log(2 * math.pi)
_STIRLING = (1 / 12, 1 / 360, 1 / 1260, 1 / 1680, 1 / 1188)
_MAGNITUDES = ((0.147, "negligible"), (0.33, "small"), (0.474, "medium"))
_STAT_KEYS = ("requests", "failures", "error_rate", "p50", "p95", "p99")
_FIGURE_ROWS = (
    ("requests", "requests", "g"),
    ("failures", "failures", "g"),
    ("error_rate", "error rate", ".2%"),
    ("p50", "p50 (ms)", "g"),
    ("p95", "p95 (ms)", "g"),
    ("p99", "p99 (ms)", "g"),
)


@dataclass(frozen=True)
class MannWhitney:
    """The Mann-Whitney U test of samples x and y.

    ``u`` counts the pairs where x > y (ties count half), as scipy's ``mannwhitneyu(x, y)``;
    ``effect_size`` is Cliff's delta P(Y > X) - P(Y < X), the rank-biserial correlation.
    """

    u: float
    p_value: float
    effect_size: float
    n_x: int
    n_y: int


@dataclass(frozen=True)
class ProportionDifference:
    """p_y - p_x with Newcombe's 95% interval, and the odds ratio of y against x."""

    difference: float
    ci95: tuple[float, float]
    odds_ratio: float


def _stirlerr(n: int) -> float:
    """log(n!) - log(sqrt(2 pi n) (n / e)^n), for n >= 1."""
    if n <= 15:
        # Small enough for lgamma to keep its absolute precision.
        return math.lgamma(n + 1) - (n + 0.5) * math.log(n) + n - 0.5 * _LN_2PI
    s0, s1, s2, s3, s4 = _STIRLING
    nn = float(n) * n
    if n > 500:
        return (s0 - s1 / nn) / n
    if n > 80:
        return (s0 - (s1 - s2 / nn) / nn) / n
    if n > 35:
        return (s0 - (s1 - (s2 - s3 / nn) / nn) / nn) / n
    return (s0 - (s1 - (s2 - (s3 - s4 / nn) / nn) / nn) / nn) / n


def _bd0(x: float, mean: float) -> float:
    """x log(x / mean) + mean - x, without cancellation when x is close to mean."""
    if abs(x - mean) >= 0.1 * (x + mean):
        return x * math.log(x / mean) + mean - x
    v = (x - mean) / (x + mean)
    total = (x - mean) * v
    term = 2 * x * v
    v *= v
    # |v| < 0.1, so the series converges in well under 20 terms.
    for j in range(1, 100):
        term *= v
        bigger = total + term / (2 * j + 1)
        if bigger == total:
            break
        total = bigger
    return total


def _log_binom(x: int, n: int, p: float, q: float) -> float:
    """log P(X = x) for X ~ Binomial(n, p), 0 <= x <= n and 0 < p < 1 (q = 1 - p)."""
    if n == 0:
        return 0.0
    if x == 0:
        return -_bd0(n, n * q) - n * p if p < 0.1 else n * math.log(q)
    if x == n:
        return -_bd0(n, n * p) - n * q if q < 0.1 else n * math.log(p)
    lc = _stirlerr(n) - _stirlerr(x) - _stirlerr(n - x) - _bd0(x, n * p) - _bd0(n - x, n * q)
    return lc - 0.5 * (_LN_2PI + math.log(x) + math.log1p(-x / n))


def _hypergeom_logpmf(row1: int, row2: int, col1: int) -> Callable[[int], float]:
    """log P(a = x) over the 2x2 tables with these margins (0 < col1 < row1 + row2)."""
    total = row1 + row2
    p, q = col1 / total, (total - col1) / total
    norm = _log_binom(col1, total, p, q)

    def logpmf(x: int) -> float:
        return _log_binom(x, row1, p, q) + _log_binom(col1 - x, row2, p, q) - norm

    return logpmf


def _edge(logpmf: Callable[[int], float], limit: float, lo: int, hi: int, left: bool) -> int:
    """The x nearest the mode with logpmf(x) <= limit, in a tail known to end inside [lo, hi].

    With ``left`` the pmf rises over [lo, hi] and the answer is the last x below the limit;
    otherwise it falls and the answer is the first.
    """
    while lo < hi:
        if left:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if logpmf(mid) <= limit else (lo, mid - 1)
        else:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if logpmf(mid) <= limit else (mid + 1, hi)
    return lo


def _log_tail(logpmf: Callable[[int], float], start: int, stop: int, step: int) -> float:
    """log of the sum of pmf(x) from start to stop (inclusive), the terms falling outwards."""
    first = logpmf(start)
    total, previous = 1.0, 1.0
    for x in range(start + step, stop + step, step):
        term = math.exp(logpmf(x) - first)
        total += term
        ratio = term / previous if previous > 0 else 0.0
        # The pmf is log-concave, so the remaining terms fall at least this fast.
        if ratio < 1 and term * ratio / (1 - ratio) < _NEGLIGIBLE * total:
            break
        previous = term
    return first + math.log(total)


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p-value of Fisher's exact test for the 2x2 table [[a, b], [c, d]].

    The summed probability of the tables with the same margins that are no more likely than
    the observed one (as R's ``fisher.test`` and scipy's ``fisher_exact``).
    """
    table = [[a, b], [c, d]]
    if min(a, b, c, d) < 0:
        raise ValueError(f"a 2x2 table cannot hold negative counts: {table!r}")
    row1, row2, col1 = a + b, c + d, a + c
    lo, hi = max(0, col1 - row2), min(row1, col1)
    if lo == hi:
        return 1.0
    logpmf = _hypergeom_logpmf(row1, row2, col1)
    limit = logpmf(a) + math.log1p(_TIE_TOLERANCE)
    mode = min(max((row1 + 1) * (col1 + 1) // (row1 + row2 + 2), lo), hi)
    if logpmf(mode) <= limit:
        return 1.0
    tails = []
    if logpmf(lo) <= limit:
        tails.append(_log_tail(logpmf, _edge(logpmf, limit, lo, mode, left=True), lo, -1))
    if logpmf(hi) <= limit:
        tails.append(_log_tail(logpmf, _edge(logpmf, limit, mode, hi, left=False), hi, 1))
    top = max(tails)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in tails))


def _counts(hist: Mapping[Any, int], name: str) -> dict[float, int]:
    counts: dict[float, int] = {}
    for value, count in hist.items():
        if int(count) < 0:
            raise ValueError(f"histogram {name} has a negative count {count!r} at {value!r}")
        if count:
            key = float(value)
            counts[key] = counts.get(key, 0) + int(count)
    if not counts:
        raise ValueError(f"histogram {name} is empty: the test needs at least one value")
    return counts


def mann_whitney_hist(x_hist: Mapping[Any, int], y_hist: Mapping[Any, int]) -> MannWhitney:
    """The Mann-Whitney U test of two samples given as histograms (value -> count).

    Two-sided p-value by the normal approximation with tie and continuity corrections
    (scipy's ``method="asymptotic"``); O(distinct values), exact integer counts.
    """
    xs, ys = _counts(x_hist, "x"), _counts(y_hist, "y")
    n_x, n_y = sum(xs.values()), sum(ys.values())
    greater = ties = tie_term = y_below = 0
    for value in sorted(xs.keys() | ys.keys()):
        cx, cy = xs.get(value, 0), ys.get(value, 0)
        greater += cx * y_below
        ties += cx * cy
        tie_term += (cx + cy) ** 3 - (cx + cy)
        y_below += cy
    pairs = n_x * n_y
    twice_u = 2 * greater + ties
    n = n_x + n_y
    # 12 n (n - 1) times the tie-corrected variance of U, in exact integers.
    variance_12 = pairs * ((n + 1) * n * (n - 1) - tie_term)
    p_value = 1.0
    if variance_12 > 0:
        sd = math.sqrt(variance_12 / (12 * n * (n - 1)))
        z = (abs(twice_u - pairs) / 2 - 0.5) / sd
        p_value = min(1.0, math.erfc(z / math.sqrt(2)))
    return MannWhitney(twice_u / 2, p_value, (pairs - twice_u) / pairs, n_x, n_y)


def _wilson(events: int, total: int) -> tuple[float, float]:
    p, z2 = events / total, _Z95 * _Z95
    scale = 1 + z2 / total
    centre = (p + z2 / (2 * total)) / scale
    half = _Z95 * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / scale
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion_difference(
    x_events: int, x_total: int, y_events: int, y_total: int
) -> ProportionDifference:
    """p_y - p_x, its 95% interval (Newcombe's hybrid score) and the odds ratio of y to x.

    With a zero cell the odds ratio adds 0.5 to every cell (Haldane-Anscombe), so it stays
    finite and JSON-friendly.
    """
    for events, total in ((x_events, x_total), (y_events, y_total)):
        if total <= 0 or not 0 <= events <= total:
            raise ValueError(f"need 0 <= events <= total and total > 0, got {events}/{total}")
    px, py = x_events / x_total, y_events / y_total
    lx, ux = _wilson(x_events, x_total)
    ly, uy = _wilson(y_events, y_total)
    diff = py - px
    # Clamped: rounding can push an interval at a certainty (0/n vs n/n) past +-1.
    low = max(-1.0, diff - math.sqrt((py - ly) ** 2 + (ux - px) ** 2))
    high = min(1.0, diff + math.sqrt((uy - py) ** 2 + (px - lx) ** 2))
    cells = [y_events, y_total - y_events, x_events, x_total - x_events]
    shift = 0.5 if 0 in cells else 0.0
    ye, yn, xe, xn = (cell + shift for cell in cells)
    return ProportionDifference(diff, (low, high), (ye * xn) / (yn * xe))


def cliffs_magnitude(delta: float) -> str:
    """Romano et al.'s names for |Cliff's delta|: negligible, small, medium or large."""
    return next((name for bound, name in _MAGNITUDES if abs(delta) < bound), "large")


def _p_text(p: float) -> str:
    return f"p < {_TINY_P:g}" if p < _TINY_P else f"p = {p:.2g}"


def _unavailable(reason: str) -> dict[str, Any]:
    return {"available": False, "reason": reason}


def compare_groups(
    journal: Mapping[str, Any], timeseries: Sequence[Mapping[str, Any]] | None
) -> dict[str, Any]:
    """Control vs experiment over the fault window: figures, tests and effect sizes (JSON).

    ``{"available": False, "reason": ...}`` without a series, a fault window, or requests
    (with response times) from both groups in the window.
    """
    if not timeseries:
        return _unavailable("there is no per-second load series")
    window = facts.fault_window(journal)
    windows = facts.window_rows(journal, timeseries)
    if window is None or windows is None:
        return _unavailable("there is no fault window: no fault was injected")
    begin, end = window
    # The seconds facts.window_groups uses, so the tests judge the figures the report shows.
    during = windows[1]
    totals = totals_from_series(during)
    control, experiment = totals["control"], totals["experiment"]
    for name, group in (("control", control), ("experiment", experiment)):
        if group.requests <= 0:
            return _unavailable(f"the {name} group sent no requests in the fault window")
        if not sum(group.hist.values()):
            return _unavailable(f"the {name} group has no response times in the fault window")
        if group.failures > group.requests:
            return _unavailable(f"the {name} group counts more failures than requests")
    groups = {}
    for name in ("control", "experiment"):
        stats = stats_of(totals[name])
        groups[name] = {key: stats[key] for key in _STAT_KEYS}
    return {
        "available": True,
        "window": {"start": begin, "end": end, "seconds": totals["all"].seconds},
        "groups": groups,
        "error_rate": _error_rate(control, experiment),
        "latency": _latency(control.hist, experiment.hist),
        "confidence": (
            f"{control.requests} control and {experiment.requests} experiment requests over"
            f" {totals['all'].seconds:g} s of the fault window; a difference counts as"
            f" significant at p < {ALPHA:g}. Requests sent close together share the system's"
            " state, so the p-values overstate certainty: read the size of a difference from"
            " the effect sizes."
        ),
    }


def _error_rate(control: Totals, experiment: Totals) -> dict[str, Any]:
    ctl_failures, ctl_requests = control.failures, control.requests
    exp_failures, exp_requests = experiment.failures, experiment.requests
    p = fisher_exact(
        exp_failures, exp_requests - exp_failures, ctl_failures, ctl_requests - ctl_failures
    )
    diff = proportion_difference(ctl_failures, ctl_requests, exp_failures, exp_requests)
    rates = f"{exp_failures / exp_requests:.1%} vs {ctl_failures / ctl_requests:.1%}"
    if p < ALPHA:
        direction = "higher" if diff.difference > 0 else "lower"
        low, high = (100 * bound for bound in diff.ci95)
        text = (
            f"experiment error rate is {direction} than control ({rates},"
            f" {100 * diff.difference:+.1f} percentage points, 95% CI {low:+.1f} to {high:+.1f};"
            f" {_p_text(p)})"
        )
    else:
        text = f"no significant error-rate difference between experiment and control ({rates};"
        text += f" {_p_text(p)})"
    return {
        "test": "Fisher's exact test",
        "p_value": p,
        "difference": diff.difference,
        "ci95": list(diff.ci95),
        "odds_ratio": diff.odds_ratio,
        "significant": p < ALPHA,
        "interpretation": text,
    }


def _latency(control: Mapping[int, int], experiment: Mapping[int, int]) -> dict[str, Any]:
    test = mann_whitney_hist(control, experiment)
    magnitude = cliffs_magnitude(test.effect_size)
    detail = f"Cliff's delta {test.effect_size:.2f}, {magnitude}; {_p_text(test.p_value)}"
    if test.p_value < ALPHA:
        direction = "higher" if test.effect_size > 0 else "lower"
        text = f"experiment latency is {direction} than control ({detail})"
    else:
        text = f"no significant latency difference between experiment and control ({detail})"
    return {
        "test": "Mann-Whitney U",
        "u": test.u,
        "p_value": test.p_value,
        "effect_size": test.effect_size,
        "magnitude": magnitude,
        "significant": test.p_value < ALPHA,
        "interpretation": text,
    }


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, spec: str = "g") -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _e("n/a" if value is None else value)
    return _e(format(value, spec))


def _p_cell(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _e(_p_text(float(value)))
    return _fmt(value)


def render_comparison_html(comparison: Mapping[str, Any]) -> str:
    """The "Control vs experiment" section of the report page, from `compare_groups`."""
    head = "<h2>Control vs experiment</h2>"
    if not comparison.get("available"):
        reason = comparison.get("reason") or "no data"
        return f"{head}<p>No statistical comparison: {_e(reason)}.</p>"
    groups = comparison.get("groups") or {}
    control, experiment = groups.get("control") or {}, groups.get("experiment") or {}
    figures = "".join(
        f"<tr><th>{_e(label)}</th><td>{_fmt(control.get(key), spec)}</td>"
        f"<td>{_fmt(experiment.get(key), spec)}</td></tr>"
        for key, label, spec in _FIGURE_ROWS
    )
    errors = comparison.get("error_rate") or {}
    latency = comparison.get("latency") or {}
    ci = errors.get("ci95")
    ci = ci if isinstance(ci, list | tuple) and len(ci) == 2 else [None, None]
    error_effect = (
        f"difference {_fmt(errors.get('difference'), '+.2%')} (95% CI {_fmt(ci[0], '+.2%')}"
        f" to {_fmt(ci[1], '+.2%')}); odds ratio {_fmt(errors.get('odds_ratio'), '.3g')}"
    )
    latency_effect = (
        f"Cliff's delta {_fmt(latency.get('effect_size'), '+.2f')}"
        f" ({_fmt(latency.get('magnitude'))}); U = {_fmt(latency.get('u'))}"
    )
    tests = "".join(
        f"<tr><th>{_e(label)}</th><td>{_fmt(row.get('test'))}</td>"
        f"<td>{_p_cell(row.get('p_value'))}</td><td>{effect}</td>"
        f"<td>{'yes' if row.get('significant') else 'no'}</td>"
        f"<td>{_fmt(row.get('interpretation'))}</td></tr>"
        for label, row, effect in (
            ("error rate", errors, error_effect),
            ("latency", latency, latency_effect),
        )
    )
    return (
        f"{head}<p>{_fmt(comparison.get('confidence'))}</p>"
        f"<table><tr><th></th><th>control</th><th>experiment</th></tr>{figures}</table>"
        "<table><tr><th>question</th><th>test</th><th>p-value</th><th>effect size</th>"
        f"<th>significant (p &lt; {_e(format(ALPHA, 'g'))})</th><th>reading</th></tr>"
        f"{tests}</table>"
    )
