"""Safeguards: guard probes polled in a background thread while an experiment's method runs.

A probe out of tolerance, or one that raises, is a breach (a guard that cannot see fails
safe), except while nothing is injected yet: a guard without data then (the load is still
starting) has nothing to protect. The first breach is handed to ``on_breach`` and the
polling stops.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chaoslib.activity import run_activity
from chaoslib.hypothesis import within_tolerance

from chaosmesh_istio import ledger
from chaosmesh_istio.errors import Inconclusive, LoadError
from chaosmesh_istio.settings import Configuration, Secrets

__all__ = ["Safeguards", "check"]


class Safeguards(threading.Thread):
    """Polls `probes` every `interval` seconds until stopped or breached."""

    def __init__(
        self,
        probes: Sequence[Mapping[str, Any]],
        interval: float,
        configuration: Configuration,
        secrets: Secrets,
        run_id: str,
        on_breach: Callable[[dict[str, Any]], None],
    ) -> None:
        super().__init__(name=f"safeguards-{run_id}", daemon=True)
        self.probes = list(probes)
        self.interval = interval
        self.configuration = configuration
        self.secrets = secrets
        self.run_id = run_id
        self.on_breach = on_breach
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            for probe in self.probes:
                breach = check(probe, self.configuration, self.secrets, self.run_id)
                if breach is not None and not self.stopping.is_set():
                    self.on_breach(breach)
                    return
            self.stopping.wait(self.interval)

    def stop(self) -> None:
        """Stop polling and wait for the thread (a no-op from the thread itself)."""
        self.stopping.set()
        if self is not threading.current_thread() and self.is_alive():
            self.join()


def _no_data(exc: BaseException) -> bool:
    """Whether a probe failed for lack of data (chaoslib wraps our exceptions)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, Inconclusive | LoadError) or any(
            name in str(seen) for name in ("Inconclusive", "LoadError")
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def check(
    probe: Mapping[str, Any], configuration: Configuration, secrets: Secrets, run_id: str
) -> dict[str, Any] | None:
    """Run one guard probe; the breach record, or None when it holds."""
    name = probe.get("name", "safeguard")
    try:
        value = run_activity(dict(probe), configuration, secrets)
        ok = within_tolerance(probe["tolerance"], value, configuration, secrets)
    except Exception as exc:
        if _no_data(exc) and not ledger.entries(run_id):
            # Nothing is injected yet (the load may still be starting): nothing to guard.
            return None
        value, ok = f"error: {exc}", False
    if ok:
        return None
    now = dt.datetime.now(dt.UTC).isoformat()
    return {"probe": name, "value": value, "tolerance": probe["tolerance"], "time": now}
