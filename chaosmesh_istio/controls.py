"""A Chaos Toolkit control that makes sure no fault outlives its experiment.

Declare it once, in an experiment's ``controls`` or in the Chaos Toolkit settings::

    {"name": "chaosmesh",
     "provider": {"type": "python", "module": "chaosmesh_istio.controls",
                  "arguments": {"safeguards": [...], "interval": 1}}}

Arguments (all optional):

- ``safeguards``: probe activities, each with a ``tolerance``, polled in a background
  thread every ``interval`` seconds (default 1) while the method runs. A probe out of
  tolerance, or one that raises (a guard that cannot see fails safe), is a breach: the
  run's faults are removed at once, the breach is recorded and the run is halted. Before
  the run has injected anything, a guard without data yet (the load is still starting)
  is not a breach: there is nothing to protect.
- ``namespaces``: namespaces to clean besides those the experiment's activities name.
- ``preflight`` (default true): when the steady-state hypothesis before the method is not
  met, the run ends as skipped and nothing is injected.
- ``report`` (default true) and ``reports_dir`` (default: the configuration's
  ``chaosmesh_reports_dir``, else ``reports``): after the run, write
  ``report.html``, ``junit.xml``, ``summary.json`` and the journal to
  ``<reports_dir>/<run-id>/`` and refresh ``<reports_dir>/index.html``.

After the experiment, **whatever the rollback strategy, status or signal**, the run's
faults are removed from every namespace it may have touched, every removal is verified by
reading back, the result goes to ``journal["chaosmesh"]`` and the run's load is stopped.
SIGINT and SIGTERM start that removal at once in a thread the process waits for, then
interrupt the run as Chaos Toolkit itself would; further signals cannot cut it short.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from chaoslib import substitute
from chaoslib.exceptions import InterruptExecution, InvalidActivity

from chaosmesh_istio import ledger, liveness, rollback, settings
from chaosmesh_istio.control_options import ControlOptions, control_options
from chaosmesh_istio.errors import InvalidArgument, MeshError
from chaosmesh_istio.load import stop_load
from chaosmesh_istio.report import report_run
from chaosmesh_istio.report.environment import collect_environment
from chaosmesh_istio.report.index import write_index
from chaosmesh_istio.safeguards import Safeguards
from chaosmesh_istio.settings import Configuration, Secrets

__all__ = [
    "after_experiment_control",
    "after_hypothesis_control",
    "after_method_control",
    "before_activity_control",
    "before_experiment_control",
    "before_method_control",
    "cleanup_control",
    "configure_control",
    "validate_control",
]

logger = logging.getLogger("chaostoolkit").getChild("chaosmesh_istio.controls")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
_REMOVAL_ATTEMPTS = 3


@dataclass
class _Run:
    """What the control knows about the experiment in progress."""

    experiment: Mapping[str, Any]
    options: ControlOptions
    configuration: Configuration
    secrets: Secrets
    run_id: str
    phase: str = "before"  # before -> method -> after -> cleanup -> done
    skipped: bool = False
    halted: bool = False
    breaches: list[dict[str, Any]] = field(default_factory=list)
    signal: str | None = None
    removed: list[dict[str, Any]] = field(default_factory=list)
    injected: set[ledger.Entry] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    helpers: list[threading.Thread] = field(default_factory=list)
    guard: Safeguards | None = None
    record: dict[str, Any] | None = None


Handler = Callable[[int, FrameType | None], Any] | int | None
_STATE: _Run | None = None
_PREVIOUS: dict[int, Handler] = {}


def validate_control(control: Mapping[str, Any]) -> None:
    """Check the control's arguments when Chaos Toolkit validates the experiment."""
    try:
        control_options((control.get("provider") or {}).get("arguments") or {})
    except InvalidArgument as exc:
        raise InvalidActivity(str(exc)) from None


def configure_control(
    experiment: Mapping[str, Any] | None = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
    **arguments: Any,
) -> None:
    """Forget a previous run's state; the run starts in ``before_experiment_control``."""
    global _STATE  # noqa: PLW0603
    if _STATE is not None and _STATE.phase == "done":
        _STATE = None


def before_experiment_control(
    context: Mapping[str, Any],
    configuration: Configuration = None,
    secrets: Secrets = None,
    **arguments: Any,
) -> None:
    """Start following the run and take over SIGINT and SIGTERM."""
    global _STATE  # noqa: PLW0603
    if _STATE is not None and _STATE.phase != "done" and _STATE.experiment is context:
        return  # declared twice (settings and experiment): one control is enough
    try:
        options = control_options(arguments)
    except InvalidArgument as exc:
        raise InterruptExecution(f"the chaosmesh control cannot run: {exc}") from None
    _STATE = _Run(context, options, configuration, secrets, settings.run_id(configuration))
    _install_handlers()
    logger.debug("following run %s", _STATE.run_id)


