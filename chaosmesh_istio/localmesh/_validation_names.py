"""Istio's and Kubernetes' rules for names: DNS labels and subdomains, hosts with wildcards,
IP addresses, and label keys and values."""

from __future__ import annotations

import ipaddress
import re

__all__ = [
    "fqdn_error",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "is_ip",
    "is_ip_or_cidr",
    "istio_label_ok",
    "label_key_error",
    "label_value_error",
    "wildcard_domain_error",
]

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# Istio's own host labels accept upper case (pkg/config/labels), unlike Kubernetes names.
_ISTIO_LABEL = re.compile(r"[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?")
_ISTIO_WILDCARD_LABEL = re.compile(r"\*|(\*|\*-)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


def is_dns1123_label(value: str) -> bool:
    """A Kubernetes DNS-1123 label (namespace names)."""
    return len(value) <= 63 and _DNS1123_LABEL.fullmatch(value) is not None


def is_dns1123_subdomain(value: str) -> bool:
    """A Kubernetes DNS-1123 subdomain (object names)."""
    return len(value) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(value) is not None


def istio_label_ok(value: str) -> bool:
    """Istio's DNS-1123 label, which also accepts upper case."""
    return len(value) <= 63 and _ISTIO_LABEL.fullmatch(value) is not None


def wildcard_domain_error(domain: str) -> str | None:
    """Istio's ValidateWildcardDomain: why ``domain`` is not a host (wildcard first label)."""
    if not domain:
        return "empty domain name not allowed"
    if len(domain) > 255:
        return "domain name too long (max 255)"
    first, _, rest = domain.partition(".")
    if len(first) > 63 or _ISTIO_WILDCARD_LABEL.fullmatch(first) is None:
        return f"domain name {domain!r} invalid (label {first!r} invalid)"
    if not rest:
        return None
    labels = rest.split(".")
    if labels[-1].isdigit():
        return f"domain name {domain!r} invalid (top level domain cannot be all-numeric)"
    for index, label in enumerate(labels):
        # A trailing dot ("istio.io.") is an unambiguous FQDN, not an empty label.
        if index == len(labels) - 1 and label == "":
            break
        if not istio_label_ok(label):
            return f"domain name {domain!r} invalid (label {label!r} invalid)"
    return None


def fqdn_error(domain: str) -> str | None:
    """Istio's ValidateFQDN: a domain without wildcards."""
    if "*" in domain:
        return f"domain name {domain!r} invalid (wildcards are not allowed)"
    return wildcard_domain_error(domain)


def is_ip(value: str) -> bool:
    """True for an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_ip_or_cidr(value: str) -> bool:
    """True for an IP address or a CIDR block."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def label_key_error(key: str) -> str | None:
    """Kubernetes label key rules: optional DNS subdomain prefix and a qualified name."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or not is_dns1123_subdomain(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name or len(name) > 63 or _QUALIFIED_NAME.fullmatch(name) is None:
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', start and"
            " end with an alphanumeric character, and be at most 63 characters"
        )
    return None


def label_value_error(value: str) -> str | None:
    """Kubernetes label value rules (empty allowed)."""
    if value and (len(value) > 63 or _QUALIFIED_NAME.fullmatch(value) is None):
        return (
            "a label value must be empty or consist of alphanumeric characters, '-', '_' or"
            " '.', start and end with an alphanumeric character, and be at most 63 characters"
        )
    return None
