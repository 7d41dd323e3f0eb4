"""Resilience findings: what the run shows about the system, with evidence and a fix.

Pure: from the journal, the load figures per group and the per-second time series.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from chaosmesh_istio.report import facts

__all__ = ["SEVERITIES", "Finding", "findings"]

SEVERITIES = ("high", "medium", "low", "info")
_ADDED_POLICY = re.compile(r"^\+\s*(timeout|retries)\s*:", re.MULTILINE)


@dataclass(frozen=True)
class Finding:
    """One thing the run showed: a stable id, a title, severity, evidence and the fix."""

    id: str
    title: str
    severity: str
    evidence: str
    recommendation: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def findings(
    journal: Mapping[str, Any],
    groups: Mapping[str, Mapping[str, Any]] | None = None,
    timeseries: Sequence[Mapping[str, Any]] | None = None,
) -> list[Finding]:
    """The findings of a run, most severe first.

    Judged on the fault window's figures when the per-second series is there, else on the
    whole run's (which dilute the fault with the baseline).
    """
    if groups is None:
        groups = facts.window_groups(journal, timeseries) or facts.load_groups(journal)
    injected = facts.injection(journal)
    fault = injected.get("fault") if isinstance(injected.get("fault"), Mapping) else None
    control = groups.get("control") or {}
    experiment = groups.get("experiment") or {}
    found = [
        *_no_timeout(fault, control, experiment),
        *_fallback(fault, experiment),
        *_route_policy_disabled(injected),
        *_not_propagated(journal),
        *_blast_radius(journal, control, timeseries or []),
        *_retries_amplified(journal, timeseries or []),
    ]
    return sorted(found, key=lambda f: SEVERITIES.index(f.severity))


def _num(stats: Mapping[str, Any], key: str) -> float | None:
    value = stats.get(key)
    return float(value) if isinstance(value, int | float) else None


def _delayed_quantile(share: float | None) -> str | None:
    """The latency quantile that falls among the delayed requests when `share`% are delayed."""
    if share is None or share >= 90:
        return "p50"
    if share >= 10:
        return "p95"
    return "p99" if share >= 2 else None


def _no_timeout(
    fault: Mapping[str, Any] | None, control: Mapping[str, Any], experiment: Mapping[str, Any]
) -> list[Finding]:
    delay = facts.delay_ms(fault)
    key = _delayed_quantile(facts.percentage(fault, "delay"))
    if delay is None or delay <= 0 or key is None:
        return []
    exp_q, ctl_q = _num(experiment, key), _num(control, key)
    if exp_q is None:
        return []
    control_fast = ctl_q is None or ctl_q < 0.5 * delay
    measured = f"injected delay {delay:g} ms; experiment {key} {exp_q:g} ms"
    if exp_q > 1.2 * delay + 50 and control_fast:
        return [
            Finding(
                "latency-amplified",
                "Latency under the fault exceeded the injected delay: retries multiplied it",
                "high",
                f"{measured} ({exp_q / delay:.1f}x the delay); control {key} {_fmt(ctl_q)} ms",
                "bound the total time of a call, not only each try: an overall deadline below"
                " the users' budget, fewer retries, and per-try timeouts whose sum fits it",
            )
        ]
    if exp_q >= 0.9 * delay and control_fast:
        return [
            Finding(
                "caller-no-timeout",
                "The caller has no timeout: the injected delay reaches its users",
                "high",
                f"{measured} ({exp_q / delay:.0%} of the delay); control {key} {_fmt(ctl_q)} ms",
                "set a timeout on the caller's route or client below the users' latency budget"
                " (VirtualService http[].timeout or the client library's timeout), with a"
                " fallback for when it fires",
            )
        ]
    if exp_q < 0.8 * delay:
        return [
            Finding(
                "caller-timeout-works",
                "A timeout on the path cuts the injected delay short",
                "info",
                measured,
                "none: keep the timeout; check that what callers return on timeout is useful",
            )
        ]
    return []


def _fallback(fault: Mapping[str, Any] | None, experiment: Mapping[str, Any]) -> list[Finding]:
    share = facts.percentage(fault, "abort")
    rate = _num(experiment, "error_rate")
    if share is None or share <= 0 or rate is None:
        return []
    expected = share / 100.0
    evidence = f"abort on {share:g}% of requests; experiment error rate {rate:.1%}"
    if rate >= 0.9 * expected:
        return [
            Finding(
                "no-fallback",
                "No fallback: aborted calls fail for the caller's users",
                "high",
                evidence,
                "add a fallback (cached or default response, degraded feature) where the"
                " caller handles the dependency's errors, or retry idempotent calls",
            )
        ]
    if rate <= 0.1 * expected:
        return [
            Finding(
                "fallback-works",
                "The fallback works: aborted calls did not reach the users",
                "info",
                evidence,
                "none: keep the fallback covered by this experiment in CI",
            )
        ]
    return [
        Finding(
            "partial-fallback",
            "Partial fallback: some aborted calls reach the users",
            "medium",
            evidence,
            "find which calls lack a fallback (per-endpoint errors) and cover them",
        )
    ]


def _route_policy_disabled(injected: Mapping[str, Any]) -> list[Finding]:
    policies = sorted(set(_ADDED_POLICY.findall(str(injected.get("diff") or ""))))
    if not policies or not injected.get("fault"):
        return []
    routes = ", ".join(sorted({str(r) for r in injected.get("routes") or []})) or "?"
    what = " and ".join(policies)
    return [
        Finding(
            "route-policy-disabled",
            f"The faulted route's own {what} did not apply under the fault",
            "medium",
            f"faulted routes {routes} carry {what}; Istio disables a route's timeout and"
            " retries when that route has a fault",
            f"to exercise the {what}, inject the fault one hop downstream (on the route the"
            " faulted service calls), so that this route's policy handles it",
        )
    ]


def _not_propagated(journal: Mapping[str, Any]) -> list[Finding]:
    for run in facts.all_activities(journal):
        text = facts.exception_text(run)
        names = f"{facts.activity_name(run)} {facts.activity_func(run)}"
        if "fault_fired" in names and "Inconclusive" in text:
            header = facts.injection(journal).get("header") or "the scope header"
            return [
                Finding(
                    "header-not-propagated",
                    "The fault never fired: the scope header was not propagated",
                    "high",
                    f"probe {facts.activity_name(run)!r}: {text.strip()[-300:]}",
                    f"propagate {header!s} (or baggage) from inbound to outbound requests in"
                    " every service on the path, as for tracing headers, then re-run",
                )
            ]
    return []


def _windows(
    journal: Mapping[str, Any], series: Sequence[Mapping[str, Any]], group: str
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    windows = facts.window_rows(journal, series)
    if windows is None:
        return [], []
    before, during = windows
    return [r for r in before if r.get("group") == group], [
        r for r in during if r.get("group") == group
    ]


def _rate(rows: Sequence[Mapping[str, Any]]) -> float | None:
    requests = sum(int(r.get("requests") or 0) for r in rows)
    return sum(int(r.get("failures") or 0) for r in rows) / requests if requests else None


def _median(rows: Sequence[Mapping[str, Any]], key: str) -> float | None:
    values = sorted(float(r[key]) for r in rows if isinstance(r.get(key), int | float))
    return values[len(values) // 2] if values else None


def _blast_radius(
    journal: Mapping[str, Any], control: Mapping[str, Any], series: Sequence[Mapping[str, Any]]
) -> list[Finding]:
    before, during = _windows(journal, series, "control")
    evidence = []
    if before and during:
        rate0, rate1 = _rate(before), _rate(during)
        if rate0 is not None and rate1 is not None and rate1 - rate0 > 0.01:
            evidence.append(f"control error rate {rate0:.1%} before the fault, {rate1:.1%} during")
        p95_0, p95_1 = _median(before, "p95"), _median(during, "p95")
        if p95_0 is not None and p95_1 is not None and p95_1 > 1.5 * p95_0 + 50:
            evidence.append(f"control p95 {p95_0:g} ms before the fault, {p95_1:g} ms during")
    elif (_num(control, "error_rate") or 0.0) > 0.05:
        evidence.append(f"control error rate {_num(control, 'error_rate'):.1%} over the run")
    if not evidence:
        return []
    return [
        Finding(
            "blast-radius-leaked",
            "The blast radius leaked: traffic outside the experiment degraded",
            "high",
            "; ".join(evidence),
            "check the scope match (header/baggage) on every faulted route and whether shared"
            " resources (connection pools, threads, queues) let the fault spread; add"
            " bulkheads or per-caller limits",
        )
    ]


def _retries_amplified(
    journal: Mapping[str, Any], series: Sequence[Mapping[str, Any]]
) -> list[Finding]:
    # With a paced load shape the client sends a steady rate; more requests per second under
    # the fault means callers (or the load's own client) retried.
    before, during = _windows(journal, series, "experiment")
    if not before or not during:
        return []
    rps0 = sum(int(r.get("requests") or 0) for r in before) / len(before)
    rps1 = sum(int(r.get("requests") or 0) for r in during) / len(during)
    if rps0 <= 0 or rps1 < 1.5 * rps0:
        return []
    return [
        Finding(
            "retries-amplified-load",
            "Retries amplified the load under the fault",
            "medium",
            f"experiment request rate {rps0:.1f}/s before the fault, {rps1:.1f}/s during"
            f" ({rps1 / rps0:.1f}x)",
            "bound retries: fewer attempts, exponential backoff with jitter, a retry budget,"
            " and retry at one layer only",
        )
    ]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"
