"""Validation of VirtualServices and DestinationRules like Istio's admission webhook, for the
local control plane (which answers 422 with these errors).

It behaves like a structural CRD schema with strict field validation (wrong JSON types and
unknown fields are errors) plus Istio's semantic rules, and it collects every error rather
than stopping at the first. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaosmesh_istio.localmesh._validation_core import Checker, FieldError, parse_duration
from chaosmesh_istio.localmesh._validation_dr import check_destination_rule_spec, check_export_to
from chaosmesh_istio.localmesh._validation_http import check_http_route
from chaosmesh_istio.localmesh._validation_match import (
    check_destination,
    check_gateway_names,
    check_weights,
)
from chaosmesh_istio.localmesh._validation_names import (
    is_dns1123_label,
    is_dns1123_subdomain,
    is_ip,
    is_ip_or_cidr,
    label_key_error,
    wildcard_domain_error,
)

__all__ = [
    "API_VERSIONS",
    "FieldError",
    "parse_duration",
    "validate",
    "validate_destination_rule",
    "validate_virtual_service",
]

API_VERSIONS = (
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
)

_TOP = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
_METADATA = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)
_VS_SPEC = frozenset({"hosts", "gateways", "http", "tls", "tcp", "exportTo"})
_TLS_ROUTE = frozenset({"match", "route"})
_TCP_ROUTE = frozenset({"match", "route"})
_L4_MATCH = frozenset({"destinationSubnets", "port", "sourceLabels", "gateways", "sourceNamespace"})
_TLS_MATCH = _L4_MATCH | {"sniHosts"}
_ROUTE_DESTINATION = frozenset({"destination", "weight"})
_MAX_ANNOTATIONS_BYTES = 256 * 1024


def validate(kind: str, obj: Mapping[str, Any]) -> list[FieldError]:
    """Validate a whole object (apiVersion, kind, metadata, spec); an empty list means valid.

    ``kind`` is "VirtualService" or "DestinationRule"; any other kind raises ValueError.
    """
    if kind not in ("VirtualService", "DestinationRule"):
        raise ValueError(
            f"cannot validate kind {kind!r}: expected VirtualService or DestinationRule"
        )
    c = Checker()
    top = c.obj(obj, "", _TOP)
    if top is None:
        return c.errors
    api_version = c.text(top, "", "apiVersion")
    if api_version is not None and api_version not in API_VERSIONS:
        c.unsupported("apiVersion", api_version, API_VERSIONS)
    declared = c.text(top, "", "kind")
    if declared is not None and declared != kind:
        c.unsupported("kind", declared, (kind,))
    namespace = _check_metadata(c, top.get("metadata"))
    if top.get("spec") is None:
        c.required("spec")
    elif kind == "VirtualService":
        _check_virtual_service_spec(c, top["spec"], namespace)
    else:
        check_destination_rule_spec(c, top["spec"], namespace)
    return c.errors


def validate_virtual_service(spec: Mapping[str, Any], namespace: str = "") -> list[FieldError]:
    """Validate a VirtualService's spec alone (paths still start with "spec")."""
    c = Checker()
    _check_virtual_service_spec(c, spec, namespace)
    return c.errors


def validate_destination_rule(spec: Mapping[str, Any], namespace: str = "") -> list[FieldError]:
    """Validate a DestinationRule's spec alone (paths still start with "spec")."""
    c = Checker()
    check_destination_rule_spec(c, spec, namespace)
    return c.errors


def _check_metadata(c: Checker, value: Any) -> str:
    """Check ObjectMeta and return the namespace ("" when absent)."""
    if value is None:
        c.required("metadata")
        return ""
    meta = c.obj(value, "metadata", _METADATA)
    if meta is None:
        return ""
    name = c.text(meta, "metadata", "name", required=True)
    if name is not None and not is_dns1123_subdomain(name):
        c.invalid(
            "metadata.name",
            name,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters,"
            " '-' or '.', and must start and end with an alphanumeric character",
        )
    namespace = c.text(meta, "metadata", "namespace") or ""
    if namespace and not is_dns1123_label(namespace):
        c.invalid(
            "metadata.namespace",
            namespace,
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or"
            " '-', and must start and end with an alphanumeric character",
        )
    c.labels(meta, "metadata", "labels")
    annotations = c.string_map(meta, "metadata", "annotations")
    for key in annotations:
        error = label_key_error(key)
        if error:
            c.invalid("metadata.annotations", key, error)
    if sum(len(k) + len(v) for k, v in annotations.items()) > _MAX_ANNOTATIONS_BYTES:
        c.invalid("metadata.annotations", "object", "may not be more than 262144 bytes")
    for key in (
        "generateName",
        "selfLink",
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
    ):
        c.text(meta, "metadata", key)
    c.integer(meta, "metadata", "generation", 0, 2**63 - 1)
    c.integer(meta, "metadata", "deletionGracePeriodSeconds", 0, 2**63 - 1)
    c.strings(meta, "metadata", "finalizers")
    for key in ("ownerReferences", "managedFields"):
        for index, item in enumerate(c.items(meta, "metadata", key)):
            if not isinstance(item, Mapping):
                c.wrong_type(f"metadata.{key}[{index}]", item, "object")
    return namespace


