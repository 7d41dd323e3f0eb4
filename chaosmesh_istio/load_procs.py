"""Locust processes of a load, and the web API of a remote Locust master.

Locust always runs as a subprocess (``python -m locust``): importing it here would
monkey-patch the runner's sockets with gevent. Each process gets its own process group, so
stopping it also stops anything it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from chaosmesh_istio.errors import LoadError

__all__ = [
    "free_port",
    "remote_series",
    "remote_stop",
    "remote_swarm",
    "spawn_locust",
    "stop_processes",
]

_REMOTE_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn_locust(
    args: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path
) -> subprocess.Popen[bytes]:
    """Start ``python -m locust ARGS`` in its own session, its output going to ``log``."""
    with log.open("ab") as out:
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "locust", *args],
                env={**os.environ, **env},
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise LoadError(f"could not start Locust ({exc}); check the Python install") from exc


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    # Already gone (and possibly reaped): nothing left to signal.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def stop_processes(processes: Sequence[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGTERM each process group in order (each writes its final stats), SIGKILL after grace.

    The first process is waited for before the next is signalled: a Locust master must be
    able to collect its workers' last reports before they go away.
    """
    deadline = time.monotonic() + grace
    for process in processes:
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()


def _remote(method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
    try:
        response = requests.request(method, url, timeout=_REMOTE_TIMEOUT, **kwargs)
    except requests.RequestException as exc:
        raise LoadError(f"could not {what} at {url!r} ({exc}); check master_url") from exc
    if response.status_code == 404 and url.endswith("/chaosmesh/timeseries"):
        raise LoadError(
            f"the Locust master at {url.rsplit('/chaosmesh', 1)[0]!r} does not run the bundled "
            "chaosmesh locustfile; start it with -f chaosmesh_istio/locustfiles/"
            "locustfile.py"
        )
    if response.status_code >= 400:
        raise LoadError(
            f"could not {what} at {url!r}: HTTP {response.status_code} {response.text[:200]!r}"
        )
    return response


def remote_series(master_url: str) -> list[dict[str, Any]]:
    """The per-second lines recorded so far by a remote master running the bundled file."""
    body = _remote(
        "GET", f"{master_url}/chaosmesh/timeseries", "read the per-second load series"
    ).json()
    if not isinstance(body, list):
        raise LoadError(f"{master_url!r} answered {body!r} instead of a list of per-second lines")
    return body


def remote_swarm(master_url: str, form: Mapping[str, str]) -> None:
    """Start a load on a remote master (``POST /swarm``)."""
    answer = _remote("POST", f"{master_url}/swarm", "start the load", data=dict(form)).json()
    if not answer.get("success", False):
        raise LoadError(f"the Locust master at {master_url!r} refused the load: {answer!r}")


def remote_stop(master_url: str) -> None:
    """Stop the load on a remote master (``POST /stop``)."""
    _remote("POST", f"{master_url}/stop", "stop the load")
