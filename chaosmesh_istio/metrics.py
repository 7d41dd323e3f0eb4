"""Chaos Toolkit probes over Istio's standard metrics in Prometheus.

Each probe returns a plain number (or a boolean) so that ordinary tolerances work, e.g.
``{"type": "range", "range": [0.99, 1.0]}`` on ``success_rate``. Missing data is never a
number: it raises ``Inconclusive``. Configuration keys and errors are described in
``chaosmesh_istio.metrics_client``.

Requests are counted over the window with ``increase()``, except series that appeared
during the window on a target Prometheus was already scraping (typically the first
fault-flagged requests of a run): ``increase()`` would miss everything counted before
their first scrape, so their current value is taken instead. Requiring the target to
have more scrapes than the series keeps a restarted Prometheus (or a newly scraped pod)
from counting lifetime totals; without ``job``/``instance`` labels, plain ``increase()``.
"""

from __future__ import annotations

import json
import logging
import re
import time

from chaosmesh_istio.durations import bounded_duration
from chaosmesh_istio.errors import Inconclusive, InvalidArgument
from chaosmesh_istio.metrics_client import (
    endpoint,
    instant_query,
    single_value,
)
from chaosmesh_istio.settings import Configuration, Secrets, setting

__all__ = [
    "error_rate",
    "fault_fired",
    "fault_injected_requests",
    "latency_quantile",
    "prometheus_query",
    "request_rate",
    "success_rate",
]

REQUESTS = "istio_requests_total"
DURATION_BUCKETS = "istio_request_duration_milliseconds_bucket"
DEFAULT_GROUP_LABEL = "chaos_group"
_GROUPS = ("control", "experiment")
_REPORTERS = ("source", "destination")
# response_flags is a comma-separated list ("DI,FI"); match whole flags only.
_FLAGS = {"abort": "FI", "delay": "DI", "any": "DI|FI"}
_SERVER_ERROR = "5.."
# Prometheus' own duration syntax: units in decreasing order, each at most once.
_WINDOW = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)
_WINDOW_UNITS = (365 * 86400.0, 7 * 86400.0, 86400.0, 3600.0, 60.0, 1.0, 0.001)
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
_CHECK = "check the filters, that Prometheus scrapes the sidecars and that load is running"
_PROPAGATION = "config propagation can take seconds on a real cluster"

Matchers = list[tuple[str, str, str]]

logger = logging.getLogger("chaostoolkit").getChild("chaosmesh_istio.metrics")


def _quote(value: str) -> str:
    # A JSON string is a valid PromQL (Go) string literal: quotes, backslashes and
    # control characters are escaped the same way.
    return json.dumps(value, ensure_ascii=False)


def _selector(matchers: Matchers) -> str:
    return "{" + ", ".join(f"{label}{op}{_quote(value)}" for label, op, value in matchers) + "}"


def _count(metric: str, matchers: Matchers, window: str) -> str:
    """Per series, how much the counter grew in the window (see the module docstring)."""
    series = f"{metric}{_selector(matchers)}"
    appeared = (
        f"((count_over_time({series}[{window}]) < on (job, instance) group_left "
        f"count_over_time(up[{window}])) unless {series} offset {window})"
    )
    return f"(increase({series}[{window}]) unless {appeared}) or ({series} and {appeared})"


def _window_seconds(window: object) -> float:
    match = _WINDOW.fullmatch(window) if isinstance(window, str) and window else None
    seconds = (
        sum(int(n) * unit for n, unit in zip(match.groups(), _WINDOW_UNITS, strict=True) if n)
        if match
        else 0.0
    )
    if seconds <= 0:
        raise InvalidArgument(
            f"window must be a Prometheus duration above zero such as '30s', '1m' or '5m', "
            f"got {window!r}"
        )
    return seconds


def _check_choice(name: str, value: object, allowed: tuple[str, ...], optional: bool) -> None:
    if (value is None and optional) or (isinstance(value, str) and value in allowed):
        return
    choices = " or ".join(repr(a) for a in allowed) + (" or null" if optional else "")
    raise InvalidArgument(f"{name} must be {choices}, got {value!r}")


