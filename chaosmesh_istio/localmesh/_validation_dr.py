"""Validation of a DestinationRule's spec, following Istio's webhook (ValidateDestinationRule):
every field's shape and type, plus the value rules that matter for routing to subsets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaosmesh_istio.localmesh._validation_core import UINT32_MAX, Checker
from chaosmesh_istio.localmesh._validation_names import (
    fqdn_error,
    is_ip,
    istio_label_ok,
    wildcard_domain_error,
)

__all__ = ["check_destination_rule_spec", "check_export_to"]

_SPEC = frozenset({"host", "trafficPolicy", "subsets", "exportTo", "workloadSelector"})
_SUBSET = frozenset({"name", "labels", "trafficPolicy"})
_POLICY_PARTS = ("loadBalancer", "connectionPool", "outlierDetection", "tls")
_POLICY = frozenset({*_POLICY_PARTS, "portLevelSettings", "tunnel", "proxyProtocol", "retryBudget"})
_PORT_POLICY = frozenset({"port", *_POLICY_PARTS})
_LOAD_BALANCER = frozenset(
    {"simple", "consistentHash", "localityLbSetting", "warmupDurationSecs", "warmup"}
)
_CONSISTENT_HASH = frozenset(
    {
        "httpHeaderName",
        "httpCookie",
        "useSourceIp",
        "httpQueryParameterName",
        "ringHash",
        "maglev",
        "minimumRingSize",
    }
)
_COOKIE = frozenset({"name", "path", "ttl", "attributes"})
_LOCALITY = frozenset({"distribute", "failover", "failoverPriority", "enabled"})
_WARMUP = frozenset({"duration", "minimumPercent", "aggression"})
_POOL = frozenset({"tcp", "http"})
_TCP_POOL = frozenset(
    {"maxConnections", "connectTimeout", "tcpKeepalive", "maxConnectionDuration", "idleTimeout"}
)
_KEEPALIVE = frozenset({"probes", "time", "interval"})
_HTTP_POOL = frozenset(
    {
        "http1MaxPendingRequests",
        "http2MaxRequests",
        "maxRequestsPerConnection",
        "maxRetries",
        "idleTimeout",
        "h2UpgradePolicy",
        "useClientProtocol",
        "maxConcurrentStreams",
    }
)
_OUTLIER = frozenset(
    {
        "splitExternalLocalOriginErrors",
        "consecutiveLocalOriginFailures",
        "consecutiveGatewayErrors",
        "consecutive5xxErrors",
        "interval",
        "baseEjectionTime",
        "maxEjectionPercent",
        "minHealthPercent",
        "consecutiveErrors",
    }
)
_TLS = frozenset(
    {
        "mode",
        "clientCertificate",
        "privateKey",
        "caCertificates",
        "credentialName",
        "subjectAltNames",
        "sni",
        "insecureSkipVerify",
        "caCrl",
    }
)
_TUNNEL = frozenset({"protocol", "targetHost", "targetPort"})
_PROXY_PROTOCOL = frozenset({"version"})
_RETRY_BUDGET = frozenset({"percent", "minRetryConcurrency"})
_SIMPLE_LB = ("UNSPECIFIED", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST", "LEAST_CONN")


def check_export_to(c: Checker, obj: Mapping[str, Any], path: str, namespace: str) -> None:
    """Check ``exportTo``: ".", "*" or namespaces, without duplicates, "*" alone."""
    entries = c.strings(obj, path, "exportTo")
    seen: set[str] = set()
    for item_path, entry in entries:
        key = namespace if entry == "." and namespace else entry
        if key in seen:
            c.duplicate(item_path, entry)
        seen.add(key)
        if entry not in (".", "*") and not istio_label_ok(entry.lower()):
            c.invalid(item_path, entry, "exportTo must be '.', '*' or a namespace name")
    if "*" in seen and len(entries) > 1:
        c.invalid(
            f"{path}.exportTo",
            "array",
            "cannot have both public (*) and non-public exportTo values",
        )


def check_destination_rule_spec(c: Checker, value: Any, namespace: str) -> None:
    """Check a DestinationRule's spec."""
    spec = c.obj(value, "spec", _SPEC)
    if spec is None:
        return
    host = c.text(spec, "spec", "host", required=True)
    if host is not None:
        error = wildcard_domain_error(host)
        if error:
            c.invalid("spec.host", host, error)
    _check_policy(c, spec, "spec", "trafficPolicy", _POLICY)
    names: set[str] = set()
    for index, item in enumerate(c.items(spec, "spec", "subsets")):
        path = f"spec.subsets[{index}]"
        subset = c.obj(item, path, _SUBSET)
        if subset is None:
            continue
        name = c.text(subset, path, "name", required=True)
        if name is not None:
            if not istio_label_ok(name):
                c.invalid(f"{path}.name", name, "subset name is invalid")
            if name in names:
                c.duplicate(f"{path}.name", name)
            names.add(name)
        c.labels(subset, path, "labels")
        _check_policy(c, subset, path, "trafficPolicy", _POLICY)
    check_export_to(c, spec, "spec", namespace)
    selector = c.child(spec, "spec", "workloadSelector", {"matchLabels"})
    if selector is not None:
        for key, label in c.labels(selector, "spec.workloadSelector", "matchLabels").items():
            if "*" in key or "*" in label:
                c.invalid(
                    "spec.workloadSelector.matchLabels",
                    key,
                    "wildcard is not supported in selector",
                )


