"""Instant queries on the Prometheus HTTP API, for the metrics probes.

Errors raised here and by the probes::

    ChaosMeshIstioError
    ├── InvalidArgument   a probe argument or a prometheus_* setting is invalid
    ├── MetricsError      Prometheus unreachable, refused the request, or answered unusably
    └── Inconclusive      the query had no data: the experiment cannot conclude either way

Configuration: ``prometheus_url`` (required), ``prometheus_timeout`` (seconds, default 10),
``prometheus_verify_tls`` (default true, or a CA bundle path). Secrets: ``prometheus_token``
(bearer), or ``prometheus_username`` and ``prometheus_password`` (basic).
"""

from __future__ import annotations

import logging
import math
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from chaosmesh_istio.errors import Inconclusive, InvalidArgument, MetricsError
from chaosmesh_istio.settings import Configuration, Secrets, setting

__all__ = [
    "DEFAULT_TIMEOUT",
    "Endpoint",
    "Sample",
    "endpoint",
    "instant_query",
    "single_value",
]

DEFAULT_TIMEOUT = 10.0
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}

logger = logging.getLogger("chaostoolkit").getChild("chaosmesh_istio.metrics")


@dataclass(frozen=True)
class Sample:
    """One series of an instant query's answer."""

    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Endpoint:
    """Where and how to query Prometheus; credentials are kept out of ``repr``."""

    url: str
    shown: str
    timeout: float
    verify: bool | str
    token: str | None = field(default=None, repr=False)
    basic: tuple[str, str] | None = field(default=None, repr=False)


