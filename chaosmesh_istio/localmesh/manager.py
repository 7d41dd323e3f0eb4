"""Start, stop and check the local mesh: detached processes recorded in ``DIR/mesh.json``.

Each process is a *part* (name, pid, url, health url, command line); today the control
plane is the only one. Parts run in their own session with output to ``DIR/logs/``, so
they outlive the command that started them and stop only through :func:`mesh_down`.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import http.client
import json
import logging
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

import yaml

from chaosmesh_istio.errors import MeshError
from chaosmesh_istio.localmesh.controlplane import INFO_FILE, read_token
from chaosmesh_istio.localmesh.store import atomic_write, now_rfc3339
from chaosmesh_istio.localmesh.tls import ensure_certificates

__all__ = [
    "CONTEXT",
    "MeshInfo",
    "Part",
    "PartStatus",
    "mesh_down",
    "mesh_status",
    "mesh_up",
]

logger = logging.getLogger("chaostoolkit").getChild("localmesh")

CONTEXT = "chaosmesh-local"
_MESH_FILE = "mesh.json"
_STOP_TIMEOUT = 10.0
# Started processes stay referenced so that Popen never warns about a running child and
# so that mesh_down in the same process can reap them.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Part:
    """One running process of the mesh."""

    name: str
    pid: int
    url: str
    health_url: str
    argv: list[str]
    log: str
    started: str


@dataclass(frozen=True)
class MeshInfo:
    """Where a running local mesh listens and how to reach it."""

    directory: Path
    kubeconfig: Path
    token_file: Path
    ca_file: Path
    api_url: str
    parts: tuple[Part, ...]

    @property
    def token(self) -> str:
        """The bearer token of the control plane."""
        return self.token_file.read_text().strip()

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly summary (paths as strings, parts by name)."""
        return {
            "dir": str(self.directory),
            "kubeconfig": str(self.kubeconfig),
            "token_file": str(self.token_file),
            "ca_file": str(self.ca_file),
            "api_url": self.api_url,
            "parts": {p.name: {"pid": p.pid, "url": p.url, "log": p.log} for p in self.parts},
        }


class PartStatus(TypedDict):
    """Health of one part as :func:`mesh_status` reports it."""

    state: Literal["healthy", "unhealthy", "stopped"]
    pid: int
    url: str
    detail: str


def _resolve(directory: str | os.PathLike[str]) -> Path:
    return Path(directory).expanduser().resolve()


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialize up/down on one directory across processes."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fh = open(directory / ".lock", "a")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise MeshError(
            f"cannot use {str(directory)!r} as the mesh directory: {exc.strerror or exc}"
        ) from exc
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_info(directory: Path) -> MeshInfo | None:
    try:
        data = json.loads((directory / _MESH_FILE).read_text())
        return MeshInfo(
            directory=directory,
            kubeconfig=Path(data["kubeconfig"]),
            token_file=Path(data["token_file"]),
            ca_file=Path(data["ca_file"]),
            api_url=data["api_url"],
            parts=tuple(Part(**p) for p in data["parts"]),
        )
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring unreadable %s: %s", directory / _MESH_FILE, exc)
        return None


def _write_info(info: MeshInfo) -> None:
    data = info.to_json() | {"parts": [asdict(p) for p in info.parts]}
    atomic_write(info.directory / _MESH_FILE, json.dumps(data, indent=2).encode())


def _alive(pid: int) -> bool:
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


