"""Start, stop and check the local mesh, whose processes ("parts") are recorded in
``DIR/mesh.json``.

``mesh_up`` brings up, in order: the control plane, the sample's Istio objects applied
through its API, the data plane, the sample application and Prometheus, and returns once
Prometheus has scraped the data plane. Each part is recorded as soon as it is spawned, so
a failed or interrupted start is cleaned up by the next ``up`` or ``down``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from chaosmesh_istio.errors import MeshError
from chaosmesh_istio.localmesh import prometheus, topology
from chaosmesh_istio.localmesh.controlplane import INFO_FILE, read_token
from chaosmesh_istio.localmesh.meshinfo import (
    CONTEXT,
    MESH_FILE,
    MeshInfo,
    PartStatus,
    read_info,
    write_info,
    write_kubeconfig,
)
from chaosmesh_istio.localmesh.processes import (
    Part,
    Probe,
    alive,
    healthy,
    read_state,
    spawn,
    stop,
    wait_ready,
)
from chaosmesh_istio.localmesh.tls import ensure_certificates

__all__ = [
    "CONTEXT",
    "PARTS",
    "MeshInfo",
    "Part",
    "PartStatus",
    "mesh_down",
    "mesh_status",
    "mesh_up",
]

logger = logging.getLogger("chaostoolkit").getChild("localmesh")

# Part names in the order they are waited for, listed and stopped (reversed), and how
# messages call them.
PARTS = {
    "controlplane": "control plane",
    "dataplane": "data plane",
    "sampleapp": "sample app",
    "prometheus": "Prometheus",
}
_DATAPLANE_STATE = "dataplane.json"
_SAMPLEAPP_STATE = "sampleapp.json"


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


class _Launch:
    """One start of the mesh: the parts so far, recorded in mesh.json as each is spawned."""

    def __init__(self, root: Path, token_file: Path, ca_file: Path, timeout: float) -> None:
        self.root = root
        self.deadline = time.monotonic() + timeout
        self.info = MeshInfo(root, root / "kubeconfig", token_file, ca_file, "", ())

    def record(self, part: Part, **fields: Any) -> None:
        """Add or update ``part`` (and MeshInfo ``fields``), in memory first, then on disk."""
        parts = {p.name: p for p in self.info.parts} | {part.name: part}
        ordered = tuple(parts[name] for name in PARTS if name in parts)
        self.info = replace(self.info, parts=ordered, **fields)
        write_info(self.info)

    def spawn(self, name: str, argv: list[str]) -> Part:
        """Start a part and record it at once, so that no failure can orphan it."""
        part = spawn(name, argv, self.root)
        self.record(part)
        return part

    def wait(self, part: Part, probe: Probe, **fields: Any) -> Part:
        """Wait until ``probe`` finds ``part`` ready; record its URLs (and ``fields``)."""
        part = wait_ready(part, PARTS[part.name], probe, self.deadline)
        self.record(part, **fields)
        return part

    def remaining(self) -> float:
        """Seconds left of the start's timeout (never below one, to ask at least once)."""
        return max(self.deadline - time.monotonic(), 1.0)


def _probe(
    state_file: Path | None, ca_file: Path, urls: Callable[[Mapping[str, Any]], tuple[str, str]]
) -> Probe:
    """A probe: the part wrote ``state_file`` (if any), then its health URL answers 200."""

    def probe(part: Part) -> tuple[str, str] | str:
        state: Mapping[str, Any] = {}
        if state_file is not None:
            found = read_state(state_file, part.pid)
            if found is None:
                return f"{state_file.name} not written yet"
            state = found
        url, health_url = urls(state)
        ok, detail = healthy(health_url, ca_file)
        return (url, health_url) if ok else detail

    return probe


def _controlplane(launch: _Launch, port: int, token: str) -> None:
    info_path = launch.root / INFO_FILE
    info_path.unlink(missing_ok=True)
    ca_file = launch.info.ca_file
    part = launch.wait(
        launch.spawn("controlplane", _controlplane_argv(launch.root, port)),
        _probe(info_path, ca_file, lambda state: (state["url"], f"{state['url']}/readyz")),
    )
    launch.record(part, api_url=part.url)
    write_kubeconfig(launch.info.kubeconfig, part.url, token, ca_file)


def _module(name: str, config: Path) -> list[str]:
    return [sys.executable, "-m", f"chaosmesh_istio.localmesh.{name}", "--config", str(config)]


