"""The data plane's configuration file and its service registry.

The file is JSON (``mesh up`` writes it)::

    {
      "api": {"url": "https://127.0.0.1:P", "token_file": "/d/token", "ca_file": "/d/ca.crt"},
      "domain": "cluster.local",
      "admin": {"host": "127.0.0.1", "port": 15000},
      "group_header": "x-chaos-group", "group_label": "chaos_group",
      "listeners": [
        {"name": "ingress", "port": 8080, "gateway": "istio-system/ingressgateway",
         "workload": "istio-ingressgateway", "namespace": "istio-system",
         "labels": {"app": "istio-ingressgateway"}},
        {"name": "frontend", "port": 15001, "gateway": "mesh", "workload": "frontend-v1",
         "namespace": "default", "labels": {"app": "frontend", "version": "v1"}}
      ],
      "services": [
        {"name": "reviews", "namespace": "default", "instances": [
          {"address": "127.0.0.1:9081", "workload": "reviews-v1",
           "labels": {"app": "reviews", "version": "v1"}}]}
      ],
      "state_file": "/d/dataplane.json"
    }

Each listener is the outbound side of one workload's sidecar (``gateway`` "mesh") or an
ingress gateway (``gateway`` "namespace/name"); port 0 picks a free port. ``domain``,
``admin``, ``group_header`` and ``group_label`` are optional (defaults shown above, admin
port 0). Once the listeners are up and the first snapshot is applied, the data plane writes
``state_file`` with ``{"pid", "admin_url", "listeners": {name: url}, "version"}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaosmesh_istio.errors import MeshError
from chaosmesh_istio.localmesh.routing import host_matches

__all__ = [
    "ApiConfig",
    "DataPlaneConfig",
    "Instance",
    "ListenerConfig",
    "Service",
    "load_config",
]


@dataclass(frozen=True)
class ApiConfig:
    """Where the control plane listens and how to authenticate to it."""

    url: str
    token_file: Path
    ca_file: Path


@dataclass(frozen=True)
class ListenerConfig:
    """One proxy listener: the client side of a workload, or an ingress gateway."""

    name: str
    port: int
    gateway: str
    workload: str
    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Instance:
    """One endpoint of a service, with the workload it belongs to."""

    address: str
    workload: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Service:
    """A Kubernetes service of the local mesh and its endpoints."""

    name: str
    namespace: str
    fqdn: str
    instances: tuple[Instance, ...]

    def select(self, labels: Mapping[str, str]) -> tuple[Instance, ...]:
        """The instances carrying every label of ``labels`` (a subset's selector)."""
        return tuple(
            i for i in self.instances if all(i.labels.get(k) == v for k, v in labels.items())
        )


@dataclass(frozen=True)
class DataPlaneConfig:
    """The whole configuration file, validated."""

    api: ApiConfig
    listeners: tuple[ListenerConfig, ...]
    services: tuple[Service, ...]
    state_file: Path
    domain: str = "cluster.local"
    admin_host: str = "127.0.0.1"
    admin_port: int = 0
    group_header: str = "x-chaos-group"
    group_label: str = "chaos_group"

    def resolve(self, host: str, namespace: str) -> Service | None:
        """The service a host name (any Kubernetes form, port ignored) stands for when
        written in ``namespace`` (a client's, or a VirtualService's)."""
        for service in self.services:
            if host_matches(service.fqdn, service.namespace, host, namespace, self.domain):
                return service
        return None


def _labels(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise MeshError(f"{where}: labels must map strings to strings, got {raw!r}")
    return dict(raw)


def _str(raw: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value:
        raise MeshError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    return value


def _port(raw: Mapping[str, Any], key: str, where: str, default: int | None = None) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise MeshError(f"{where}: {key!r} must be a port number (0 picks one), got {value!r}")
    return value


def _listener(raw: Mapping[str, Any], index: int) -> ListenerConfig:
    where = f"listeners[{index}]"
    gateway = _str(raw, "gateway", where, "mesh")
    if gateway != "mesh" and "/" not in gateway:
        raise MeshError(f"{where}: gateway must be 'mesh' or 'namespace/name', got {gateway!r}")
    return ListenerConfig(
        name=_str(raw, "name", where),
        port=_port(raw, "port", where, 0),
        gateway=gateway,
        workload=_str(raw, "workload", where),
        namespace=_str(raw, "namespace", where, "default"),
        labels=_labels(raw.get("labels"), where),
    )


def _service(raw: Mapping[str, Any], index: int, domain: str) -> Service:
    where = f"services[{index}]"
    name = _str(raw, "name", where)
    namespace = _str(raw, "namespace", where, "default")
    instances = []
    for j, item in enumerate(raw.get("instances") or []):
        address = _str(item, "address", f"{where}.instances[{j}]")
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise MeshError(f"{where}.instances[{j}]: address must be host:port, got {address!r}")
        instances.append(
            Instance(
                address=address,
                workload=_str(item, "workload", f"{where}.instances[{j}]", f"{name}-v1"),
                labels=_labels(item.get("labels"), f"{where}.instances[{j}]"),
            )
        )
    return Service(name, namespace, f"{name}.{namespace}.svc.{domain}", tuple(instances))


def load_config(path: str | os.PathLike[str]) -> DataPlaneConfig:
    """Read and validate a data plane configuration file; raise MeshError when invalid."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise MeshError(f"could not read the data plane config {str(path)!r}: {exc}") from exc
    if not isinstance(raw, dict):
        raise MeshError(f"the data plane config {str(path)!r} must be a JSON object")
    api = raw.get("api") or {}
    admin = raw.get("admin") or {}
    domain = _str(raw, "domain", "config", "cluster.local")
    listeners = tuple(_listener(item, i) for i, item in enumerate(raw.get("listeners") or []))
    names = [listener.name for listener in listeners]
    if not listeners or len(set(names)) != len(names):
        raise MeshError(f"config: listeners must be a non-empty list of unique names, got {names}")
    return DataPlaneConfig(
        api=ApiConfig(
            url=_str(api, "url", "api").rstrip("/"),
            token_file=Path(_str(api, "token_file", "api")),
            ca_file=Path(_str(api, "ca_file", "api")),
        ),
        listeners=listeners,
        services=tuple(
            _service(item, i, domain) for i, item in enumerate(raw.get("services") or [])
        ),
        state_file=Path(_str(raw, "state_file", "config")),
        domain=domain,
        admin_host=_str(admin, "host", "admin", "127.0.0.1"),
        admin_port=_port(admin, "port", "admin", 0),
        group_header=_str(raw, "group_header", "config", "x-chaos-group").lower(),
        group_label=_str(raw, "group_label", "config", "chaos_group"),
    )
