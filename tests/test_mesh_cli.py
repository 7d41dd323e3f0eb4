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


@pytest.fixture
def mesh_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "mesh"
    yield directory
    mesh_down(directory)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rpartition(")")[2].split()[0] != "Z"


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_up_status_down(mesh_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mesh", "up", "--dir", str(mesh_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dir"] == str(mesh_dir.resolve())
    assert info["api_url"].startswith("https://127.0.0.1:")
    assert Path(info["kubeconfig"]).is_file()
    assert oct(Path(info["token_file"]).stat().st_mode & 0o777) == "0o600"
    part = info["parts"]["controlplane"]
    pid, port = part["pid"], int(part["url"].rsplit(":", 1)[1])
    assert process_exists(pid)
    assert (mesh_dir / "controlplane.json").is_file()
    assert json.loads((mesh_dir / "mesh.json").read_text())["parts"][0]["name"] == "controlplane"

    assert main(["mesh", "status", "--dir", str(mesh_dir), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["healthy"] and status["parts"]["controlplane"]["state"] == "healthy"

    assert main(["mesh", "up", "--dir", str(mesh_dir), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["parts"]["controlplane"]["pid"] == pid, "up twice reuses the running mesh"

    assert main(["mesh", "down", "--dir", str(mesh_dir)]) == 0
    assert f"controlplane (pid {pid})" in capsys.readouterr().out
    assert not process_exists(pid)
    assert port_is_free(port)
    assert not (mesh_dir / "controlplane.json").exists()
    assert (mesh_dir / "state").is_dir(), "state stays on disk"

    assert main(["mesh", "status", "--dir", str(mesh_dir)]) == 1
    assert "not running" in capsys.readouterr().out
    assert main(["mesh", "down", "--dir", str(mesh_dir)]) == 0
    assert "was not running" in capsys.readouterr().out


def test_status_reports_a_dead_part(mesh_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mesh", "up", "--dir", str(mesh_dir)]) == 0
    out = capsys.readouterr().out
    assert "kubeconfig" in out and "https://127.0.0.1:" in out
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
    assert code == 2
    assert err.startswith("chaosmesh-istio: error: the control plane exited")
    assert "controlplane.log" in err and err.count("\n") == 1


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
    assert main(["mesh", "up", "--dir", str(blocker / "mesh")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chaosmesh-istio: error: cannot use ") and err.count("\n") == 1
