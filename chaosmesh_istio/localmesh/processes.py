"""Detached processes of the local mesh ("parts"): start, wait until ready, check, stop.

A part runs in its own session (so it outlives the command that started it and a signal to
its process group reaches all it spawned) with its output appended to ``DIR/logs/NAME.log``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import signal
import ssl
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chaosmesh_istio.errors import MeshError
from chaosmesh_istio.localmesh.store import now_rfc3339

__all__ = [
    "Part",
    "Probe",
    "alive",
    "healthy",
    "is_ours",
    "read_state",
    "spawn",
    "stop",
    "wait_ready",
]

logger = logging.getLogger("chaostoolkit").getChild("localmesh")

_STOP_TIMEOUT = 10.0
_POLL = 0.05
# Started processes stay referenced so that Popen never warns about a running child and
# so that a stop in the same process can reap them.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Part:
    """One process of the mesh; ``url`` and ``health_url`` are empty until it is ready."""

    name: str
    pid: int
    url: str
    health_url: str
    argv: list[str]
    log: str
    started: str


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not count; ours get reaped)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] != "Z"
    return True


def is_ours(part: Part) -> bool:
    """Guard against a recycled pid: the process must run the recorded command (prefix)."""
    if part.pid in _CHILDREN:
        # Our unreaped child keeps its pid; a dying one may show an empty cmdline.
        return True
    try:
        cmdline = Path(f"/proc/{part.pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return False
    expected = [arg.encode() for arg in part.argv]
    return cmdline.split(b"\0")[: len(expected)] == expected


def healthy(url: str, ca_file: Path) -> tuple[bool, str]:
    """GET ``url`` expecting 200; a plain client whose socket is closed on every path."""
    if not url:
        return False, "never became ready"
    target = urllib.parse.urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port
    conn: http.client.HTTPConnection
    if target.scheme == "https":
        context = ssl.create_default_context(cafile=str(ca_file))
        conn = http.client.HTTPSConnection(host, port, timeout=2.0, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=2.0)
    try:
        conn.request("GET", target.path or "/")
        code = conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return False, f"{url} unreachable: {exc.__class__.__name__}"
    finally:
        conn.close()
    if code != 200:
        return False, f"{url} answered {code}"
    return True, "ready"


def read_state(path: Path, pid: int) -> Mapping[str, Any] | None:
    """The JSON state file a part writes once listening, if written by process ``pid``."""
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(path.read_text())
        if isinstance(state, dict) and state.get("pid") == pid:
            return state
    return None


def spawn(name: str, argv: list[str], directory: Path) -> Part:
    """Start ``argv`` detached in ``directory``, output appended to ``logs/NAME.log``."""
    log_path = directory / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=directory,
        )
    _CHILDREN[child.pid] = child
    return Part(name, child.pid, "", "", argv, str(log_path), now_rfc3339())


# Given the spawned part: (url, health url) once ready, else what is still missing.
Probe = Callable[[Part], tuple[str, str] | str]


def wait_ready(part: Part, title: str, probe: Probe, deadline: float) -> Part:
    """Poll ``probe`` until it finds ``part`` ready; return the part with its URLs.

    Raises MeshError naming ``title`` and the log when the process exits or ``deadline``
    (a ``time.monotonic()`` value) passes; the caller stops what it started.
    """
    detail = "no answer yet"
    while True:
        if not alive(part.pid):
            child = _CHILDREN.get(part.pid)
            code = "" if child is None else f" with code {child.returncode}"
            raise MeshError(f"the {title} exited{code} while starting; see {part.log!r}")
        answer = probe(part)
        if not isinstance(answer, str):
            url, health_url = answer
            logger.info("%s (pid %d) ready at %s", title, part.pid, url)
            return replace(part, url=url, health_url=health_url)
        detail = answer
        if time.monotonic() >= deadline:
            raise MeshError(
                f"the {title} did not become ready in time ({detail}); see {part.log!r}"
            )
        time.sleep(_POLL)


def stop(part: Part) -> bool:
    """Stop one part (its whole process group); True if something was running."""
    if not alive(part.pid):
        _CHILDREN.pop(part.pid, None)
        return False
    if not is_ours(part):
        return False
    logger.info("stopping %s (pid %d)", part.name, part.pid)
    for signum, wait in ((signal.SIGTERM, _STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(part.pid, signum)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(part.pid):
                _CHILDREN.pop(part.pid, None)
                return True
            time.sleep(_POLL)
        logger.warning("%s (pid %d) ignored signal %d", part.name, part.pid, signum)
    raise MeshError(f"could not stop {part.name} (pid {part.pid}); kill it by hand")