def _check_policy(
    c: Checker, obj: Mapping[str, Any], path: str, key: str, fields: frozenset[str]
) -> None:
    if obj.get(key) is not None:
        _check_policy_body(c, obj[key], f"{path}.{key}", fields)


def _check_policy_body(c: Checker, value: Any, path: str, fields: frozenset[str]) -> None:
    policy = c.obj(value, path, fields)
    if policy is None:
        return
    if not any(policy.get(field) is not None for field in fields - {"port"}):
        c.required(path, "traffic policy must have at least one field")
    _check_load_balancer(c, policy, path)
    _check_pool(c, policy, path)
    _check_outlier(c, policy, path)
    _check_tls(c, policy, path)
    if "port" in fields:
        port = c.child(policy, path, "port", {"number"})
        if port is None:
            c.required(f"{path}.port", "portTrafficPolicy must have valid port")
        else:
            c.integer(port, f"{path}.port", "number", 1, 65535, required=True)
        return
    for index, item in enumerate(c.items(policy, path, "portLevelSettings")):
        _check_policy_body(c, item, f"{path}.portLevelSettings[{index}]", _PORT_POLICY)
    if policy.get("tunnel") is not None and policy.get("proxyProtocol") is not None:
        c.invalid(f"{path}.tunnel", "object", "tunnel and proxyProtocol must not be set together")
    tunnel = c.child(policy, path, "tunnel", _TUNNEL)
    if tunnel is not None:
        c.enum(tunnel, f"{path}.tunnel", "protocol", ("CONNECT", "POST"))
        target = c.text(tunnel, f"{path}.tunnel", "targetHost", required=True)
        if target and fqdn_error(target) and not is_ip(target):
            c.invalid(f"{path}.tunnel.targetHost", target, "must be a valid FQDN or IP address")
        c.integer(tunnel, f"{path}.tunnel", "targetPort", 1, 65535, required=True)
    proxy = c.child(policy, path, "proxyProtocol", _PROXY_PROTOCOL)
    if proxy is not None:
        c.enum(proxy, f"{path}.proxyProtocol", "version", ("V1", "V2"))
    budget = c.child(policy, path, "retryBudget", _RETRY_BUDGET)
    if budget is not None:
        percent = c.child(budget, f"{path}.retryBudget", "percent", {"value"})
        if percent is not None:
            value = c.number(percent, f"{path}.retryBudget.percent", "value")
            if value is not None and not 0 <= value <= 100:
                c.invalid(f"{path}.retryBudget.percent.value", value, "must be in range [0, 100]")
        c.integer(budget, f"{path}.retryBudget", "minRetryConcurrency", 0, UINT32_MAX)


def _check_load_balancer(c: Checker, policy: Mapping[str, Any], path: str) -> None:
    lb = c.child(policy, path, "loadBalancer", _LOAD_BALANCER)
    if lb is None:
        return
    path = f"{path}.loadBalancer"
    if lb.get("simple") is not None and lb.get("consistentHash") is not None:
        c.invalid(path, "object", "only one of simple or consistentHash may be set")
    c.enum(lb, path, "simple", _SIMPLE_LB)
    hashing = c.child(lb, path, "consistentHash", _CONSISTENT_HASH)
    if hashing is not None:
        sub = f"{path}.consistentHash"
        c.text(hashing, sub, "httpHeaderName")
        c.text(hashing, sub, "httpQueryParameterName")
        c.flag(hashing, sub, "useSourceIp")
        cookie = c.child(hashing, sub, "httpCookie", _COOKIE)
        if cookie is not None:
            c.text(cookie, f"{sub}.httpCookie", "name", required=True)
            c.text(cookie, f"{sub}.httpCookie", "path")
            c.duration(cookie, f"{sub}.httpCookie", "ttl")
        ring = c.child(hashing, sub, "ringHash", {"minimumRingSize"})
        if ring is not None:
            c.integer(ring, f"{sub}.ringHash", "minimumRingSize", 0, 2**64 - 1)
        maglev = c.child(hashing, sub, "maglev", {"tableSize"})
        if maglev is not None:
            size = c.integer(maglev, f"{sub}.maglev", "tableSize", 1, 5000010, required=True)
            if size is not None and (
                size < 2 or any(size % f == 0 for f in range(2, int(size**0.5) + 1))
            ):
                c.invalid(
                    f"{sub}.maglev.tableSize", size, "tableSize must be a prime number for maglev"
                )
        c.integer(hashing, sub, "minimumRingSize", 0, 2**64 - 1)
    locality = c.child(lb, path, "localityLbSetting", _LOCALITY)
    if locality is not None:
        sub = f"{path}.localityLbSetting"
        for key in ("distribute", "failover"):
            for index, item in enumerate(c.items(locality, sub, key)):
                entry = c.obj(item, f"{sub}.{key}[{index}]", {"from", "to"})
                if entry is not None:
                    c.text(entry, f"{sub}.{key}[{index}]", "from")
                    if key == "failover":
                        c.text(entry, f"{sub}.{key}[{index}]", "to")
        c.strings(locality, sub, "failoverPriority")
        c.flag(locality, sub, "enabled")
    c.duration(lb, path, "warmupDurationSecs")
    warmup = c.child(lb, path, "warmup", _WARMUP)
    if warmup is not None:
        c.duration(warmup, f"{path}.warmup", "duration", required=True)