def _is_ours(part: Part) -> bool:
    """Guard against a recycled pid: the process must run the recorded command (prefix)."""
    try:
        cmdline = Path(f"/proc/{part.pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return False
    expected = [arg.encode() for arg in part.argv]
    return cmdline.split(b"\0")[: len(expected)] == expected


def _healthy(url: str, ca_file: Path) -> tuple[bool, str]:
    """GET ``url`` expecting 200; a plain client whose socket is closed on every path."""
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


def _stop(part: Part) -> bool:
    """Stop one part (its whole process group); True if something was running."""
    if not _alive(part.pid) or not _is_ours(part):
        return False
    logger.info("stopping %s (pid %d)", part.name, part.pid)
    for signum, wait in ((signal.SIGTERM, _STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(part.pid, signum)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(part.pid):
                _CHILDREN.pop(part.pid, None)
                return True
            time.sleep(0.05)
        logger.warning("%s (pid %d) ignored signal %d", part.name, part.pid, signum)
    raise MeshError(f"could not stop {part.name} (pid {part.pid}); kill it by hand")


def _orphan_controlplane(directory: Path) -> Part | None:
    """A control plane that started but never made it into mesh.json (crash during up)."""
    try:
        pid = int(json.loads((directory / INFO_FILE).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Part("controlplane", pid, "", "", _controlplane_argv(directory, 0)[:5], "", "")


def _controlplane_argv(directory: Path, port: int) -> list[str]:
    tls = directory / "tls"
    return [
        sys.executable,
        "-m",
        "chaosmesh_istio.localmesh.controlplane",
        "--dir",
        str(directory),
        "--port",
        str(port),
        "--token-file",
        str(directory / "token"),
        "--tls-cert",
        str(tls / "server.crt"),
        "--tls-key",
        str(tls / "server.key"),
    ]


def _start_controlplane(directory: Path, port: int, ca_file: Path, timeout: float) -> Part:
    info_path = directory / INFO_FILE
    info_path.unlink(missing_ok=True)
    log_path = directory / "logs" / "controlplane.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = _controlplane_argv(directory, port)
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
    deadline = time.monotonic() + timeout
    detail = "no answer yet"
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise MeshError(
                f"the control plane exited with code {child.returncode} while "
                f"starting; see {str(log_path)!r}"
            )
        with contextlib.suppress(OSError, ValueError, KeyError):
            url = json.loads(info_path.read_text())["url"]
            ok, detail = _healthy(f"{url}/readyz", ca_file)
            if ok:
                logger.info("control plane (pid %d) ready at %s", child.pid, url)
                return Part(
                    "controlplane",
                    child.pid,
                    url,
                    f"{url}/readyz",
                    argv,
                    str(log_path),
                    now_rfc3339(),
                )
        time.sleep(0.05)
    child.kill()
    child.wait()
    _CHILDREN.pop(child.pid, None)
    raise MeshError(
        f"the control plane did not become ready within {timeout:g} s "
        f"({detail}); see {str(log_path)!r}"
    )


def _write_kubeconfig(path: Path, url: str, token: str, ca_file: Path) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT,
                "cluster": {
                    "server": url,
                    "certificate-authority-data": base64.b64encode(ca_file.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": CONTEXT, "user": {"token": token}}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"},
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }
    atomic_write(path, yaml.safe_dump(config, sort_keys=False).encode(), mode=0o600)


def mesh_up(directory: str | os.PathLike[str], *, port: int = 0, timeout: float = 30.0) -> MeshInfo:
    """Start the local mesh in ``directory`` (or return it if it already runs healthy)."""
    root = _resolve(directory)
    try:
        with _locked(root):
            return _up(root, port, timeout)
    except OSError as exc:
        raise MeshError(f"cannot start the local mesh in {str(root)!r}: {exc}") from exc


def _up(root: Path, port: int, timeout: float) -> MeshInfo:
    """Start (or reuse) the parts; the caller holds the directory lock."""
    current = _read_info(root)
    if current is not None:
        if all(_alive(p.pid) and _healthy(p.health_url, current.ca_file)[0] for p in current.parts):
            logger.info("local mesh already running in %s", root)
            if not current.kubeconfig.exists():
                _write_kubeconfig(
                    current.kubeconfig, current.api_url, current.token, current.ca_file
                )
            return current
        _stop_all(root, current)
    token_file = root / "token"
    token = read_token(token_file)
    tls = ensure_certificates(root)
    part = _start_controlplane(root, port, tls.ca, timeout)
    info = MeshInfo(root, root / "kubeconfig", token_file, tls.ca, part.url, (part,))
    try:
        _write_kubeconfig(info.kubeconfig, part.url, token, tls.ca)
        _write_info(info)
    except BaseException:
        _stop(part)
        raise
    return info


def _stop_all(root: Path, info: MeshInfo | None) -> list[str]:
    parts = list(info.parts) if info else []
    orphan = _orphan_controlplane(root)
    if orphan is not None and orphan.pid not in {p.pid for p in parts}:
        parts.append(orphan)
    stopped = [f"{p.name} (pid {p.pid})" for p in reversed(parts) if _stop(p)]
    (root / INFO_FILE).unlink(missing_ok=True)
    (root / _MESH_FILE).unlink(missing_ok=True)
    return stopped


def mesh_down(directory: str | os.PathLike[str]) -> list[str]:
    """Stop every part of the mesh; state stays on disk. Returns what was stopped."""
    root = _resolve(directory)
    if not root.is_dir():
        return []
    with _locked(root):
        return _stop_all(root, _read_info(root))


def mesh_status(directory: str | os.PathLike[str]) -> dict[str, PartStatus]:
    """Health of each recorded part; empty when the mesh was never started or is down."""
    root = _resolve(directory)
    info = _read_info(root)
    if info is None:
        return {}
    report: dict[str, PartStatus] = {}
    for part in info.parts:
        if not _alive(part.pid):
            report[part.name] = {
                "state": "stopped",
                "pid": part.pid,
                "url": part.url,
                "detail": f"process {part.pid} is not running",
            }
            continue
        ok, detail = _healthy(part.health_url, info.ca_file)
        report[part.name] = {
            "state": "healthy" if ok else "unhealthy",
            "pid": part.pid,
            "url": part.url,
            "detail": detail,
        }
    return report