def _host_matches(a: str, b: str) -> bool:
    """Istio's host.Name.Matches: equal, or covered by the other's wildcard."""
    if a.startswith("*") and b.startswith("*"):
        shorter, longer = sorted((a[1:], b[1:]), key=len)
        return longer.endswith(shorter)
    if a.startswith("*"):
        return b.endswith(a[1:])
    if b.startswith("*"):
        return a.endswith(b[1:])
    return a == b


def _check_virtual_service_spec(c: Checker, value: Any, namespace: str) -> None:
    spec = c.obj(value, "spec", _VS_SPEC)
    if spec is None:
        return
    hosts = c.strings(spec, "spec", "hosts")
    gateways = check_gateway_names(c, spec, "spec")
    delegate_vs = not spec.get("hosts")
    if delegate_vs:
        # A VirtualService without hosts is a delegate: only HTTP routes make sense there.
        for key in ("gateways", "tls", "tcp"):
            if spec.get(key):
                c.invalid(
                    f"spec.{key}", "array", f"delegate virtual service must have no {key} specified"
                )
    gateway_bound = bool(gateways) and "mesh" not in gateways
    all_valid = True
    for item_path, host in hosts:
        error = wildcard_domain_error(host)
        if error and not is_ip(host):
            c.invalid(item_path, host, error)
            all_valid = False
        elif host == "*" and not gateway_bound:
            c.invalid(
                item_path,
                host,
                "wildcard host * is not allowed for virtual services bound to the mesh gateway",
            )
            all_valid = False
    if all_valid:
        for index, (_, host) in enumerate(hosts):
            for item_path, other in hosts[index + 1 :]:
                if _host_matches(host, other):
                    c.duplicate(item_path, other)
    if not any(spec.get(key) for key in ("http", "tcp", "tls")):
        c.required("spec.http", "http, tcp or tls must be provided in virtual service")
    for index, route in enumerate(c.items(spec, "spec", "http")):
        check_http_route(
            c, route, f"spec.http[{index}]", delegate_vs=delegate_vs, gateway_bound=gateway_bound
        )
    host_names = [host for _, host in hosts]
    for index, route in enumerate(c.items(spec, "spec", "tls")):
        _check_l4_route(c, route, f"spec.tls[{index}]", host_names, tls=True)
    for index, route in enumerate(c.items(spec, "spec", "tcp")):
        _check_l4_route(c, route, f"spec.tcp[{index}]", host_names, tls=False)
    check_export_to(c, spec, "spec", namespace)


def _check_l4_route(c: Checker, value: Any, path: str, hosts: list[str], *, tls: bool) -> None:
    """Check a TLSRoute (``tls``) or a TCPRoute: match attributes and weighted destinations."""
    route = c.obj(value, path, _TLS_ROUTE if tls else _TCP_ROUTE)
    if route is None:
        return
    matches = c.items(route, path, "match")
    if tls and not matches:
        c.required(f"{path}.match", "TLS route must have at least one match condition")
    for index, item in enumerate(matches):
        match_path = f"{path}.match[{index}]"
        match = c.obj(item, match_path, _TLS_MATCH if tls else _L4_MATCH)
        if match is None:
            continue
        if tls:
            sni_hosts = c.strings(match, match_path, "sniHosts")
            if not sni_hosts:
                c.required(f"{match_path}.sniHosts", "TLS match must have at least one SNI host")
            for item_path, sni in sni_hosts:
                error = wildcard_domain_error(sni)
                if error:
                    c.invalid(item_path, sni, error)
                elif not any(_sni_subset_of(sni, host) for host in hosts):
                    c.invalid(
                        item_path,
                        sni,
                        "SNI host is not a compatible subset of any of the virtual service hosts",
                    )
        for item_path, subnet in c.strings(match, match_path, "destinationSubnets"):
            if not is_ip_or_cidr(subnet):
                c.invalid(item_path, subnet, "not a valid IP address or CIDR block")
        c.integer(match, match_path, "port", 0, 65535)
        c.labels(match, match_path, "sourceLabels")
        check_gateway_names(c, match, match_path)
        source_namespace = c.text(match, match_path, "sourceNamespace")
        if source_namespace and not is_dns1123_label(source_namespace):
            c.invalid(f"{match_path}.sourceNamespace", source_namespace, "must be a DNS-1123 label")
    destinations = c.items(route, path, "route")
    if not destinations:
        c.required(f"{path}.route", ("TLS" if tls else "TCP") + " route is required")
    weights = []
    for index, item in enumerate(destinations):
        item_path = f"{path}.route[{index}]"
        destination = c.obj(item, item_path, _ROUTE_DESTINATION)
        if destination is None:
            continue
        if destination.get("destination") is None:
            c.required(f"{item_path}.destination")
        check_destination(c, destination.get("destination"), f"{item_path}.destination")
        weights.append(c.integer(destination, item_path, "weight", 0))
    check_weights(c, f"{path}.route", weights)


def _sni_subset_of(sni: str, host: str) -> bool:
    """Istio's host.Name.SubsetOf: ``sni`` is covered by ``host``."""
    if host.startswith("*"):
        return (sni[1:] if sni.startswith("*") else sni).endswith(host[1:])
    return sni == host
