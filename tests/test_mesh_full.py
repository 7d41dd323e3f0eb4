"""The whole local mesh: control plane, data plane, sample app and a real Prometheus."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from chaosmesh_istio.cli import main
from chaosmesh_istio.localmesh.manager import MeshInfo, mesh_down, mesh_status, mesh_up
from chaosmesh_istio.localmesh.topology import sample_objects
from tests.conftest import (
    FullMesh,
    LocalMesh,
    mesh_processes,
    port_is_free,
    process_exists,
    vs_body,
)

VS = "apis/networking.istio.io/v1/namespaces/default/virtualservices"
DR = "apis/networking.istio.io/v1/namespaces/default/destinationrules"
SAMPLE_VS = {o["metadata"]["name"] for o in sample_objects() if o["kind"] == "VirtualService"}


def plain() -> requests.Session:
    """A session that ignores proxy variables: everything here is on 127.0.0.1."""
    session = requests.Session()
    session.trust_env = False
    return session


def names(session: requests.Session, url: str) -> set[str]:
    answer = session.get(url, timeout=10)
    answer.raise_for_status()
    return {item["metadata"]["name"] for item in answer.json()["items"]}


def port(url: str) -> int:
    found = urllib.parse.urlsplit(url).port
    assert found is not None, url
    return found


def mesh_ports(info: MeshInfo) -> set[int]:
    """Every port the mesh listens on: its URLs and every sample workload's."""
    urls = [info.api_url, *info.listeners.values(), *(p.url for p in info.parts)]
    urls += [u for u in (info.ingress_url, info.prometheus_url, info.admin_url) if u]
    app = json.loads((info.directory / "sampleapp-config.json").read_text())
    return {port(u) for u in urls} | {w["port"] for w in app["workloads"]}


def as_local(info: MeshInfo) -> LocalMesh:
    return LocalMesh(
        info.directory, info.api_url, info.token, info.kubeconfig, info.ca_file, info.parts[0].pid
    )