def _check_pool(c: Checker, policy: Mapping[str, Any], path: str) -> None:
    pool = c.child(policy, path, "connectionPool", _POOL)
    if pool is None:
        return
    path = f"{path}.connectionPool"
    if pool.get("tcp") is None and pool.get("http") is None:
        c.required(path, "connection pool must have at least one field")
    tcp = c.child(pool, path, "tcp", _TCP_POOL)
    if tcp is not None:
        sub = f"{path}.tcp"
        c.integer(tcp, sub, "maxConnections", 0)
        c.duration(tcp, sub, "connectTimeout")
        c.duration(tcp, sub, "maxConnectionDuration")
        idle = tcp.get("idleTimeout")
        if idle not in ("0s", "0"):
            # "0s" disables the idle timeout, the one duration below 1ms Istio accepts.
            c.duration(tcp, sub, "idleTimeout")
        keepalive = c.child(tcp, sub, "tcpKeepalive", _KEEPALIVE)
        if keepalive is not None:
            c.integer(keepalive, f"{sub}.tcpKeepalive", "probes", 0, UINT32_MAX)
            c.duration(keepalive, f"{sub}.tcpKeepalive", "time")
            c.duration(keepalive, f"{sub}.tcpKeepalive", "interval")
    http = c.child(pool, path, "http", _HTTP_POOL)
    if http is not None:
        sub = f"{path}.http"
        for key in (
            "http1MaxPendingRequests",
            "http2MaxRequests",
            "maxRequestsPerConnection",
            "maxRetries",
            "maxConcurrentStreams",
        ):
            c.integer(http, sub, key, 0)
        c.duration(http, sub, "idleTimeout")
        policy_name = c.enum(http, sub, "h2UpgradePolicy", ("DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"))
        if c.flag(http, sub, "useClientProtocol") and policy_name == "UPGRADE":
            c.invalid(
                f"{sub}.useClientProtocol", True, "must not be true when h2UpgradePolicy is UPGRADE"
            )


def _check_outlier(c: Checker, policy: Mapping[str, Any], path: str) -> None:
    outlier = c.child(policy, path, "outlierDetection", _OUTLIER)
    if outlier is None:
        return
    path = f"{path}.outlierDetection"
    split = c.flag(outlier, path, "splitExternalLocalOriginErrors")
    local = c.integer(outlier, path, "consecutiveLocalOriginFailures", 0, UINT32_MAX)
    if local and not split:
        c.invalid(
            f"{path}.consecutiveLocalOriginFailures",
            local,
            "requires splitExternalLocalOriginErrors to be true",
        )
    c.integer(outlier, path, "consecutiveGatewayErrors", 0, UINT32_MAX)
    c.integer(outlier, path, "consecutive5xxErrors", 0, UINT32_MAX)
    c.integer(outlier, path, "consecutiveErrors")
    c.duration(outlier, path, "interval")
    c.duration(outlier, path, "baseEjectionTime")
    c.integer(outlier, path, "maxEjectionPercent", 0, 100)
    c.integer(outlier, path, "minHealthPercent", 0, 100)


def _check_tls(c: Checker, policy: Mapping[str, Any], path: str) -> None:
    tls = c.child(policy, path, "tls", _TLS)
    if tls is None:
        return
    path = f"{path}.tls"
    mode = c.enum(tls, path, "mode", ("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"))
    for key in (
        "clientCertificate",
        "privateKey",
        "caCertificates",
        "credentialName",
        "sni",
        "caCrl",
    ):
        c.text(tls, path, key)
    c.strings(tls, path, "subjectAltNames")
    c.flag(tls, path, "insecureSkipVerify")
    if mode == "MUTUAL" and not tls.get("credentialName"):
        for key in ("clientCertificate", "privateKey"):
            if not tls.get(key):
                c.required(f"{path}.{key}", "MUTUAL TLS requires a client certificate and key")