def _shown(url: str) -> str:
    """The URL without user info, query or fragment, so messages never carry a password."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _valid_url(raw: str) -> bool:
    parts = urllib.parse.urlsplit(raw)
    try:
        parts.port  # noqa: B018 - raises ValueError when the port is not a valid number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _url(configuration: Configuration) -> tuple[str, str]:
    raw = setting(configuration, "prometheus_url")
    if raw is None:
        raise InvalidArgument(
            "prometheus_url is not configured; set it in the experiment's configuration, "
            "e.g. 'http://prometheus.istio-system:9090'"
        )
    if not isinstance(raw, str) or not _valid_url(raw):
        shown = _shown(raw) if isinstance(raw, str) else raw
        raise InvalidArgument(
            f"prometheus_url must be an http(s) URL such as 'http://prometheus.istio-system:9090',"
            f" got {shown!r}"
        )
    url = raw.rstrip("/")
    return url, _shown(url)


def _timeout(configuration: Configuration) -> float:
    raw = setting(configuration, "prometheus_timeout", DEFAULT_TIMEOUT)
    try:
        value = float(raw) if not isinstance(raw, bool) else math.nan
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InvalidArgument(
            f"prometheus_timeout must be a number of seconds above 0, got {raw!r}"
        )
    return value


def _verify(configuration: Configuration) -> bool | str:
    raw = setting(configuration, "prometheus_verify_tls", True)
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    if isinstance(raw, str) and raw and Path(raw).exists():
        return raw
    raise InvalidArgument(
        f"prometheus_verify_tls must be true, false or the path of an existing CA bundle, "
        f"got {raw!r}"
    )


def _credentials(secrets: Secrets) -> tuple[str | None, tuple[str, str] | None]:
    token = setting(secrets, "prometheus_token")
    username = setting(secrets, "prometheus_username")
    password = setting(secrets, "prometheus_password")
    if token is not None and (username is not None or password is not None):
        raise InvalidArgument(
            "set either prometheus_token or prometheus_username and prometheus_password in the "
            "secrets, not both"
        )
    if token is not None:
        if not isinstance(token, str) or not token:
            raise InvalidArgument("the prometheus_token secret must be a non-empty string")
        return token, None
    if username is None and password is None:
        return None, None
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        raise InvalidArgument(
            "the prometheus_username and prometheus_password secrets must both be set, as strings"
        )
    return None, (username, password)


def endpoint(configuration: Configuration, secrets: Secrets) -> Endpoint:
    """Read and check the prometheus_* configuration and secrets."""
    url, shown = _url(configuration)
    token, basic = _credentials(secrets)
    return Endpoint(
        url=url,
        shown=shown,
        timeout=_timeout(configuration),
        verify=_verify(configuration),
        token=token,
        basic=basic,
    )


def _value(raw: Any, where: Endpoint) -> float:
    try:
        return float(raw[1])
    except (TypeError, ValueError, IndexError, KeyError):
        raise MetricsError(
            f"Prometheus at {where.shown} answered a sample that is not a number: {raw!r}"
        ) from None


def _body(answer: requests.Response, where: Endpoint, promql: str) -> dict[str, Any]:
    if answer.status_code in (401, 403):
        raise MetricsError(
            f"Prometheus at {where.shown} refused the credentials (HTTP {answer.status_code}); "
            "check the prometheus_token or prometheus_username/prometheus_password secrets"
        )
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "status" not in body:
        raise MetricsError(
            f"Prometheus at {where.shown} answered HTTP {answer.status_code} without the "
            "Prometheus API's JSON; check that prometheus_url points at the Prometheus server"
        )
    if body["status"] != "success":
        error = " ".join(str(body.get("error") or body.get("errorType") or "unknown").split())
        raise MetricsError(f"Prometheus at {where.shown} rejected the query {promql!r}: {error}")
    return body


def instant_query(where: Endpoint, promql: str) -> list[Sample]:
    """Evaluate PromQL at the current time: one Sample per series (one unlabelled for a scalar)."""
    logger.debug("querying Prometheus at %s: %s", where.shown, promql)
    headers = {"Accept": "application/json"}
    if where.token is not None:
        headers["Authorization"] = f"Bearer {where.token}"
    try:
        with requests.Session() as session:
            answer = session.get(
                f"{where.url}/api/v1/query",
                # Prometheus stops evaluating when we stop waiting.
                params={"query": promql, "timeout": f"{where.timeout:g}"},
                headers=headers,
                auth=where.basic,
                timeout=where.timeout,
                verify=where.verify,
            )
    except requests.Timeout:
        raise MetricsError(
            f"Prometheus at {where.shown} did not answer within {where.timeout:g}s; raise "
            "prometheus_timeout or check that the server is healthy"
        ) from None
    except requests.RequestException as exc:
        raise MetricsError(
            f"could not reach Prometheus at {where.shown} ({type(exc).__name__}); check "
            "prometheus_url and that Prometheus is running"
        ) from None
    body = _body(answer, where, promql)
    for warning in body.get("warnings") or ():
        logger.warning("Prometheus warned about %r: %s", promql, warning)
    data = body.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return [Sample({}, _value(result, where))]
    if kind == "vector" and isinstance(result, list):
        return [Sample(dict(r.get("metric") or {}), _value(r.get("value"), where)) for r in result]
    if kind == "matrix":
        raise MetricsError(
            f"Prometheus at {where.shown} answered the query {promql!r} with a range vector; "
            "wrap it in a function such as rate(...) or max_over_time(...) to get one value"
        )
    raise MetricsError(
        f"Prometheus at {where.shown} answered the query {promql!r} with a {kind!r} result; "
        "the query must return a number or one series"
    )


def single_value(samples: list[Sample], promql: str, no_data: str) -> float:
    """The one value of an answer; Inconclusive (with ``no_data``) when empty or NaN."""
    if len(samples) > 1:
        shown = ", ".join(
            "{" + ", ".join(f"{k}={v!r}" for k, v in sorted(s.labels.items())) + "}"
            for s in samples[:3]
        )
        more = ", ..." if len(samples) > 3 else ""
        raise MetricsError(
            f"the query {promql!r} returned {len(samples)} series ({shown}{more}); aggregate "
            "them into one, e.g. with sum(...)"
        )
    if not samples or math.isnan(samples[0].value):
        raise Inconclusive(no_data)
    return samples[0].value
