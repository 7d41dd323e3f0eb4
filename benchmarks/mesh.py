"""The local mesh the benchmarks share, and the cheap hop they measure on.

The hop is reviews -> ratings: a request sent to the reviews sidecar's listener with
``Host: ratings`` is routed by the data plane with the ``ratings`` VirtualService, exactly
as the sample app's reviews calls it; ratings itself answers in well under a millisecond.
"Direct" is the same request to the ratings workload's own port, with no proxy.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from chaosmesh_istio.localmesh.manager import mesh_down, mesh_up
from chaosmesh_istio.localmesh.meshinfo import MeshInfo

__all__ = ["BenchMesh", "local_mesh", "wait_until"]

PATH = "/ratings/1"


@dataclass(frozen=True)
class BenchMesh:
    """A running local mesh and the URLs of the measured hop."""

    info: MeshInfo
    proxied: str  # the reviews sidecar listener; send Host: ratings
    direct: str  # the ratings workload itself

    @property
    def proxied_url(self) -> str:
        return self.proxied + PATH

    @property
    def direct_url(self) -> str:
        return self.direct + PATH

    def tagged_status(self, session: requests.Session, run_id: str) -> int:
        """The status of one request on the hop carrying the run's scope header."""
        headers = {"Host": "ratings", "x-chaos-run": run_id}
        return session.get(self.proxied_url, headers=headers, timeout=5).status_code

    def config(self, run_id: str, **extra: object) -> dict[str, object]:
        """An activity configuration for one measured run (no sentinel process)."""
        return {"chaosmesh_run_id": run_id, "chaosmesh_sentinel": False, **extra}


def wait_until(check: object, timeout: float = 10.0, poll: float = 0.0) -> float:
    """Call `check()` until true; return the perf_counter time it first was. Raises on timeout."""
    deadline = time.perf_counter() + timeout
    while True:
        now = time.perf_counter()
        if check():  # type: ignore[operator]
            return now
        if now > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        if poll:
            time.sleep(poll)


@contextlib.contextmanager
def local_mesh() -> Iterator[BenchMesh]:
    """A full local mesh in a temporary directory, with KUBECONFIG pointing at it."""
    with tempfile.TemporaryDirectory(prefix="chaosmesh-bench-") as tmp:
        info = mesh_up(Path(tmp) / "mesh")
        saved = {k: os.environ.get(k) for k in ("KUBECONFIG", "CHAOSMESH_SENTINEL")}
        os.environ["KUBECONFIG"] = str(info.kubeconfig)
        os.environ["CHAOSMESH_SENTINEL"] = "0"
        try:
            app = json.loads((info.directory / "sampleapp-config.json").read_text())
            ports = {w["name"]: w["port"] for w in app["workloads"]}
            mesh = BenchMesh(
                info=info,
                proxied=info.listeners["reviews-v1"],
                direct=f"http://127.0.0.1:{ports['ratings-v1']}",
            )
            with requests.Session() as session:
                answer = session.get(mesh.proxied_url, headers={"Host": "ratings"}, timeout=5)
                answer.raise_for_status()
            yield mesh
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            mesh_down(info.directory)