def _full(launch: _Launch, port: int, token: str) -> None:
    """Every part, each waited for in order; the slow starters are spawned early."""
    root, ca_file = launch.root, launch.info.ca_file
    plan = topology.plan()
    # Prometheus first: it applies its scrape targets only on a 5 s tick after start, so
    # that wait overlaps the start of the rest (its first scrapes just find nothing yet).
    prometheus.write_config(root, plan.admin_address)
    prom = launch.spawn("prometheus", prometheus.command(root, plan.prometheus_port))
    _controlplane(launch, port, token)
    info = launch.info
    count = topology.apply_sample(info.api_url, token, ca_file)
    logger.info("applied %d sample objects", count)

    dp_state, app_state = root / _DATAPLANE_STATE, root / _SAMPLEAPP_STATE
    dp_state.unlink(missing_ok=True)
    app_state.unlink(missing_ok=True)
    dp_config = topology.write_json(
        root / "dataplane-config.json",
        plan.dataplane_config(info.api_url, info.token_file, ca_file, dp_state),
    )
    app_config = topology.write_json(
        root / "sampleapp-config.json", plan.sampleapp_config(app_state)
    )
    dataplane = launch.spawn("dataplane", _module("dataplane", dp_config))
    # The app needs nothing from the data plane to listen: both start at once.
    sampleapp = launch.spawn("sampleapp", _module("sampleapp", app_config))

    dataplane = launch.wait(
        dataplane,
        _probe(dp_state, ca_file, lambda s: (s["admin_url"], f"{s['admin_url']}/healthz/ready")),
    )
    listeners = dict((read_state(dp_state, dataplane.pid) or {}).get("listeners") or {})
    launch.record(
        dataplane,
        admin_url=dataplane.url,
        listeners=listeners,
        ingress_url=listeners.get(topology.INGRESS),
    )
    frontend = plan.frontend_url
    launch.wait(sampleapp, _probe(app_state, ca_file, lambda _: (frontend, f"{frontend}/healthz")))
    url = plan.prometheus_url
    launch.wait(prom, _probe(None, ca_file, lambda _: (url, f"{url}/-/ready")), prometheus_url=url)
    waited = prometheus.wait_first_scrape(url, plan.admin_address, launch.remaining())
    logger.info("Prometheus scraped the data plane %.1f s after it was ready", waited)


def mesh_up(
    directory: str | os.PathLike[str],
    *,
    port: int = 0,
    timeout: float = 30.0,
    full: bool = True,
) -> MeshInfo:
    """Start the local mesh in ``directory`` (or return it if it already runs healthy).

    ``full=False`` starts only the control plane; ``port`` is the control plane's.
    """
    root = _resolve(directory)
    try:
        with _locked(root):
            return _up(root, port, timeout, full)
    except OSError as exc:
        raise MeshError(f"cannot start the local mesh in {str(root)!r}: {exc}") from exc


def _running(info: MeshInfo, wanted: list[str]) -> bool:
    names = {p.name for p in info.parts}
    return set(wanted) <= names and all(
        alive(p.pid) and healthy(p.health_url, info.ca_file)[0] for p in info.parts
    )


def _up(root: Path, port: int, timeout: float, full: bool) -> MeshInfo:
    """Start (or reuse) the parts; the caller holds the directory lock."""
    wanted = list(PARTS) if full else ["controlplane"]
    current = read_info(root)
    if current is not None:
        if _running(current, wanted):
            logger.info("local mesh already running in %s", root)
            if not current.kubeconfig.exists():
                write_kubeconfig(
                    current.kubeconfig, current.api_url, current.token, current.ca_file
                )
            return current
        _stop_all(root, current)
    started = time.monotonic()
    token_file = root / "token"
    token = read_token(token_file)
    launch = _Launch(root, token_file, ensure_certificates(root).ca, timeout)
    try:
        if full:
            _full(launch, port, token)
        else:
            _controlplane(launch, port, token)
    except BaseException:
        # Whatever failed (or Ctrl-C), nothing started here keeps running.
        _stop_all(root, launch.info)
        raise
    logger.info("local mesh up in %s after %.1f s", root, time.monotonic() - started)
    return launch.info


def _stop_all(root: Path, info: MeshInfo | None) -> list[str]:
    parts = list(info.parts) if info else []
    orphan = _orphan_controlplane(root)
    if orphan is not None and orphan.pid not in {p.pid for p in parts}:
        parts.append(orphan)
    stopped = [f"{p.name} (pid {p.pid})" for p in reversed(parts) if stop(p)]
    (root / INFO_FILE).unlink(missing_ok=True)
    (root / MESH_FILE).unlink(missing_ok=True)
    return stopped


def mesh_down(directory: str | os.PathLike[str]) -> list[str]:
    """Stop every part of the mesh (last started first); state stays on disk.

    Returns what was stopped."""
    root = _resolve(directory)
    if not root.is_dir():
        return []
    with _locked(root):
        return _stop_all(root, read_info(root))


def mesh_status(directory: str | os.PathLike[str]) -> dict[str, PartStatus]:
    """Health of each recorded part; empty when the mesh was never started or is down."""
    root = _resolve(directory)
    info = read_info(root)
    if info is None:
        return {}
    report: dict[str, PartStatus] = {}
    for part in info.parts:
        if not alive(part.pid):
            report[part.name] = {
                "state": "stopped",
                "pid": part.pid,
                "url": part.url,
                "detail": f"process {part.pid} is not running",
            }
            continue
        ok, detail = healthy(part.health_url, info.ca_file)
        report[part.name] = {
            "state": "healthy" if ok else "unhealthy",
            "pid": part.pid,
            "url": part.url,
            "detail": detail,
        }
    return report
