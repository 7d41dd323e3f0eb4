"""Verdicts and exit codes from hand-built journals."""

from __future__ import annotations

from typing import Any

import pytest

from chaosmesh_istio.verdicts import EXIT_CODES, USAGE_EXIT_CODE, verdict


def activity(name: str, func: str, status: str = "succeeded", **extra: Any) -> dict[str, Any]:
    run: dict[str, Any] = {
        "activity": {"type": "action", "name": name, "provider": {"func": func}},
        "status": status,
        "output": extra.pop("output", None),
    }
    if "error" in extra:
        run["exception"] = ["Traceback...\n", extra.pop("error")]
    return run


INJECT = activity("inject", "inject_abort", output={"routes": ["chaos-r-0"], "dry_run": False})


def hypothesis(met: bool, *probes: dict[str, Any]) -> dict[str, Any]:
    return {"steady_state_met": met, "probes": list(probes)}


def journal(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "status": "completed",
        "deviated": False,
        "steady_states": {"before": hypothesis(True), "after": hypothesis(True), "during": []},
        "run": [INJECT],
        "rollbacks": [],
        "chaosmesh": {"rollback": {"verified": True, "errors": []}, "injected": []},
    }
    chaosmesh = over.pop("chaosmesh", {})
    base.update(over)
    base["chaosmesh"] = {**base["chaosmesh"], **chaosmesh}
    return base


def test_passed() -> None:
    result = verdict(journal())
    assert (result.name, result.code) == ("passed", 0)
    assert result.line().startswith("verdict: passed (exit code 0)")


def test_deviated_after_during_and_fail_fast() -> None:
    after = journal(
        deviated=True,
        steady_states={"before": hypothesis(True), "after": hypothesis(False), "during": []},
    )
    assert verdict(after).code == 1
    during = journal(
        steady_states={"before": hypothesis(True), "after": None, "during": [hypothesis(False)]}
    )
    assert verdict(during).code == 1
    assert verdict(journal(status="failed")).code == 1


def test_baseline_not_met_is_skipped_when_nothing_was_injected() -> None:
    skipped = journal(
        run=[], steady_states={"before": hypothesis(False), "after": None, "during": []}
    )
    assert verdict(skipped).name == "skipped"
    assert verdict(skipped).code == 2
    # Something was injected after all (pre-flight off): that is a deviation, not a skip.
    injected = journal(steady_states={"before": hypothesis(False), "after": None, "during": []})
    assert verdict(injected).code == 1


def test_halted_by_a_safeguard() -> None:
    breach = {"probe": "control-errors", "value": 0.4, "tolerance": {}, "time": "t"}
    result = verdict(
        journal(status="interrupted", chaosmesh={"halted": True, "breaches": [breach]})
    )
    assert result.code == 3
    assert "control-errors" in result.reason


def test_inconclusive_and_errored() -> None:
    inconclusive = activity(
        "fired",
        "fault_fired",
        "failed",
        error="chaoslib.exceptions.ActivityFailed: chaosmesh_istio.errors.Inconclusive: no data\n",
    )
    assert verdict(journal(run=[INJECT, inconclusive])).code == 4
    broken = activity(
        "inject",
        "inject_abort",
        "failed",
        error=(
            "chaoslib.exceptions.ActivityFailed: chaosmesh_istio.errors.InvalidArgument: "
            "bad status: 99\n"
        ),
    )
    result = verdict(journal(run=[broken]))
    assert (result.code, result.reason) == (5, "activity 'inject' failed: bad status: 99")
    assert verdict(journal(status="aborted")).code == 5


def test_rollback_not_verified() -> None:
    record = {"rollback": {"verified": False, "errors": ["namespace 'default': refused"]}}
    result = verdict(journal(chaosmesh=record))
    assert result.code == 6
    assert "refused" in result.reason


def test_without_the_control_a_fault_needs_a_verified_removal() -> None:
    plain = journal()
    del plain["chaosmesh"]
    assert verdict(plain).code == 6
    removal = activity("remove", "remove_faults", output={"verified": True})
    assert verdict({**plain, "rollbacks": [removal]}).code == 0
    assert verdict({**plain, "run": []}).code == 0  # nothing injected, nothing to remove


def test_interrupted_by_a_signal() -> None:
    assert verdict(journal(status="interrupted", chaosmesh={"signal": "SIGINT"})).code == 130
    assert verdict(journal(status="interrupted", chaosmesh={"signal": "SIGTERM"})).code == 143
    assert verdict(journal(status="interrupted")).code == 4


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"unverified", "signal", "halted", "skipped", "errored", "inconclusive", "deviated"}, 6),
        ({"signal", "halted", "skipped", "errored", "inconclusive", "deviated"}, 130),
        ({"halted", "skipped", "errored", "inconclusive", "deviated"}, 3),
        ({"skipped", "errored", "inconclusive", "deviated"}, 2),
        ({"errored", "inconclusive", "deviated"}, 5),
        ({"inconclusive", "deviated"}, 4),
        ({"deviated"}, 1),
        (set(), 0),
    ],
)
def test_precedence(flags: set[str], expected: int) -> None:
    runs: list[dict[str, Any]] = [] if "skipped" in flags else [INJECT]
    if "errored" in flags:
        runs.append(activity("x", "inject_delay", "failed", error="KubeError: refused\n"))
    if "inconclusive" in flags:
        runs.append(activity("y", "fault_fired", "failed", error="Inconclusive: no data\n"))
    before = hypothesis("skipped" not in flags)
    after = hypothesis("deviated" not in flags)
    record: dict[str, Any] = {
        "rollback": {"verified": "unverified" not in flags, "errors": []},
        "signal": "SIGINT" if "signal" in flags else None,
        "halted": "halted" in flags,
        "breaches": [{"probe": "p", "value": 1}] if "halted" in flags else [],
    }
    built = journal(
        run=runs,
        deviated="deviated" in flags,
        steady_states={"before": before, "after": after, "during": []},
        chaosmesh=record,
    )
    assert verdict(built).code == expected


def test_codes_are_distinct_and_usage_is_not_a_verdict() -> None:
    assert sorted(EXIT_CODES.values()) == list(range(7))
    assert USAGE_EXIT_CODE not in EXIT_CODES.values()
