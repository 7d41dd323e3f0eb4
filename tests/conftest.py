"""Shared fixtures: a real local mesh in a temporary directory, either the control plane
alone (fast: ``local_mesh``, ``fresh_mesh``) or every part (``full_mesh``)."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from chaosmesh_istio.localmesh.manager import mesh_down, mesh_up

__all__ = ["FullMesh", "LocalMesh", "mesh_processes", "port_is_free", "process_exists", "vs_body"]


@dataclass(frozen=True)
class LocalMesh:
    """A running local mesh: where it lives and how to talk to its API server."""

    dir: Path
    url: str
    token: str
    kubeconfig: Path
    ca: Path
    pid: int

    def session(self) -> requests.Session:
        """A requests session with the bearer token and the mesh's CA."""
        session = requests.Session()
        # REQUESTS_CA_BUNDLE and proxy variables would override ``verify`` and the route.
        session.trust_env = False
        session.headers["Authorization"] = f"Bearer {self.token}"
        session.verify = str(self.ca)
        return session


def process_exists(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rpartition(")")[2].split()[0] != "Z"
    return True


def port_is_free(port: int) -> bool:
    """Whether a server can listen on 127.0.0.1:port again (nobody listens on it)."""
    with socket.socket() as sock:
        # As every server does: connections closed a moment ago (TIME_WAIT) do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def mesh_processes(directory: Path) -> list[int]:
    """Live processes whose command line names ``directory`` (every part of its mesh does)."""
    needle = str(directory.resolve()).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            with contextlib.suppress(OSError):
                if needle in (proc / "cmdline").read_bytes() and process_exists(int(proc.name)):
                    found.append(int(proc.name))
    return found


@dataclass(frozen=True)
class FullMesh(LocalMesh):
    """A local mesh with every part: data plane, sample app and Prometheus too."""

    ingress_url: str
    prometheus_url: str
    admin_url: str
    listeners: dict[str, str]


def vs_body(name: str = "reviews", namespace: str = "default", **meta: Any) -> dict[str, Any]:
    """A valid VirtualService routing to subset v1."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace, **meta},
        "spec": {
            "hosts": [name],
            "http": [{"route": [{"destination": {"host": name, "subset": "v1"}}]}],
        },
    }


def _run_mesh(directory: Path) -> Iterator[LocalMesh]:
    try:
        info = mesh_up(directory, full=False)
        yield LocalMesh(
            dir=info.directory,
            url=info.api_url,
            token=info.token,
            kubeconfig=info.kubeconfig,
            ca=info.ca_file,
            pid=info.parts[0].pid,
        )
    finally:
        # Also runs when mesh_up failed half-way or the test failed: nothing is left behind.
        mesh_down(directory)


@pytest.fixture(scope="module")
def local_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    """A local mesh shared by the tests of one module."""
    yield from _run_mesh(tmp_path_factory.mktemp("mesh"))


@pytest.fixture
def fresh_mesh(tmp_path: Path) -> Iterator[LocalMesh]:
    """A local mesh of its own for one test (e.g. to kill and restart it)."""
    yield from _run_mesh(tmp_path / "mesh")


@pytest.fixture(scope="module")
def full_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FullMesh]:
    """A whole local mesh (every part) shared by the tests of one module."""
    directory = tmp_path_factory.mktemp("full-mesh")
    try:
        info = mesh_up(directory)
        assert info.ingress_url and info.prometheus_url and info.admin_url
        yield FullMesh(
            dir=info.directory,
            url=info.api_url,
            token=info.token,
            kubeconfig=info.kubeconfig,
            ca=info.ca_file,
            pid=info.parts[0].pid,
            ingress_url=info.ingress_url,
            prometheus_url=info.prometheus_url,
            admin_url=info.admin_url,
            listeners=dict(info.listeners),
        )
    finally:
        mesh_down(directory)


@pytest.fixture
def api(local_mesh: LocalMesh) -> Iterator[requests.Session]:
    """An authenticated requests session on the module's mesh."""
    with local_mesh.session() as session:
        yield session


def pytest_configure(config: pytest.Config) -> None:
    """No sentinel per injection unless a test asks for one (configuration key wins).

    A sentinel is a Python process per injection; hundreds of them would only slow the
    suite. The tests of the sentinel and of SIGKILL turn it on explicitly.
    """
    os.environ.setdefault("CHAOSMESH_SENTINEL", "0")
