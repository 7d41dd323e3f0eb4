"""Header-propagation preflight: do tagged requests reach the faulted hop's caller?

Istio applies a fault in the caller's sidecar, so the scope header (and the group header
the metrics are split by) must travel through every service between the entry point and
that caller. The preflight sends a few read-only requests to the experiment's entry URL
carrying the scope header and ``x-chaos-group: preflight-<random>``, then asks
Prometheus whether the caller's sidecar reported requests to the target service with that
group (``reporter="source"``). Nothing is written anywhere.
"""

from __future__ import annotations

import json
import secrets as _random
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import requests
from chaoslib import substitute

from chaosmesh_istio.errors import ChaosMeshIstioError
from chaosmesh_istio.experiment import Experiment, call_arguments
from chaosmesh_istio.metrics_client import endpoint, instant_query
from chaosmesh_istio.settings import setting

__all__ = ["check_propagation", "entry_request", "target_services"]

_REQUESTS = 5
_DEFAULT_GROUP_HEADER = "x-chaos-group"
_DEFAULT_GROUP_LABEL = "chaos_group"


def _quote(value: str) -> str:
    # A JSON string is a valid PromQL string literal.
    return json.dumps(value, ensure_ascii=False)


def entry_request(
    experiment: Experiment, configuration: Mapping[str, Any], secrets: Mapping[str, Any]
) -> str | None:
    """The URL to send tagged requests to: the load's host and first path, else
    ``ingress_url`` and the path of the first HTTP probe under it; None when unknown."""
    for step in experiment.steps():
        if step.is_ours("start_load"):
            _, arguments = call_arguments(step, configuration, secrets)
            paths = arguments.get("paths") or [{"path": "/"}]
            first = paths[0] if isinstance(paths[0], Mapping) else {}
            return str(arguments["host"]).rstrip("/") + str(first.get("path", "/"))
    ingress = setting(configuration, "ingress_url")
    if not isinstance(ingress, str) or not ingress:
        return None
    base = ingress.rstrip("/")
    for step in experiment.steps():
        url = step.provider.get("url") if step.provider.get("type") == "http" else None
        if isinstance(url, str):
            resolved = str(substitute(url, configuration, secrets))
            if resolved.startswith(base + "/"):
                return resolved
    return base + "/"


def target_services(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """The services the faulted routes send to (short names, as Istio's metrics label them)."""
    found: dict[str, None] = {}
    for result in results:
        for faulted in result.get("faulted") or []:
            for destination in faulted.get("destinations") or []:
                found[str(destination).split("/")[0].split(".")[0]] = None
    return list(found)


def _send(url: str, headers: dict[str, str]) -> str | None:
    """Send the tagged requests; the reason none got an answer, if so."""
    answered = 0
    last = ""
    with requests.Session() as session:
        session.trust_env = False
        for _ in range(_REQUESTS):
            try:
                session.get(url, headers=headers, timeout=10)
                answered += 1
            except requests.RequestException as exc:
                last = type(exc).__name__
    return None if answered else f"no answer from the entry URL {url} ({last})"


def check_propagation(
    experiment: Experiment,
    configuration: Mapping[str, Any],
    secrets: Mapping[str, Any],
    injections: Sequence[Mapping[str, Any]],
    timeout: float = 15.0,
) -> tuple[bool | None, str]:
    """(True, detail) when tagged requests reached every target's caller; None when skipped."""
    url = entry_request(experiment, configuration, secrets)
    if url is None or not urllib.parse.urlsplit(url).hostname:
        return None, "no entry URL (no start_load host and no ingress_url in the configuration)"
    if setting(configuration, "prometheus_url") is None:
        return None, "no prometheus_url in the configuration to read the callers' metrics"
    services = target_services(injections)
    if not services:
        return None, "the injections fault no route with a destination"
    try:
        where = endpoint(configuration, secrets)
    except ChaosMeshIstioError as exc:
        return False, str(exc)
    group = f"preflight-{_random.token_hex(4)}"
    headers = {str(setting(configuration, "chaosmesh_group_header", _DEFAULT_GROUP_HEADER)): group}
    first = injections[0]
    if first.get("scope") != "none" and first.get("header"):
        headers[str(first["header"])] = str(first["header_value"])
    failed = _send(url, headers)
    if failed:
        return False, failed
    label = str(setting(configuration, "chaosmesh_group_label", _DEFAULT_GROUP_LABEL))
    missing = list(services)
    deadline = time.monotonic() + timeout
    while True:
        for service in list(missing):
            query = (
                f'sum(istio_requests_total{{reporter="source", '
                f"destination_service_name={_quote(service)}, {label}={_quote(group)}}})"
            )
            try:
                samples = instant_query(where, query)
            except ChaosMeshIstioError as exc:
                return False, str(exc)
            if any(s.value > 0 for s in samples):
                missing.remove(service)
        if not missing or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    sent = ", ".join(f"{k}: {v}" for k, v in headers.items())
    if missing:
        return False, (
            f"no request tagged {sent} reached the caller of {', '.join(missing)} within "
            f"{timeout:g} s (sent {_REQUESTS} to {url}); a service on the way drops the "
            "headers, or Prometheus does not scrape that caller's sidecar yet: propagate "
            "them (or use scope 'baggage') before running the experiment"
        )
    return True, f"requests tagged {sent} sent to {url} reached the caller of {', '.join(services)}"
