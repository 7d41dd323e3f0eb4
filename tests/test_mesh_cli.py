"""``chaosmesh-istio mesh up|down|status``: real processes, ports and files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaosmesh_istio import __version__
from chaosmesh_istio.cli import main
from chaosmesh_istio.localmesh.manager import mesh_down, mesh_status
from tests.conftest import mesh_processes, port_is_free, process_exists


@pytest.fixture
def mesh_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "mesh"
    yield directory
    mesh_down(directory)


def test_up_status_down(mesh_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mesh", "up", "--dir", str(mesh_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dir"] == str(mesh_dir.resolve())
    assert info["api_url"].startswith("https://127.0.0.1:")
    for key in ("ingress_url", "prometheus_url", "admin_url"):
        assert info[key].startswith("http://127.0.0.1:"), key
    assert info["listeners"]["ingress"] == info["ingress_url"]
    assert Path(info["kubeconfig"]).is_file()
    assert oct(Path(info["token_file"]).stat().st_mode & 0o777) == "0o600"
    parts = info["parts"]
    assert list(parts) == ["controlplane", "dataplane", "sampleapp", "prometheus"]
    pids = {name: part["pid"] for name, part in parts.items()}
    ports = {int(part["url"].rsplit(":", 1)[1]) for part in parts.values()}
    ports |= {int(url.rsplit(":", 1)[1]) for url in info["listeners"].values()}
    assert all(process_exists(pid) for pid in pids.values())
    assert (mesh_dir / "controlplane.json").is_file()
    recorded = json.loads((mesh_dir / "mesh.json").read_text())
    assert [p["name"] for p in recorded["parts"]] == list(parts)

    assert main(["mesh", "status", "--dir", str(mesh_dir), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["healthy"] and {p["state"] for p in status["parts"].values()} == {"healthy"}

    assert main(["mesh", "up", "--dir", str(mesh_dir), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again == info, "up twice reuses the running mesh"

    assert main(["mesh", "down", "--dir", str(mesh_dir)]) == 0
    out = capsys.readouterr().out
    assert all(f"{name} (pid {pid})" in out for name, pid in pids.items())
    assert not any(process_exists(pid) for pid in pids.values())
    assert mesh_processes(mesh_dir) == []
    assert all(port_is_free(port) for port in ports)
    assert not (mesh_dir / "controlplane.json").exists()
    assert (mesh_dir / "state").is_dir(), "state stays on disk"

    assert main(["mesh", "status", "--dir", str(mesh_dir)]) == 1
    assert "not running" in capsys.readouterr().out
    assert main(["mesh", "down", "--dir", str(mesh_dir)]) == 0
    assert "was not running" in capsys.readouterr().out


def test_control_plane_only(mesh_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mesh", "up", "--dir", str(mesh_dir), "--control-plane-only", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert list(info["parts"]) == ["controlplane"]
    assert info["ingress_url"] is None and info["prometheus_url"] is None
    assert info["listeners"] == {}


def test_status_reports_a_dead_part(mesh_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mesh", "up", "--dir", str(mesh_dir), "--control-plane-only"]) == 0
    out = capsys.readouterr().out
    assert "kubeconfig" in out and "https://127.0.0.1:" in out and "ingress" not in out
    pid = json.loads((mesh_dir / "mesh.json").read_text())["parts"][0]["pid"]
    os.kill(pid, 9)
    for _ in range(100):
        if mesh_status(mesh_dir)["controlplane"]["state"] == "stopped":
            break
        time.sleep(0.05)
    assert main(["mesh", "status", "--dir", str(mesh_dir)]) == 1
    assert "stopped" in capsys.readouterr().out


def test_port_in_use_is_one_clear_error(mesh_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["mesh", "up", "--dir", str(mesh_dir), "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("chaosmesh-istio: error: the control plane exited")
    assert "controlplane.log" in err and err.count("\n") == 1
    # Prometheus starts first: the failed start stopped it too.
    assert (mesh_dir / "logs" / "prometheus.log").exists()
    assert mesh_processes(mesh_dir) == []
    assert not (mesh_dir / "mesh.json").exists()


def test_default_dir_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHAOSMESH_MESH_DIR", str(tmp_path / "from-env"))
    assert main(["mesh", "status", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["dir"] == str(tmp_path / "from-env")


def test_python_dash_m_and_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chaosmesh_istio.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == f"chaosmesh-istio {__version__}"


def test_unusable_directory_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert main(["mesh", "up", "--dir", str(blocker / "mesh")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chaosmesh-istio: error: cannot use ") and err.count("\n") == 1
