"""The verdict of a run and its exit code, from the journal and what the control recorded.

=====  ======================  ==========================================================
code   verdict                 meaning
=====  ======================  ==========================================================
0      passed                  the steady state held before, during and after the fault
1      deviated                the steady state did not hold (before, during or after)
2      skipped                 the baseline was not met: nothing was injected
3      halted                  a safeguard breached: the faults were removed, the run halted
4      inconclusive            the fault never fired or data was missing (``Inconclusive``)
5      errored                 an action or probe failed
6      rollback-not-verified   a fault may be left behind
130    interrupted             SIGINT (128 + 2); 143 for SIGTERM; other interruptions are 4
=====  ======================  ==========================================================

When several apply, the most urgent for the person reading the result wins:
6 > interrupted > 3 > 2 > 5 > 4 > 1 > 0.

- 6 first: a fault may still hit real traffic; nothing else matters until someone acts.
- An interruption by a signal next: someone stopped the run on purpose; its numbers are
  partial, and only an unverified rollback is more urgent.
- 3: real users were hurt enough to stop; the halt also explains anything after it
  (skipped activities, deviations, probes that lost their data).
- 2: nothing was tried; whatever else the run shows is about a system that was already
  unhealthy, which is the finding.
- 5 before 4 and 1: after a failed action the experiment did not do what it meant to, so
  neither a deviation nor a missing fault says anything about the system.
- 4 before 1: a deviation measured in a run where the fault never fired, or without data,
  cannot be attributed to the fault; the run must be repeated, not reported as a weakness.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["EXIT_CODES", "USAGE_EXIT_CODE", "Verdict", "verdict"]

EXIT_CODES: dict[str, int] = {
    "passed": 0,
    "deviated": 1,
    "skipped": 2,
    "halted": 3,
    "inconclusive": 4,
    "errored": 5,
    "rollback-not-verified": 6,
}
USAGE_EXIT_CODE = 64  # EX_USAGE: the experiment file is missing or invalid; nothing ran
_SIGNAL_CODES = {"SIGINT": 130, "SIGTERM": 143}
_CLASS = re.compile(r"(?:[A-Za-z_]\w*\.)*[A-Z]\w*")
_INJECTORS = {"inject_fault", "inject_delay", "inject_abort"}


@dataclass(frozen=True)
class Verdict:
    """A run's verdict: its name, exit code and the reason in one sentence."""

    name: str
    code: int
    reason: str

    def line(self) -> str:
        """The one line a person or a CI log reads."""
        return f"verdict: {self.name} (exit code {self.code}): {self.reason}"


def _runs(journal: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    states = journal.get("steady_states") or {}
    hypotheses = [states.get("before"), *(states.get("during") or []), states.get("after")]
    probes = [p for h in hypotheses if h for p in h.get("probes") or []]
    return [*probes, *(journal.get("run") or []), *(journal.get("rollbacks") or [])]


def _exception_chain(run: Mapping[str, Any]) -> tuple[list[str], str]:
    """The exception class names of a failed run (chaoslib wraps ours) and its message."""
    lines = run.get("exception") or []
    text = (lines[-1] if isinstance(lines, list) and lines else str(lines)).strip()
    names: list[str] = []
    while True:
        head, sep, rest = text.partition(": ")
        if not sep or not _CLASS.fullmatch(head):
            return names, text or "no detail"
        names.append(head.rpartition(".")[2])
        text = rest


def _name(run: Mapping[str, Any]) -> str:
    return str((run.get("activity") or {}).get("name", "?"))


def _func(run: Mapping[str, Any]) -> str:
    provider = (run.get("activity") or {}).get("provider") or {}
    return str(provider.get("func", ""))


def _injected(journal: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    if record.get("injected"):
        return True
    return any(
        _func(r) in _INJECTORS
        and r.get("status") == "succeeded"
        and not (r.get("output") or {}).get("dry_run")
        for r in journal.get("run") or []
    )


def _rollback_verified(journal: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    rollback = record.get("rollback")
    if rollback is not None:
        return bool(rollback.get("verified"))
    # Without the control only the experiment's own removals can prove it.
    removals: Iterable[Mapping[str, Any]] = [
        r for r in [*(journal.get("run") or []), *(journal.get("rollbacks") or [])]
        if _func(r) == "remove_faults"
    ]  # fmt: skip
    if not _injected(journal, record):
        return all(r.get("status") == "succeeded" for r in removals)
    return any(
        r.get("status") == "succeeded" and (r.get("output") or {}).get("verified") for r in removals
    )


def verdict(journal: Mapping[str, Any]) -> Verdict:
    """The verdict of a Chaos Toolkit journal, using ``journal["chaosmesh"]`` when present."""
    record: Mapping[str, Any] = journal.get("chaosmesh") or {}
    if not _rollback_verified(journal, record):
        errors = (record.get("rollback") or {}).get("errors") or []
        detail = errors[0] if errors else "no verified removal of the run's faults was recorded"
        return _make("rollback-not-verified", f"a fault may be left behind ({detail})")
    if record.get("signal") in _SIGNAL_CODES:
        sig = record["signal"]
        return Verdict("interrupted", _SIGNAL_CODES[sig], f"{sig} stopped the run; faults removed")
    breaches = record.get("breaches") or []
    if record.get("halted") or breaches:
        first = breaches[0] if breaches else {}
        return _make(
            "halted",
            f"safeguard {first.get('probe', '?')!r} breached with value {first.get('value')!r}"
            "; the faults were removed and the run halted",
        )
    before = (journal.get("steady_states") or {}).get("before")
    baseline_failed = before is not None and not before.get("steady_state_met", True)
    if (record.get("skipped") or baseline_failed) and not _injected(journal, record):
        return _make("skipped", "the steady state was not met before the method; nothing injected")
    runs = _runs(journal)
    failed = [r for r in runs if r.get("status") == "failed"]
    errored = [r for r in failed if "Inconclusive" not in _exception_chain(r)[0]]
    if errored:
        first_error = errored[0]
        return _make(
            "errored",
            f"activity {_name(first_error)!r} failed: {_exception_text(first_error)}",
        )
    if journal.get("status") == "aborted":
        return _make("errored", "the run aborted on an unexpected error")
    if failed:
        return _make("inconclusive", f"activity {_name(failed[0])!r}: {_exception_text(failed[0])}")
    if journal.get("status") == "interrupted":
        return _make("inconclusive", "the run was interrupted before it could conclude")
    deviated = _deviation(journal, baseline_failed)
    if deviated:
        return _make("deviated", deviated)
    return _make("passed", "the steady state held and every fault was removed and verified")


def _deviation(journal: Mapping[str, Any], baseline_failed: bool) -> str | None:
    states = journal.get("steady_states") or {}
    if baseline_failed:
        return "the steady state was not met before the method"
    during = [s for s in states.get("during") or [] if s and not s.get("steady_state_met", True)]
    if during:
        return "the steady state deviated during the method"
    after = states.get("after")
    if journal.get("deviated") or (after and not after.get("steady_state_met", True)):
        probes = [p for p in (after or {}).get("probes") or [] if not p.get("tolerance_met", True)]
        which = f" (probe {_name(probes[0])!r})" if probes else ""
        return f"the steady state deviated after the method{which}"
    if journal.get("status") == "failed":
        return "the steady state deviated during the method (fail fast)"
    return None


def _exception_text(run: Mapping[str, Any]) -> str:
    return _exception_chain(run)[1]


def _make(name: str, reason: str) -> Verdict:
    return Verdict(name, EXIT_CODES[name], reason)