def after_hypothesis_control(
    context: Mapping[str, Any], state: Mapping[str, Any] | None = None, **arguments: Any
) -> None:
    """Before the method, a baseline that is not met skips the run (pre-flight)."""
    run = _STATE
    if run is None or run.phase != "before" or not run.options.preflight:
        return
    if state is not None and not state.get("steady_state_met", True):
        run.skipped = True
        logger.warning(
            "the steady state is not met before the method; nothing will be injected and the "
            "run ends as skipped"
        )


def before_method_control(context: Mapping[str, Any], **arguments: Any) -> None:
    """Refuse to start a skipped method; start the safeguards."""
    run = _STATE
    if run is None:
        return
    if run.skipped:
        # chaoslib already skips the method after an unmet baseline; this keeps it so.
        raise InterruptExecution("the baseline is not met; the method was skipped")
    if run.phase == "before":
        run.phase = "method"
        if run.options.safeguards:
            run.guard = Safeguards(
                run.options.safeguards, run.options.interval, run.configuration, run.secrets,
                run.run_id, on_breach=functools.partial(_breached, run),
            )  # fmt: skip
            run.guard.start()


def before_activity_control(context: Mapping[str, Any], **arguments: Any) -> None:
    """Skip what is left of the method once a safeguard breached."""
    run = _STATE
    if run is not None and run.phase == "method" and run.halted:
        breach = run.breaches[0]["probe"] if run.breaches else "a safeguard"
        raise InterruptExecution(
            f"safeguard {breach!r} breached; skipping activity {context.get('name')!r}"
        )


def after_method_control(context: Mapping[str, Any], **arguments: Any) -> None:
    """Stop the safeguards when the method ends."""
    run = _STATE
    if run is not None and run.phase == "method":
        run.phase = "after"
        _stop_guard(run)


def after_experiment_control(
    context: Mapping[str, Any],
    state: dict[str, Any] | None = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
    **arguments: Any,
) -> None:
    """Remove and verify the run's faults, stop its load, record all of it in the journal."""
    run = _STATE
    if run is None:
        return
    if run.record is None:
        _finish(run)
    if state is not None and run.record is not None:
        state["chaosmesh"] = run.record
        if run.options.report:
            _write_report(run, state)


def _write_report(run: _Run, journal: dict[str, Any]) -> None:
    """Write the run's report and journal to ``reports_dir/<run-id>``; never fails the run."""
    record = journal["chaosmesh"]
    try:
        record["environment"] = collect_environment(run.configuration, run.secrets)
        base = Path(
            run.options.reports_dir
            or settings.setting(run.configuration, "chaosmesh_reports_dir", "reports")
        )
        written = report_run(journal, base, base / run.run_id)
        record["report"] = {kind: str(path) for kind, path in written.items()}
        (base / run.run_id / "journal.json").write_text(json.dumps(journal, indent=2, default=str))
        write_index(base)
        logger.info("report of run %s: %s", run.run_id, written["html"])
    except Exception as exc:
        # The faults are already removed; a report that cannot be written loses no safety.
        logger.exception("could not write the report of run %s", run.run_id)
        record["report"] = {"error": str(exc)}


def cleanup_control() -> None:
    """Finish the run if ``after_experiment_control`` never ran; give the signals back."""
    run = _STATE
    try:
        if run is not None and run.record is None:
            _finish(run)
    finally:
        _restore_handlers()
        if run is not None:
            run.phase = "done"


def _finish(run: _Run) -> None:
    run.phase = "cleanup"
    _stop_guard(run)
    for helper in list(run.helpers):
        helper.join()
    rollback = _remove(run, "after the experiment")
    load: dict[str, Any]
    try:
        load = {"stopped": True, "summary": stop_load(run.configuration, run.secrets)}
    except Exception as exc:
        logger.exception("could not stop the load of run %s", run.run_id)
        load = {"stopped": False, "error": str(exc)}
    run.record = {
        "run_id": run.run_id,
        "skipped": run.skipped,
        "halted": run.halted,
        "breaches": run.breaches,
        "signal": run.signal,
        "injected": [asdict(e) for e in sorted(run.injected)],
        "rollback": rollback,
        "load": load,
    }
    if rollback["verified"]:
        logger.info("run %s: no fault left behind (verified)", run.run_id)
    else:
        logger.error(
            "run %s: faults may be left behind (%s); run 'chaosmesh-istio cleanup --run-id %s'",
            run.run_id, "; ".join(rollback["errors"]), run.run_id,
        )  # fmt: skip


def _namespaces(run: _Run) -> tuple[list[str], set[str]]:
    """Namespaces to clean, and among them those known to hold faults of the run."""
    known = {e.namespace for e in run.injected}
    found = set(known) | set(run.options.namespaces)
    exp = run.experiment
    activities = [
        *((exp.get("steady-state-hypothesis") or {}).get("probes") or []),
        *(exp.get("method") or []),
        *(exp.get("rollbacks") or []),
    ]
    for activity in activities:
        provider = activity.get("provider") or {}
        if provider.get("type") != "python" or provider.get("module") != "chaosmesh_istio.actions":
            continue
        args = provider.get("arguments") or {}
        try:
            namespace = substitute(args.get("namespace", "default"), run.configuration, run.secrets)
        except Exception as exc:
            logger.debug("cannot resolve the namespace of %r: %s", activity.get("name"), exc)
            continue
        if isinstance(namespace, str) and _DNS_LABEL.fullmatch(namespace):
            found.add(namespace)
    return sorted(found), known