def _group_label(configuration: Configuration) -> str:
    label = setting(configuration, "chaosmesh_group_label", DEFAULT_GROUP_LABEL)
    if not isinstance(label, str) or not _LABEL_NAME.fullmatch(label):
        raise InvalidArgument(
            f"chaosmesh_group_label must be a Prometheus label name (letters, digits and '_'), "
            f"got {label!r}"
        )
    return label


def _filters(
    destination_service: str | None,
    namespace: str | None,
    source_workload: str | None,
    reporter: str,
    group: str | None,
    configuration: Configuration,
) -> Matchers:
    """Validate the common filters and turn them into label matchers."""
    _check_choice("reporter", reporter, _REPORTERS, optional=False)
    _check_choice("group", group, _GROUPS, optional=True)
    matchers: Matchers = [("reporter", "=", reporter)]
    if destination_service is not None:
        if not isinstance(destination_service, str) or not destination_service.strip():
            raise InvalidArgument(
                f"destination_service must be a service name such as 'reviews' or its FQDN "
                f"'reviews.default.svc.cluster.local', got {destination_service!r}"
            )
        # Istio's destination_service label holds the FQDN; the short name has its own.
        label = "destination_service" if "." in destination_service else "destination_service_name"
        matchers.append((label, "=", destination_service))
    if namespace is not None:
        if not isinstance(namespace, str) or not _DNS_LABEL.fullmatch(namespace):
            raise InvalidArgument(
                f"namespace must be a Kubernetes namespace name (lowercase letters, digits and "
                f"'-'), got {namespace!r}"
            )
        matchers.append(("destination_service_namespace", "=", namespace))
    if source_workload is not None:
        if not isinstance(source_workload, str) or not source_workload:
            raise InvalidArgument(
                f"source_workload must be a workload name such as 'productpage-v1', "
                f"got {source_workload!r}"
            )
        matchers.append(("source_workload", "=", source_workload))
    if group is not None:
        matchers.append((_group_label(configuration), "=", group))
    return matchers


def _no_data(probe: str, matchers: Matchers, window: str) -> str:
    return (
        f"no data for {probe} of istio metrics {_selector(matchers)} over the last {window}: "
        f"Prometheus has no requests there; {_CHECK}"
    )


def _evaluate(promql: str, no_data: str, configuration: Configuration, secrets: Secrets) -> float:
    where = endpoint(configuration, secrets)
    value = single_value(instant_query(where, promql), promql, no_data)
    logger.debug("%s = %s", promql, value)
    return value