def test_every_part_is_up_and_the_cli_prints_the_urls(
    full_mesh: FullMesh, capsys: pytest.CaptureFixture[str]
) -> None:
    report = mesh_status(full_mesh.dir)
    assert list(report) == ["controlplane", "dataplane", "sampleapp", "prometheus"]
    assert all(part["state"] == "healthy" for part in report.values()), report
    assert full_mesh.ingress_url == full_mesh.listeners["ingress"]
    assert set(full_mesh.listeners) == {
        "ingress",
        "frontend-v1",
        "catalog-v1",
        "reviews-v1",
        "reviews-v2",
        "ratings-v1",
    }
    assert main(["mesh", "up", "--dir", str(full_mesh.dir)]) == 0
    out = capsys.readouterr().out
    for shown in (
        full_mesh.url,
        full_mesh.ingress_url,
        full_mesh.prometheus_url,
        f"export KUBECONFIG={full_mesh.kubeconfig}",
        f"export CHAOSMESH_PROXY_ADMIN_URLS={full_mesh.admin_url}",
    ):
        assert shown in out
    assert main(["mesh", "status", "--dir", str(full_mesh.dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all(" healthy " in line for line in lines)


def test_a_request_through_the_ingress_crosses_every_service(full_mesh: FullMesh) -> None:
    with plain() as session:
        answer = session.get(f"{full_mesh.ingress_url}/product/1", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    page = answer.json()
    assert page["service"] == "frontend" and page["degraded"] is False
    product = page["product"]
    assert product["service"] == "catalog"
    assert product["reviews"]["service"] == "reviews" and product["reviews"]["version"] == "v1"
    assert product["reviews"]["rating"] == {"service": "ratings", "id": "1", "stars": 4}


def test_the_sample_objects_are_served_by_the_api(full_mesh: FullMesh) -> None:
    with full_mesh.session() as api:
        assert names(api, f"{full_mesh.url}/{VS}") >= SAMPLE_VS
        assert names(api, f"{full_mesh.url}/{DR}") >= {"reviews", "ratings"}


def test_prometheus_scrapes_the_istio_metrics(full_mesh: FullMesh) -> None:
    query = 'sum by (destination_service_name) (istio_requests_total{reporter="source"})'
    wanted = {"catalog", "reviews", "ratings"}
    seen: set[str] = set()
    with plain() as session:
        for _ in range(5):
            session.get(f"{full_mesh.ingress_url}/product/2", timeout=10).raise_for_status()
        # Scrapes come every second: a few seconds cover the next one even on a busy machine.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not wanted <= seen:
            answer = session.get(
                f"{full_mesh.prometheus_url}/api/v1/query", params={"query": query}, timeout=5
            )
            answer.raise_for_status()
            seen = {
                r["metric"].get("destination_service_name") for r in answer.json()["data"]["result"]
            }
            time.sleep(0.2)
    assert wanted <= seen


@pytest.fixture
def mesh_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "mesh"
    yield directory
    mesh_down(directory)


def create_user_objects(mesh: LocalMesh) -> dict[str, Any]:
    """A VirtualService of the user's, and a change to one of the sample's."""
    with mesh.session() as api:
        mine = api.post(f"{mesh.url}/{VS}", json=vs_body("mine"), timeout=10)
        assert mine.status_code == 201, mine.text
        ratings = api.get(f"{mesh.url}/{VS}/ratings", timeout=10).json()
        ratings["spec"]["http"][0].pop("timeout")
        assert api.put(f"{mesh.url}/{VS}/ratings", json=ratings, timeout=10).ok
    return dict(mine.json()["spec"])


def assert_objects_after_up(mesh: LocalMesh, mine: dict[str, Any]) -> None:
    """The user's object is kept; the sample's are as shipped."""
    (sample,) = [
        o
        for o in sample_objects()
        if o["kind"] == "VirtualService" and o["metadata"]["name"] == "ratings"
    ]
    with mesh.session() as api:
        assert api.get(f"{mesh.url}/{VS}/mine", timeout=10).json()["spec"] == mine
        ratings = api.get(f"{mesh.url}/{VS}/ratings", timeout=10).json()
    assert ratings["spec"]["http"][0]["timeout"] == sample["spec"]["http"][0]["timeout"]


def test_lifecycle_up_twice_restart_down_up(mesh_dir: Path) -> None:
    started = time.monotonic()
    info = mesh_up(mesh_dir)
    print(f"mesh up took {time.monotonic() - started:.1f} s")
    pids = {p.name: p.pid for p in info.parts}
    assert set(pids) == {"controlplane", "dataplane", "sampleapp", "prometheus"}
    assert mesh_up(mesh_dir).parts == info.parts, "up twice reuses the running mesh"
    mine = create_user_objects(as_local(info))

    # A partial mesh (one part died) is restarted whole by the next up.
    os.kill(pids["dataplane"], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while mesh_status(mesh_dir)["dataplane"]["state"] != "stopped":
        assert time.monotonic() < deadline, "the killed data plane still shows as running"
        time.sleep(0.05)
    restarted = mesh_up(mesh_dir)
    assert all(p.pid != pids[p.name] for p in restarted.parts)
    assert all(not process_exists(pid) for pid in pids.values())
    assert all(s["state"] == "healthy" for s in mesh_status(mesh_dir).values())

    ports = mesh_ports(restarted)
    stopped = mesh_down(mesh_dir)
    assert [s.split()[0] for s in stopped] == [
        "prometheus",
        "sampleapp",
        "dataplane",
        "controlplane",
    ]
    assert [p for p in restarted.parts if process_exists(p.pid)] == []
    assert mesh_processes(mesh_dir) == []
    assert sorted(p for p in ports if not port_is_free(p)) == []
    assert mesh_status(mesh_dir) == {}
    assert (mesh_dir / "state").is_dir(), "state stays on disk"

    again = mesh_up(mesh_dir)
    assert_objects_after_up(as_local(again), mine)
    with plain() as session:
        assert session.get(f"{again.ingress_url}/product/1", timeout=10).json()["degraded"] is False


def test_control_plane_only_then_full(mesh_dir: Path) -> None:
    alone = mesh_up(mesh_dir, full=False)
    assert [p.name for p in alone.parts] == ["controlplane"]
    assert alone.ingress_url is None and alone.prometheus_url is None and alone.listeners == {}
    assert mesh_up(mesh_dir, full=False) == alone
    full = mesh_up(mesh_dir)
    assert [p.name for p in full.parts] == ["controlplane", "dataplane", "sampleapp", "prometheus"]
    assert mesh_up(mesh_dir, full=False) == full, "a full mesh serves a control-plane-only ask"