def _remove(run: _Run, reason: str) -> dict[str, Any]:
    """One removal pass over every run id and namespace; serialised, idempotent."""
    with run.lock:
        run.injected.update(e for rid in ledger.run_ids() for e in ledger.entries(rid))
        run_ids = sorted({run.run_id} | {e.run_id for e in run.injected})
        namespaces, known = _namespaces(run)
        errors: list[str] = []
        for rid in run_ids:
            for namespace in namespaces:
                error = _remove_one(run, rid, namespace, required=namespace in known)
                if error:
                    errors.append(error)
        removed_at = dt.datetime.now(dt.UTC).isoformat()
        gone = _data_plane_gone(run, errors)
        verified = not errors
        if verified:
            for rid in run_ids:
                ledger.forget(rid)
        return {
            "reason": reason,
            "run_ids": run_ids,
            "namespaces": namespaces,
            "removed": list(run.removed),
            "removed_at": removed_at,
            "gone": gone,
            "verified": verified,
            "errors": errors,
        }


def _data_plane_gone(run: _Run, errors: list[str]) -> dict[str, Any] | None:
    """Wait for the proxies to drop the removed routes; a proxy still applying is an error."""
    names = sorted({name for r in run.removed for name in r.get("routes") or []})
    try:
        return liveness.wait_gone(names, liveness.live_check(run.configuration))
    except (InvalidArgument, MeshError) as exc:
        errors.append(f"data plane: {exc}")
        return None


def _remove_one(run: _Run, rid: str, namespace: str, required: bool) -> str | None:
    last: Exception | None = None
    for _ in range(_REMOVAL_ATTEMPTS):
        try:
            settings.check_namespace(namespace, run.configuration)
            result = rollback.remove_run(None, namespace, None, rid, run.configuration, run.secrets)
        except InvalidArgument as exc:
            if not required:
                logger.debug("not cleaning namespace %s: %s", namespace, exc)
                return None
            last = exc
            break
        except Exception as exc:
            last = exc
            continue
        run.removed.extend({**r, "run_id": rid} for r in result)
        return None
    logger.error("could not remove the faults of run %s in %s: %s", rid, namespace, last)
    return f"namespace {namespace!r}, run {rid!r}: {last}"


def _breached(run: _Run, breach: dict[str, Any]) -> None:
    logger.error(
        "safeguard %r breached (value %r, tolerance %r): removing the faults and halting the run",
        breach["probe"], breach["value"], breach["tolerance"],
    )  # fmt: skip
    run.breaches.append(breach)
    run.halted = True
    # Interrupt first (a long pause must not keep running), then remove.
    if signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN, None):
        # chaoslib.exit's graceful exit (SystemExit(20), rollbacks kept), aimed at the main
        # thread so that a pause it sleeps in is cut short too.
        main = threading.main_thread().ident
        if main is not None:
            signal.pthread_kill(main, signal.SIGUSR1)
    breach["rollback"] = _remove(run, f"safeguard {breach['probe']!r} breached")


def _stop_guard(run: _Run) -> None:
    if run.guard is not None:
        run.guard.stop()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    run = _STATE
    name = signal.Signals(signum).name
    if run is None or run.phase in ("done",):
        _delegate(signum, frame)
        return
    if run.signal is not None or run.phase == "cleanup":
        logger.warning(
            "%s received while removing the faults of run %s; please wait", name, run.run_id
        )
        return
    run.signal = name
    logger.warning("%s received: removing the faults of run %s, then stopping", name, run.run_id)
    # Not daemon: the process cannot exit before the removal is done.
    helper = threading.Thread(
        target=_remove, args=(run, f"{name} received"), name=f"signal-cleanup-{run.run_id}"
    )
    run.helpers.append(helper)
    helper.start()
    if signum == signal.SIGTERM:
        raise InterruptExecution(f"{name} signal received")  # as chaoslib.exit does
    raise KeyboardInterrupt


def _delegate(signum: int, frame: FrameType | None) -> None:
    previous = _PREVIOUS.get(signum)
    if callable(previous):
        previous(signum, frame)
    elif signum == signal.SIGINT:
        raise KeyboardInterrupt


def _install_handlers() -> None:
    if threading.current_thread() is not threading.main_thread() or _PREVIOUS:
        return
    for signum in _SIGNALS:
        _PREVIOUS[signum] = signal.getsignal(signum)
        signal.signal(signum, _on_signal)


def _restore_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, previous in list(_PREVIOUS.items()):
        signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
    _PREVIOUS.clear()
