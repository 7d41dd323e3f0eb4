"""The sample topology of the local mesh: its workloads, their ports and configurations.

    ingress -> frontend-v1 -> catalog-v1 -> reviews-v1 | reviews-v2 -> ratings-v1

Every workload gets a port of its own and a sidecar listener on the data plane (its
outbound proxy); the ingress gateway is one more listener. Ports are chosen up front so
that the data plane's and the sample app's configurations can name each other's.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import requests
import yaml

from chaosmesh_istio.errors import MeshError
from chaosmesh_istio.localmesh.store import atomic_write

__all__ = [
    "GROUP_HEADER",
    "GROUP_LABEL",
    "INGRESS",
    "WORKLOADS",
    "Topology",
    "Workload",
    "apply_sample",
    "free_ports",
    "plan",
    "sample_objects",
    "write_json",
]

INGRESS = "ingress"
GROUP_HEADER = "x-chaos-group"
GROUP_LABEL = "chaos_group"
_HOST = "127.0.0.1"
_PLURALS = {"VirtualService": "virtualservices", "DestinationRule": "destinationrules"}


@dataclass(frozen=True)
class Workload:
    """One deployment of the sample application (a service at one version)."""

    name: str
    app: str
    version: str
    namespace: str = "default"

    @property
    def labels(self) -> dict[str, str]:
        """Its pod labels, which DestinationRule subsets select on."""
        return {"app": self.app, "version": self.version}


WORKLOADS = (
    Workload("frontend-v1", "frontend", "v1"),
    Workload("catalog-v1", "catalog", "v1"),
    Workload("reviews-v1", "reviews", "v1"),
    Workload("reviews-v2", "reviews", "v2"),
    Workload("ratings-v1", "ratings", "v1"),
)


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 right now (all held open while picking)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind((_HOST, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _url(port: int) -> str:
    return f"http://{_HOST}:{port}"


@dataclass(frozen=True)
class Topology:
    """The ports of one start of the mesh and the configurations derived from them."""

    ingress_port: int
    admin_port: int
    prometheus_port: int
    workload_ports: Mapping[str, int]
    sidecar_ports: Mapping[str, int]

    @property
    def admin_address(self) -> str:
        """host:port of the data plane's admin server (Prometheus's scrape target)."""
        return f"{_HOST}:{self.admin_port}"

    @property
    def prometheus_url(self) -> str:
        """Where Prometheus will listen."""
        return _url(self.prometheus_port)

    def services(self) -> list[dict[str, Any]]:
        """The service registry: one service per app, one instance per workload."""
        apps: dict[str, list[Workload]] = {}
        for workload in WORKLOADS:
            apps.setdefault(workload.app, []).append(workload)
        return [
            {
                "name": app,
                "namespace": workloads[0].namespace,
                "instances": [
                    {
                        "address": f"{_HOST}:{self.workload_ports[w.name]}",
                        "workload": w.name,
                        "labels": w.labels,
                    }
                    for w in workloads
                ],
            }
            for app, workloads in apps.items()
        ]

    def dataplane_config(
        self, api_url: str, token_file: Path, ca_file: Path, state_file: Path
    ) -> dict[str, Any]:
        """The data plane's configuration (see ``dataplane/config.py``)."""
        ingress = {
            "name": INGRESS,
            "port": self.ingress_port,
            "gateway": "istio-system/ingressgateway",
            "workload": "istio-ingressgateway",
            "namespace": "istio-system",
            "labels": {"app": "istio-ingressgateway"},
        }
        sidecars = [
            {
                "name": w.name,
                "port": self.sidecar_ports[w.name],
                "gateway": "mesh",
                "workload": w.name,
                "namespace": w.namespace,
                "labels": w.labels,
            }
            for w in WORKLOADS
        ]
        return {
            "api": {"url": api_url, "token_file": str(token_file), "ca_file": str(ca_file)},
            "admin": {"host": _HOST, "port": self.admin_port},
            "group_header": GROUP_HEADER,
            "group_label": GROUP_LABEL,
            "listeners": [ingress, *sidecars],
            "services": self.services(),
            "state_file": str(state_file),
        }

    def sampleapp_config(self, state_file: Path) -> dict[str, Any]:
        """The sample app's configuration: each workload calls out through its sidecar.

        No ``propagate`` list: the app's default already carries the group header.
        """
        return {
            "workloads": [
                {
                    "name": w.name,
                    "app": w.app,
                    "version": w.version,
                    "port": self.workload_ports[w.name],
                    "proxy": _url(self.sidecar_ports[w.name]),
                }
                for w in WORKLOADS
            ],
            "state_file": str(state_file),
        }

    @property
    def frontend_url(self) -> str:
        """The frontend workload (the entry of every request: the sample app's health)."""
        return _url(self.workload_ports[WORKLOADS[0].name])


def plan() -> Topology:
    """A topology on ports free right now."""
    count = len(WORKLOADS)
    ports = free_ports(3 + 2 * count)
    names = [w.name for w in WORKLOADS]
    return Topology(
        ingress_port=ports[0],
        admin_port=ports[1],
        prometheus_port=ports[2],
        workload_ports=dict(zip(names, ports[3 : 3 + count], strict=True)),
        sidecar_ports=dict(zip(names, ports[3 + count :], strict=True)),
    )


def write_json(path: Path, config: Mapping[str, Any]) -> Path:
    """Write a configuration file (atomically: a part never reads half of one)."""
    atomic_write(path, json.dumps(config, indent=2).encode())
    return path


def sample_objects() -> list[dict[str, Any]]:
    """The sample application's VirtualServices and DestinationRules (``data/sample.yaml``)."""
    text = resources.files("chaosmesh_istio.localmesh").joinpath("data/sample.yaml").read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _items(api_url: str, obj: Mapping[str, Any]) -> tuple[str, str]:
    group_version = obj["apiVersion"]
    meta = obj["metadata"]
    collection = (
        f"{api_url}/apis/{group_version}/namespaces/{meta.get('namespace', 'default')}/"
        f"{_PLURALS[obj['kind']]}"
    )
    return collection, f"{collection}/{meta['name']}"


@contextlib.contextmanager
def _session(token: str, ca_file: Path) -> Iterator[requests.Session]:
    with requests.Session() as session:
        # Proxy and CA-bundle variables must not redirect a 127.0.0.1 call.
        session.trust_env = False
        session.verify = str(ca_file)
        session.headers["Authorization"] = f"Bearer {token}"
        yield session


def apply_sample(api_url: str, token: str, ca_file: Path) -> int:
    """Create the sample's objects, or replace them where they exist; the count applied.

    Users' own objects are left alone, so ``up`` after ``down`` keeps them and restores
    the sample's.
    """
    objects = sample_objects()
    try:
        with _session(token, ca_file) as session:
            for obj in objects:
                collection, item = _items(api_url, obj)
                answer = session.post(collection, json=obj, timeout=10)
                if answer.status_code == 409:
                    current = session.get(item, timeout=10)
                    current.raise_for_status()
                    version = current.json()["metadata"]["resourceVersion"]
                    body = {**obj, "metadata": {**obj["metadata"], "resourceVersion": version}}
                    answer = session.put(item, json=body, timeout=10)
                if not answer.ok:
                    raise MeshError(
                        f"the control plane refused the sample {obj['kind']} "
                        f"{obj['metadata']['name']!r}: {answer.status_code} {answer.text[:200]}"
                    )
    except requests.RequestException as exc:
        raise MeshError(f"could not apply the sample objects at {api_url}: {exc}") from exc
    return len(objects)