def success_rate(
    destination_service: str | None = None,
    namespace: str | None = None,
    source_workload: str | None = None,
    reporter: str = "source",
    group: str | None = None,
    window: str = "1m",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> float:
    """Share of requests (0 to 1) that did not end in a 5xx over the window.

    4xx answers count as successes (the caller's mistake, not the service's), as in Istio's
    usual SLOs. `destination_service` is a short name or an FQDN, `namespace` the
    destination's namespace, `group` "control" or "experiment" (load groups), `window` a
    Prometheus duration. No requests in the window raise an inconclusive error.
    """
    _window_seconds(window)
    matchers = _filters(
        destination_service, namespace, source_workload, reporter, group, configuration
    )
    ok = [*matchers, ("response_code", "!~", _SERVER_ERROR)]
    promql = (
        f"(sum({_count(REQUESTS, ok, window)}) or vector(0)) / "
        f"sum({_count(REQUESTS, matchers, window)})"
    )
    return _evaluate(promql, _no_data("success_rate", matchers, window), configuration, secrets)


def error_rate(
    destination_service: str | None = None,
    namespace: str | None = None,
    source_workload: str | None = None,
    reporter: str = "source",
    group: str | None = None,
    window: str = "1m",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> float:
    """Share of requests (0 to 1) answered with a 5xx over the window (1 - success_rate).

    Takes the same filters as `success_rate`; 4xx are not errors. No requests in the window
    raise an inconclusive error.
    """
    _window_seconds(window)
    matchers = _filters(
        destination_service, namespace, source_workload, reporter, group, configuration
    )
    failed = [*matchers, ("response_code", "=~", _SERVER_ERROR)]
    promql = (
        f"(sum({_count(REQUESTS, failed, window)}) or vector(0)) / "
        f"sum({_count(REQUESTS, matchers, window)})"
    )
    return _evaluate(promql, _no_data("error_rate", matchers, window), configuration, secrets)


def latency_quantile(
    quantile: float = 0.99,
    destination_service: str | None = None,
    namespace: str | None = None,
    source_workload: str | None = None,
    reporter: str = "source",
    group: str | None = None,
    window: str = "1m",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> float:
    """Request duration in milliseconds at `quantile` (e.g. 0.99 for p99) over the window.

    Estimated by Prometheus' histogram_quantile from istio_request_duration_milliseconds, so
    it is precise to the bucket. Takes the same filters as `success_rate`. No requests in
    the window raise an inconclusive error.
    """
    valid = isinstance(quantile, int | float) and not isinstance(quantile, bool)
    if not (valid and 0 < quantile < 1):
        raise InvalidArgument(
            f"quantile must be a number between 0 and 1 (exclusive), such as 0.99, got {quantile!r}"
        )
    _window_seconds(window)
    matchers = _filters(
        destination_service, namespace, source_workload, reporter, group, configuration
    )
    promql = (
        f"histogram_quantile({float(quantile)!r}, "
        f"sum by (le) ({_count(DURATION_BUCKETS, matchers, window)}))"
    )
    return _evaluate(promql, _no_data("latency_quantile", matchers, window), configuration, secrets)


def request_rate(
    destination_service: str | None = None,
    namespace: str | None = None,
    source_workload: str | None = None,
    reporter: str = "source",
    group: str | None = None,
    window: str = "1m",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> float:
    """Requests per second over the window, averaged over the whole window.

    Takes the same filters as `success_rate`. 0 means the matching series exist but saw no
    request in the window; no matching series at all raise an inconclusive error.
    """
    seconds = _window_seconds(window)
    matchers = _filters(
        destination_service, namespace, source_workload, reporter, group, configuration
    )
    promql = f"sum({_count(REQUESTS, matchers, window)}) / {seconds:g}"
    return _evaluate(promql, _no_data("request_rate", matchers, window), configuration, secrets)


def _fault_matchers(base: Matchers, kind: str) -> Matchers:
    return [*base, ("response_flags", "=~", f"(.*,)?({_FLAGS[kind]})(,.*)?")]


def fault_injected_requests(
    destination_service: str | None = None,
    namespace: str | None = None,
    source_workload: str | None = None,
    group: str | None = None,
    kind: str = "any",
    window: str = "1m",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> float:
    """Number of requests the mesh marked as fault-injected over the window.

    Counts requests whose response_flags contain FI (`kind` "abort"), DI ("delay") or
    either ("any"), as seen by the calling sidecar (reporter "source"), where Istio applies
    faults. The count is Prometheus' estimate and may be fractional. 0 means there was
    traffic but no fault; no traffic at all raises an inconclusive error.
    """
    _check_choice("kind", kind, tuple(_FLAGS), optional=False)
    _window_seconds(window)
    matchers = _filters(
        destination_service, namespace, source_workload, "source", group, configuration
    )
    # Traffic without any flagged series is a real 0; no traffic at all is no data.
    promql = (
        f"sum({_count(REQUESTS, _fault_matchers(matchers, kind), window)}) or "
        f"0 * sum({_count(REQUESTS, matchers, window)})"
    )
    return _evaluate(
        promql, _no_data("fault_injected_requests", matchers, window), configuration, secrets
    )


def prometheus_query(
    query: str, configuration: Configuration = None, secrets: Secrets = None
) -> float:
    """The value of any PromQL query that returns a number or exactly one series.

    Aggregate multi-series answers yourself (e.g. with sum(...)); an empty answer or NaN
    raises an inconclusive error.
    """
    if not isinstance(query, str) or not query.strip():
        raise InvalidArgument(f"query must be a non-empty PromQL expression, got {query!r}")
    return _evaluate(
        query,
        f"the query {query!r} returned no data; check its selectors and that Prometheus "
        "scrapes the series it reads",
        configuration,
        secrets,
    )


def _optional_count(promql: str, configuration: Configuration, secrets: Secrets) -> float:
    """The count, or 0 when there is no data (fault_fired tells the cases apart itself)."""
    try:
        return _evaluate(promql, "no data", configuration, secrets)
    except Inconclusive:
        return 0.0


def fault_fired(
    destination_service: str | None = None,
    namespace: str | None = None,
    group: str | None = "experiment",
    window: str = "5m",
    min_requests: int = 1,
    wait: str = "0s",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> bool:
    """True when at least `min_requests` requests of `group` were fault-injected (FI or DI).

    Proves that the experiment really exercised the fault. When it did not, raises an
    inconclusive error naming the likely cause: the header did not reach the faulted hop,
    no experiment traffic reached the destination, or there is no data at all.
    A request is counted when it ends, so a delayed one shows up only after the delay (and
    a scrape): `wait` (e.g. "15s") asks again every second until then before concluding.
    """
    _window_seconds(window)
    valid = isinstance(min_requests, int) and not isinstance(min_requests, bool)
    if not (valid and min_requests >= 1):
        raise InvalidArgument(
            f"min_requests must be a whole number of at least 1, got {min_requests!r}"
        )
    try:
        patience = bounded_duration("wait", wait, 0, 3600 * 10**9) / 1e9
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    deadline = time.monotonic() + patience
    while True:
        try:
            return _fault_fired_now(
                destination_service, namespace, group, window, min_requests, configuration, secrets
            )
        except Inconclusive:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            logger.info("no fault-injected request seen yet; asking again (%.0f s left)", left)
            time.sleep(min(1.0, left))


def _fault_fired_now(
    destination_service: str | None,
    namespace: str | None,
    group: str | None,
    window: str,
    min_requests: int,
    configuration: Configuration,
    secrets: Secrets,
) -> bool:
    grouped = _filters(destination_service, namespace, None, "source", group, configuration)
    target = _filters(destination_service, namespace, None, "source", None, configuration)
    flagged = _optional_count(
        f"sum({_count(REQUESTS, _fault_matchers(grouped, 'any'), window)})",
        configuration,
        secrets,
    )
    if flagged >= min_requests:
        logger.info("%g fault-injected requests of %s seen", flagged, _selector(grouped))
        return True
    dest = repr(destination_service) if destination_service else "any destination"
    who = f"the {group} group" if group else "the traffic"
    traffic = _optional_count(f"sum({_count(REQUESTS, grouped, window)})", configuration, secrets)
    if flagged > 0:
        raise Inconclusive(
            f"only {flagged:g} requests of {who} to {dest} were fault-injected in the last "
            f"{window}, fewer than min_requests={min_requests}; send more load or widen the "
            f"window ({_PROPAGATION})"
        )
    if traffic > 0:
        raise Inconclusive(
            f"{who} sent about {traffic:g} requests to {dest} in the last {window} but none "
            f"was fault-injected (no FI/DI flag): header not propagated to the faulted hop, "
            f"or the route selection did not cover the traffic ({_PROPAGATION})"
        )
    if group is not None:
        others = _optional_count(f"sum({_count(REQUESTS, target, window)})", configuration, secrets)
        if others > 0:
            raise Inconclusive(
                f"no {group} traffic reached {dest} in the last {window}: the header may be "
                f"dropped by an intermediate service, or the load did not send it "
                f"({_PROPAGATION})"
            )
    raise Inconclusive(
        f"no data: Prometheus has no requests to {dest} in the last {window}; check the "
        f"destination name, that Prometheus scrapes the sidecars and that load ran "
        f"({_PROPAGATION})"
    )
