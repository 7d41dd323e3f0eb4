"""The sentinel: a detached watchdog that removes a run's faults if its runner cannot.

:func:`spawn` starts ``python -m chaosmesh_istio.sentinel`` in a session of its own, no
longer a child of the runner, so that SIGKILL, OOM or a closed terminal of the runner does
not take it along. Every ``poll`` seconds it checks whether the runner process still exists
and whether the run's TTL has passed; when the TTL expired, or the runner has been gone for
``grace`` seconds, it removes the run's faults with
:func:`chaosmesh_istio.rollback.remove_run` (which reads every VirtualService back) and
exits. Every ``check_every`` seconds it also reads the VirtualServices: once the run's
routes are gone (the runner removed them) it exits on its own. An alarm makes sure it never
outlives the TTL by more than ``linger`` seconds, whatever the API server does.

Credentials are resolved from the inherited environment exactly as the actions resolve
them; secrets, when given, travel in the environment, never on the command line.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chaosmesh_istio import rollback, settings
from chaosmesh_istio.cleanup import leftovers
from chaosmesh_istio.errors import ChaosMeshIstioError, InvalidArgument, NotFound
from chaosmesh_istio.kube import open_virtual_services
from chaosmesh_istio.settings import Configuration, Secrets

__all__ = ["SECRETS_VARIABLE", "is_running", "main", "spawn", "stop", "watch"]

logger = logging.getLogger("chaostoolkit").getChild("chaosmesh_istio.sentinel")

SECRETS_VARIABLE = "CHAOSMESH_SENTINEL_SECRETS"
_LINGER = 10.0
# A tiny intermediate process starts the sentinel and exits at once: the sentinel is then
# nobody's child but init's, so the runner never has to reap it and it never dies with it.
_LAUNCHER = (
    "import subprocess, sys\n"
    "log = open(sys.argv[1], 'ab')\n"
    "child = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, "
    "stderr=log, start_new_session=True)\n"
    "print(child.pid)\n"
)

Target = tuple[str, str]


def is_running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is just not ours
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] != "Z"
    return True


def _expiry(expires: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(expires)
    except (TypeError, ValueError):
        raise InvalidArgument(
            f"expires must be an RFC 3339 time such as '2026-01-01T12:00:00Z', got {expires!r}"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _portable(configuration: Configuration) -> dict[str, Any]:
    """The chaosmesh_* settings that can travel as JSON to the sentinel."""
    kept = {}
    for key, value in (configuration or {}).items():
        if key.startswith("chaosmesh_"):
            with contextlib.suppress(TypeError, ValueError):
                json.dumps(value)
                kept[key] = value
    return kept


def spawn(
    run_id: str,
    targets: Sequence[Target],
    expires: str,
    runner_pid: int | None = None,
    grace: float = 10.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
    log_file: Path | None = None,
    poll: float = 0.5,
    check_every: float = 3.0,
) -> int:
    """Start a detached sentinel for ``run_id`` on ``targets`` (namespace, name); its pid."""
    _expiry(expires)
    if not targets:
        raise InvalidArgument(f"the sentinel of run {run_id!r} needs at least one target")
    if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
        raise InvalidArgument(f"grace must be a number of seconds, got {grace!r}")
    reports = settings.setting(configuration, "chaosmesh_reports_dir", "reports")
    log = log_file or Path(str(reports)) / run_id / "sentinel.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "chaosmesh_istio.sentinel",
        "--run-id",
        run_id,
        "--expires",
        expires,
        "--runner-pid",
        str(runner_pid if runner_pid is not None else os.getpid()),
        "--grace",
        str(grace),
        "--poll",
        str(poll),
        "--check-every",
        str(check_every),
        "--configuration",
        json.dumps(_portable(configuration)),
    ]
    for namespace, name in targets:
        argv += ["--target", f"{namespace}/{name}"]
    env = dict(os.environ)
    if secrets:
        env[SECRETS_VARIABLE] = json.dumps(dict(secrets))
    try:
        launched = subprocess.run(
            [sys.executable, "-W", "ignore", "-c", _LAUNCHER, str(log), *argv],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        pid = int(launched.stdout.strip())
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        raise ChaosMeshIstioError(
            f"could not start the sentinel of run {run_id!r}: {exc}; faults will only be "
            "removed by the runner or by 'chaosmesh-istio cleanup --expired'"
        ) from exc
    logger.info("sentinel of run %s started (pid %d, log %s)", run_id, pid, log)
    return pid


def stop(pid: int, timeout: float = 5.0) -> bool:
    """Stop a sentinel (SIGTERM, then SIGKILL); whether it was still running."""
    if not is_running(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if is_running(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return True


def _present(
    run_id: str, targets: Sequence[Target], configuration: Configuration, secrets: Secrets
) -> bool:
    client = open_virtual_services(configuration, secrets)
    for namespace, name in targets:
        try:
            vs = client.get(name, namespace)
        except NotFound:
            continue
        if any(found["run_id"] == run_id for found in leftovers(vs)):
            return True
    return False


def _remove_all(
    run_id: str,
    targets: Sequence[Target],
    configuration: Configuration,
    secrets: Secrets,
    give_up: float,
) -> bool:
    """Remove the run from every target, retrying until ``give_up`` (monotonic)."""
    left = list(targets)
    while left:
        namespace, name = left[0]
        try:
            result = rollback.remove_run(name, namespace, None, run_id, configuration, secrets)
        except ChaosMeshIstioError as exc:
            if time.monotonic() >= give_up:
                logger.error("giving up on run %s in %s/%s: %s", run_id, namespace, name, exc)
                return False
            logger.warning("could not remove run %s from %s/%s: %s", run_id, namespace, name, exc)
            time.sleep(0.5)
            continue
        logger.warning(
            "removed %s of run %s from %s/%s (verified)",
            [r for entry in result for r in entry["routes"]],
            run_id,
            namespace,
            name,
        )
        left.pop(0)
    return True


def watch(
    run_id: str,
    targets: Sequence[Target],
    expires: str,
    runner_pid: int,
    grace: float,
    configuration: Configuration = None,
    secrets: Secrets = None,
    poll: float = 0.5,
    check_every: float = 3.0,
    settle: float = 30.0,
    linger: float = _LINGER,
) -> str:
    """Watch until the faults must go (and remove them) or are gone; say why it ended.

    Until the run's routes have been seen once, their absence only ends the watch after
    ``settle`` seconds: the sentinel may start just before the injection.
    """
    deadline = _expiry(expires)
    started = time.monotonic()
    next_check = started
    gone_since: float | None = None
    seen = False
    while True:
        now = time.monotonic()
        if gone_since is None and not is_running(runner_pid):
            gone_since = now
            logger.warning("runner process %d is gone; grace %.1f s", runner_pid, grace)
        reason = None
        if dt.datetime.now(dt.UTC) >= deadline:
            reason = f"the TTL of run {run_id} expired at {expires}"
        elif gone_since is not None and now - gone_since >= grace:
            reason = f"runner process {runner_pid} has been gone for {now - gone_since:.1f} s"
        if reason is not None:
            logger.warning("removing the faults of run %s: %s", run_id, reason)
            remaining = (deadline - dt.datetime.now(dt.UTC)).total_seconds()
            removed = _remove_all(
                run_id, targets, configuration, secrets, now + max(remaining, 0) + linger
            )
            return reason if removed else f"{reason}; removal failed"
        if now >= next_check:
            next_check = now + check_every
            try:
                present = _present(run_id, targets, configuration, secrets)
            except ChaosMeshIstioError as exc:
                logger.warning("could not read the targets of run %s: %s", run_id, exc)
                present = True
            seen = seen or present
            if not present and (seen or now - started >= settle):
                return f"the routes of run {run_id} are gone"
        time.sleep(poll)


def _on_alarm(signum: int, frame: object) -> None:
    logger.error("the sentinel outlived its run's TTL; exiting (cleanup --expired remains)")
    os._exit(3)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sentinel (the detached process :func:`spawn` starts)."""
    parser = argparse.ArgumentParser(prog="python -m chaosmesh_istio.sentinel")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--target", action="append", required=True, help="NAMESPACE/NAME")
    parser.add_argument("--expires", required=True)
    parser.add_argument("--runner-pid", type=int, required=True)
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("--poll", type=float, default=0.5)
    parser.add_argument("--check-every", type=float, default=3.0)
    parser.add_argument("--configuration", default="{}")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    targets = [tuple(t.split("/", 1)) for t in args.target]
    configuration: Mapping[str, Any] = json.loads(args.configuration)
    secrets = json.loads(os.environ.get(SECRETS_VARIABLE) or "null")
    try:
        left = (_expiry(args.expires) - dt.datetime.now(dt.UTC)).total_seconds()
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.alarm(max(1, int(left + _LINGER + 1)))
        logger.info(
            "sentinel of run %s: targets %s, expires %s, runner %d, grace %.1f s",
            args.run_id,
            args.target,
            args.expires,
            args.runner_pid,
            args.grace,
        )
        reason = watch(
            args.run_id,
            [(ns, name) for ns, name in targets],
            args.expires,
            args.runner_pid,
            args.grace,
            configuration,
            secrets,
            poll=args.poll,
            check_every=args.check_every,
        )
    except ChaosMeshIstioError as exc:
        logger.error("%s", exc)
        return 2
    logger.info("sentinel of run %s ends: %s", args.run_id, reason)
    return 1 if reason.endswith("removal failed") else 0


if __name__ == "__main__":
    sys.exit(main())
