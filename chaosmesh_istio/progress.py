"""What a person watching a run sees: the phase, the elapsed time, each activity's outcome,
and while load runs, each group's error rate and p95 latency every few seconds.

The load figures come from the per-second series the load generator appends to
``<chaosmesh_reports_dir>/<run-id>/load/`` (see ``load_series``); only the new bytes are
read at each tick. Nothing is printed about load when there is none.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from chaoslib.run import RunEventHandler

from chaosmesh_istio import settings
from chaosmesh_istio.load_run import RAW_SERIES
from chaosmesh_istio.load_series import percentile, totals_from_series

__all__ = ["LoadTicker", "Progress"]

Out = Callable[[str], None]
_WINDOW = 5  # seconds of series each tick summarizes
_KEEP = 30  # seconds of lines kept in memory


class LoadTicker(threading.Thread):
    """Every ``every`` seconds, prints the groups' figures over the last complete seconds."""

    def __init__(self, directory: Path, say: Out, every: float = 5.0) -> None:
        super().__init__(name="chaosmesh-progress", daemon=True)
        self.path = directory / RAW_SERIES
        self.say = say
        self.every = every
        self.stopping = threading.Event()
        self._offset = 0
        self._lines: list[dict[str, Any]] = []

    def stop(self) -> None:
        """Stop ticking and wait for the thread (never for longer than a second)."""
        self.stopping.set()
        if self.is_alive():
            self.join(timeout=1.0)

    def run(self) -> None:
        while not self.stopping.wait(self.every):
            try:
                line = self.tick(time.time())
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a half-written or rotated file: the next tick reads it again
            if line:
                self.say(line)

    def _read_new(self) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size < self._offset:  # a new load of the same run started the file again
            self._offset, self._lines = 0, []
        with self.path.open("rb") as stream:
            stream.seek(self._offset)
            chunk = stream.read(size - self._offset)
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        self._lines += [json.loads(raw) for raw in complete.splitlines() if raw.strip()]

    def tick(self, now: float) -> str | None:
        """The progress line for the seconds just before ``now`` (None without requests)."""
        self._read_new()
        newest = int(now) - 1  # the current second is still being counted
        self._lines = [line for line in self._lines if int(line["t"]) >= newest - _KEEP]
        recent = [line for line in self._lines if newest - _WINDOW <= int(line["t"]) < newest]
        totals = totals_from_series(recent)
        if totals["all"].requests == 0:
            return None
        parts = []
        for group in ("control", "experiment"):
            total = totals[group]
            if not total.requests:
                parts.append(f"{group}: no requests")
                continue
            p95 = percentile(total.hist, 0.95)
            parts.append(
                f"{group}: {total.requests / max(total.seconds, 1.0):.1f} rps, errors "
                f"{total.failures / total.requests:.1%}, p95 {p95:.0f} ms"
            )
        return f"load (last {_WINDOW} s) {' | '.join(parts)}"


class Progress(RunEventHandler):  # type: ignore[misc]
    """Prints the phases and activities of a run, with the seconds elapsed."""

    def __init__(self, out: Out = print, every: float = 5.0) -> None:
        super().__init__()
        self.out = out
        self.every = every
        self.started = time.monotonic()
        self.ticker: LoadTicker | None = None

    def say(self, text: str) -> None:
        """One line, stamped with the seconds since the run started."""
        self.out(f"[{time.monotonic() - self.started:6.1f}s] {text}")

    def running(
        self,
        experiment: Mapping[str, Any],
        journal: Mapping[str, Any],
        configuration: Mapping[str, Any] | None,
        secrets: Any,
        schedule: Any,
        settings_: Any,
    ) -> None:
        rid = settings.run_id(configuration)
        base = settings.setting(configuration, "chaosmesh_reports_dir", "reports")
        self.say(f"run {rid} started")
        if isinstance(base, str) and base:
            self.ticker = LoadTicker(Path(base) / rid / "load", self.say, self.every)
            self.ticker.start()

    def start_hypothesis_before(self, experiment: Mapping[str, Any]) -> None:
        self.say("phase: steady-state hypothesis before the method")

    def start_method(self, experiment: Mapping[str, Any]) -> None:
        self.say("phase: method")

    def start_hypothesis_after(self, experiment: Mapping[str, Any]) -> None:
        self.say("phase: steady-state hypothesis after the method")

    def start_rollbacks(self, experiment: Mapping[str, Any]) -> None:
        self.say("phase: rollbacks")

    def activity_completed(self, activity: Mapping[str, Any], run: Mapping[str, Any]) -> None:
        status = run.get("status", "?")
        extra = "" if status == "succeeded" else f" ({_last_line(run.get('exception'))})"
        self.say(
            f"  {activity.get('type', '?')} {activity.get('name')!r}: {status} "
            f"in {run.get('duration', 0):.1f} s{extra}"
        )

    def finish(self, journal: Mapping[str, Any]) -> None:
        self.stop()

    def interrupted(self, experiment: Mapping[str, Any], journal: Mapping[str, Any]) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the load ticker (also safe when it never started)."""
        if self.ticker is not None:
            self.ticker.stop()


def _last_line(exception: object) -> str:
    lines = exception if isinstance(exception, list) else [str(exception)]
    return str(lines[-1]).strip() if lines else ""
