"""Configuration keys of chaosmesh_istio and their defaults.

Every key is read from the Chaos Toolkit ``configuration`` block (``--var`` on the CLI);
the README documents them all.
"""

from __future__ import annotations

import datetime as dt
import functools
import getpass
import re
import secrets as _random
import socket
from collections.abc import Mapping
from typing import Any

from chaosmesh_istio.durations import bounded_duration
from chaosmesh_istio.errors import InvalidArgument

__all__ = [
    "DEFAULT_TTL",
    "SYSTEM_NAMESPACES",
    "Configuration",
    "Secrets",
    "check_namespace",
    "expiry",
    "owner",
    "run_id",
    "setting",
]

Configuration = Mapping[str, Any] | None
Secrets = Mapping[str, Any] | None

DEFAULT_TTL = "15m"
SYSTEM_NAMESPACES = ("kube-system", "istio-system")
_MAX_TTL_NS = 24 * 3600 * 10**9
_RUN_ID = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,38}[a-z0-9])?")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")


def setting(configuration: Configuration, key: str, default: Any = None) -> Any:
    """One configuration value, or the default when unset."""
    if configuration is None:
        return default
    value = configuration.get(key)
    return default if value is None else value


def run_id(configuration: Configuration = None) -> str:
    """The run id: ``chaosmesh_run_id`` when configured, else one generated per process."""
    configured = setting(configuration, "chaosmesh_run_id")
    if configured is not None:
        if not isinstance(configured, str) or not _RUN_ID.fullmatch(configured):
            raise InvalidArgument(
                f"chaosmesh_run_id must be 1-40 lowercase letters, digits or '-' (not at the "
                f"ends), got {configured!r}"
            )
        return configured
    return _generated_run_id()


@functools.cache
def _generated_run_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{_random.token_hex(3)}"


def owner(configuration: Configuration = None) -> str:
    """Who runs the experiment, recorded on every fault (``chaosmesh_owner``)."""
    configured = setting(configuration, "chaosmesh_owner")
    if configured is not None:
        return str(configured)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def expiry(ttl: object, now: dt.datetime | None = None) -> str:
    """The RFC 3339 time a fault with this TTL expires (TTL from 1s to 24h)."""
    try:
        ns = bounded_duration("ttl", ttl, 10**9, _MAX_TTL_NS)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    start = now or dt.datetime.now(dt.UTC)
    return (start + dt.timedelta(microseconds=ns // 1000)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _namespace_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [n.strip() for n in value.split(",") if n.strip()]
    if isinstance(value, list | tuple) and all(isinstance(n, str) for n in value):
        return list(value)
    raise InvalidArgument(
        f"chaosmesh_allowed_namespaces must be a list of namespaces or a comma-separated "
        f"string, got {value!r}"
    )


def check_namespace(namespace: object, configuration: Configuration = None) -> str:
    """Refuse namespaces outside the allow-list, and system namespaces unless listed."""
    if not isinstance(namespace, str) or not _DNS_LABEL.fullmatch(namespace):
        raise InvalidArgument(
            f"namespace must be a Kubernetes namespace name (lowercase letters, digits and "
            f"'-'), got {namespace!r}"
        )
    allowed_raw = setting(configuration, "chaosmesh_allowed_namespaces")
    allowed = _namespace_list(allowed_raw) if allowed_raw is not None else None
    if allowed is not None and namespace not in allowed:
        raise InvalidArgument(
            f"namespace {namespace!r} is not in chaosmesh_allowed_namespaces {allowed!r}; add "
            "it there to run experiments in it"
        )
    if namespace in SYSTEM_NAMESPACES and (allowed is None or namespace not in allowed):
        raise InvalidArgument(
            f"namespace {namespace!r} is a system namespace; list it explicitly in "
            "chaosmesh_allowed_namespaces to inject faults there"
        )
    return namespace
