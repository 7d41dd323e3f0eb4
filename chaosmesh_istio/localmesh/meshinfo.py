"""What ``DIR/mesh.json`` records of a running local mesh, and the kubeconfig to reach it."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

import yaml

from chaosmesh_istio.localmesh.processes import Part
from chaosmesh_istio.localmesh.store import atomic_write

__all__ = [
    "CONTEXT",
    "MESH_FILE",
    "MeshInfo",
    "PartStatus",
    "read_info",
    "write_info",
    "write_kubeconfig",
]

logger = logging.getLogger("chaostoolkit").getChild("localmesh")

CONTEXT = "chaosmesh-local"
MESH_FILE = "mesh.json"


@dataclass(frozen=True)
class MeshInfo:
    """Where a running local mesh listens and how to reach it."""

    directory: Path
    kubeconfig: Path
    token_file: Path
    ca_file: Path
    api_url: str
    parts: tuple[Part, ...]
    ingress_url: str | None = None
    prometheus_url: str | None = None
    admin_url: str | None = None
    listeners: Mapping[str, str] = field(default_factory=dict)

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
            "ingress_url": self.ingress_url,
            "prometheus_url": self.prometheus_url,
            "admin_url": self.admin_url,
            "listeners": dict(self.listeners),
            "parts": {p.name: {"pid": p.pid, "url": p.url, "log": p.log} for p in self.parts},
        }


class PartStatus(TypedDict):
    """Health of one part as :func:`mesh_status` reports it."""

    state: Literal["healthy", "unhealthy", "stopped"]
    pid: int
    url: str
    detail: str


def read_info(directory: Path) -> MeshInfo | None:
    """The mesh recorded in ``directory`` (None if none or unreadable)."""
    try:
        data = json.loads((directory / MESH_FILE).read_text())
        return MeshInfo(
            directory=directory,
            kubeconfig=Path(data["kubeconfig"]),
            token_file=Path(data["token_file"]),
            ca_file=Path(data["ca_file"]),
            api_url=data["api_url"],
            parts=tuple(Part(**p) for p in data["parts"]),
            ingress_url=data.get("ingress_url"),
            prometheus_url=data.get("prometheus_url"),
            admin_url=data.get("admin_url"),
            listeners=dict(data.get("listeners") or {}),
        )
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring unreadable %s: %s", directory / MESH_FILE, exc)
        return None


def write_info(info: MeshInfo) -> None:
    """Record ``info`` in its directory's mesh.json (parts in full)."""
    data = info.to_json() | {"parts": [asdict(p) for p in info.parts]}
    atomic_write(info.directory / MESH_FILE, json.dumps(data, indent=2).encode())


def write_kubeconfig(path: Path, url: str, token: str, ca_file: Path) -> None:
    """Write a kubeconfig (mode 0600: it holds the token) whose context is the mesh."""
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
