"""What this process injected: which VirtualServices carry faults of which run.

The cluster is the source of truth (faults are found there by their run id), but the
ledger lets the controls clean exactly what this process touched, including
VirtualServices chosen by a label selector in a namespace no activity names. It lives in
memory only: after SIGKILL the sentinel and ``chaosmesh-istio cleanup`` take over.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["Entry", "clear", "entries", "forget", "namespaces", "record", "run_ids"]


@dataclass(frozen=True, order=True)
class Entry:
    """A VirtualService that a run injected faults into."""

    run_id: str
    namespace: str
    name: str


_LOCK = threading.Lock()
_ENTRIES: set[Entry] = set()


def record(run_id: str, namespace: str, name: str) -> None:
    """Remember that `run_id` injected faults into VirtualService `namespace`/`name`."""
    with _LOCK:
        _ENTRIES.add(Entry(run_id, namespace, name))


def entries(run_id: str | None = None) -> list[Entry]:
    """The recorded VirtualServices, of one run or of every run, sorted."""
    with _LOCK:
        return sorted(e for e in _ENTRIES if run_id in (None, e.run_id))


def run_ids() -> list[str]:
    """Every run id this process injected faults for."""
    with _LOCK:
        return sorted({e.run_id for e in _ENTRIES})


def namespaces(run_id: str | None = None) -> list[str]:
    """The namespaces holding VirtualServices of one run (or of every run)."""
    return sorted({e.namespace for e in entries(run_id)})


def forget(run_id: str) -> None:
    """Drop a run's entries once its faults were removed and verified."""
    with _LOCK:
        _ENTRIES.difference_update({e for e in _ENTRIES if e.run_id == run_id})


def clear() -> None:
    """Drop every entry (tests, and a process that starts over)."""
    with _LOCK:
        _ENTRIES.clear()
