"""kubectl against the local control plane, with its default (client-side) validation.

Runs every kubectl found: the one on PATH, plus any listed in ``$CHAOSMESH_EXTRA_KUBECTL``
(os.pathsep-separated paths, e.g. an old 1.20 binary) to check older clients by hand.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import LocalMesh

pytestmark = pytest.mark.kubectl

_names = itertools.count()
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def _binaries() -> list[str]:
    found = [shutil.which("kubectl") or ""]
    found += os.environ.get("CHAOSMESH_EXTRA_KUBECTL", "").split(os.pathsep)
    return [path for path in found if path and os.access(path, os.X_OK)]


_PARAMS: list[str | None] = [*_binaries()] or [None]


@pytest.fixture(params=_PARAMS, ids=lambda p: Path(p).name if p else "none")
def kubectl(request: pytest.FixtureRequest, local_mesh: LocalMesh, tmp_path: Path) -> Kubectl:
    binary = request.param
    if binary is None:
        pytest.skip("kubectl is not on PATH")
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "KUBECONFIG": str(local_mesh.kubeconfig),
    }

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [binary, "--cache-dir", str(tmp_path / "cache"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check:
            assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done

    return run


def manifest(path: Path, name: str, subset: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": name},
                "spec": {
                    "hosts": [name],
                    "http": [{"route": [{"destination": {"host": name, "subset": subset}}]}],
                },
            }
        )
    )
    return path


def test_apply_get_patch_delete(kubectl: Kubectl, tmp_path: Path) -> None:
    run = kubectl
    name = f"kubectl-{next(_names)}"
    first = manifest(tmp_path / "v1.yaml", name, "v1")
    assert (
        f"virtualservice.networking.istio.io/{name} created"
        in run("apply", "-f", str(first)).stdout
    )
    assert "unchanged" in run("apply", "-f", str(first)).stdout
    second = manifest(tmp_path / "v2.yaml", name, "v2")
    assert "configured" in run("apply", "-f", str(second)).stdout

    table = run("get", "virtualservices").stdout
    header, *rows = table.splitlines()
    assert header.split() == ["NAME", "GATEWAYS", "HOSTS", "AGE"]
    assert any(row.split()[0] == name and f'["{name}"]' in row for row in rows)

    got = yaml.safe_load(run("get", "vs", name, "-o", "yaml").stdout)
    assert got["spec"]["http"][0]["route"][0]["destination"]["subset"] == "v2"
    assert "kubectl.kubernetes.io/last-applied-configuration" in got["metadata"]["annotations"]

    run("patch", "vs", name, "--type=merge", "-p", '{"metadata":{"labels":{"chaos":"on"}}}')
    run(
        "patch",
        "vs",
        name,
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/spec/hosts/0","value":"patched"}]',
    )
    got = yaml.safe_load(run("get", "vs", name, "-o", "yaml").stdout)
    assert got["metadata"]["labels"] == {"chaos": "on"} and got["spec"]["hosts"] == ["patched"]
    assert run("get", "vs", "-l", "chaos=on", "-o", "name").stdout.split() == [
        f"virtualservice.networking.istio.io/{name}"
    ]

    test_op = '[{"op":"test","path":"/metadata/resourceVersion","value":"0"}]'
    failed = run("patch", "vs", name, "--type=json", "-p", test_op, check=False)
    assert failed.returncode != 0

    assert f'"{name}" deleted' in run("delete", "vs", name).stdout
    missing = run("get", "vs", name, check=False)
    assert missing.returncode != 0
    assert f'virtualservices.networking.istio.io "{name}" not found' in missing.stderr


def test_invalid_manifest_is_rejected_with_the_field(kubectl: Kubectl, tmp_path: Path) -> None:
    run = kubectl
    path = manifest(tmp_path / "bad.yaml", "bad-abort", "v1")
    body = yaml.safe_load(path.read_text())
    body["spec"]["http"][0]["fault"] = {"abort": {"httpStatus": 700}}
    path.write_text(yaml.safe_dump(body))
    failed = run("apply", "-f", str(path), check=False)
    assert failed.returncode != 0
    assert "spec.http[0].fault.abort.httpStatus" in failed.stderr


def test_namespaces_and_discovery(kubectl: Kubectl) -> None:
    run = kubectl
    assert "default" in run("get", "namespaces", "-o", "name").stdout
    resources = run("api-resources", "--api-group=networking.istio.io").stdout
    assert "virtualservices" in resources and "destinationrules" in resources
