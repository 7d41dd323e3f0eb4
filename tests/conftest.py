"""Shared fixtures: a real local mesh (control plane process) in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from chaosmesh_istio.localmesh.manager import mesh_down, mesh_up

__all__ = ["LocalMesh", "vs_body"]


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
        info = mesh_up(directory)
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


@pytest.fixture
def api(local_mesh: LocalMesh) -> Iterator[requests.Session]:
    """An authenticated requests session on the module's mesh."""
    with local_mesh.session() as session:
        yield session
