"""Istio's HTTP request routing, as Envoy applies the routes Istio generates from a
VirtualService: routes in order, first match wins, match entries OR-ed, conditions AND-ed.

Pure and fast enough for the data plane: regexes are compiled once per pattern and cached,
and a request's path and query string are split once.

What is left to the caller: picking the VirtualServices whose ``hosts`` match the request
(``host_matches``) and whose top-level ``gateways`` include the request's gateway (a VS
without ``gateways`` applies to "mesh" only), and following a route's ``delegate``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from chaosmesh_istio.regex import compile_re2

__all__ = [
    "CLUSTER_DOMAIN",
    "Request",
    "gateway_matches",
    "host_matches",
    "match_entry_matches",
    "route_matches",
    "select_route",
    "string_matches",
]

CLUSTER_DOMAIN = "cluster.local"

_PSEUDO = {":method": "method", ":path": "path", ":scheme": "scheme", ":authority": "authority"}


@dataclass(frozen=True)
class Request:
    """The attributes of an HTTP request that routing looks at."""

    method: str = "GET"
    path: str = "/"  # path with optional ?query
    headers: Mapping[str, str] = field(default_factory=dict)  # lowercase names
    authority: str = ""  # Host header
    port: int | None = None
    source_labels: Mapping[str, str] = field(default_factory=dict)
    source_namespace: str = ""
    gateway: str = "mesh"  # "mesh" for sidecar traffic or "namespace/gateway-name"
    scheme: str = "http"

    @functools.cached_property
    def path_only(self) -> str:
        """The path without its query string."""
        return self.path.split("?", 1)[0]

    @functools.cached_property
    def query_params(self) -> dict[str, str]:
        """Percent-decoded query parameters; the first value of a repeated name wins (Envoy)."""
        _, _, query = self.path.partition("?")
        params: dict[str, str] = {}
        for pair in query.split("&") if query else ():
            name, _, value = pair.partition("=")
            params.setdefault(unquote(name), unquote(value))
        return params

    @functools.cached_property
    def effective_port(self) -> int:
        """The destination port: explicit, else from the authority, else the scheme's default."""
        if self.port is not None:
            return self.port
        _, sep, port = self.authority.rpartition(":")
        if sep and port.isdigit() and not self.authority.endswith("]"):
            return int(port)
        return 443 if self.scheme == "https" else 80

    def header(self, name: str) -> str | None:
        """A request header by case-insensitive name; pseudo-headers map to the fields."""
        lowered = name.lower()
        attribute = _PSEUDO.get(lowered)
        if attribute is not None:
            value: str = getattr(self, attribute)
            return value
        found = self.headers.get(lowered)
        if found is None and lowered == "host":
            # Envoy folds Host into :authority.
            return self.authority or None
        return found


def _regex(pattern: str) -> Any:
    """A compiled RE2 pattern, or None if it does not compile (Envoy would reject it)."""
    try:
        return compile_re2(pattern)
    except ValueError:
        return None


def _ascii_lower(text: str) -> str:
    # Envoy compares case-insensitively in ASCII only.
    return text.encode("utf-8", "surrogatepass").lower().decode("utf-8", "surrogatepass")


def _is_presence(cond: Mapping[str, Any]) -> bool:
    """``{}`` or ``regex: "*"``: Istio turns these into Envoy's present_match."""
    if cond.get("regex") == "*":
        return True
    return all(cond.get(kind) is None for kind in ("exact", "prefix", "regex"))


def string_matches(cond: Mapping[str, Any], value: str | None, ignore_case: bool = False) -> bool:
    """Whether ``value`` (None: absent) satisfies a StringMatch.

    ``{}`` (and Istio's ``regex: "*"``) only require presence. Regexes are RE2 full matches
    and, as in Envoy, ignore ``ignore_case``.
    """
    if value is None:
        return False
    if _is_presence(cond):
        return True
    exact = cond.get("exact")
    if exact is not None:
        return _ascii_lower(value) == _ascii_lower(exact) if ignore_case else value == exact
    prefix = cond.get("prefix")
    if prefix is not None:
        if ignore_case:
            return _ascii_lower(value).startswith(_ascii_lower(prefix))
        return value.startswith(prefix)
    compiled = _regex(cond["regex"])
    return compiled is not None and compiled.fullmatch(value) is not None


def _uri_matches(cond: Mapping[str, Any], req: Request, ignore_case: bool) -> bool:
    # Envoy: exact and regex look at the path without its query string, prefix at all of it.
    if cond.get("prefix") is not None:
        return string_matches(cond, req.path, ignore_case)
    if cond.get("exact") is not None:
        return string_matches(cond, req.path_only, ignore_case)
    if cond.get("regex") is not None:
        return string_matches(cond, req.path_only)
    return True


def _without_header_matches(name: str, cond: Mapping[str, Any], req: Request) -> bool:
    """Whether the request passes one ``withoutHeaders`` condition (Envoy's invert_match)."""
    value = req.header(name)
    if _is_presence(cond):
        return value is None
    # Istio sets treat_missing_header_as_empty: a missing header is tested as "".
    return not string_matches(cond, "" if value is None else value)


def gateway_matches(gateways: Sequence[str], namespace: str, gateway: str) -> bool:
    """Whether ``gateway`` ("mesh" or "ns/name") is one of ``gateways``.

    Names without a namespace are relative to ``namespace`` (the VirtualService's); the legacy
    form "name.ns.svc.cluster.local" is understood too.
    """
    for name in gateways:
        if name == "mesh" or "/" in name:
            candidate = name
        elif "." in name:
            short, _, rest = name.partition(".")
            candidate = f"{rest.split('.', 1)[0]}/{short}"
        else:
            candidate = f"{namespace}/{name}"
        if candidate == gateway:
            return True
    return False


def match_entry_matches(entry: Mapping[str, Any], req: Request, namespace: str = "") -> bool:
    """Whether one HTTPMatchRequest matches: every condition it sets must hold.

    ``namespace`` is the VirtualService's, for gateway names given without one.
    """
    ignore_case = bool(entry.get("ignoreUriCase"))
    uri = entry.get("uri")
    if uri is not None and not _uri_matches(uri, req, ignore_case):
        return False
    for key in ("method", "scheme", "authority"):
        cond = entry.get(key)
        if cond is not None and not string_matches(cond, getattr(req, key)):
            return False
    for name, cond in (entry.get("headers") or {}).items():
        if not string_matches(cond or {}, req.header(name)):
            return False
    for name, cond in (entry.get("withoutHeaders") or {}).items():
        if not _without_header_matches(name, cond or {}, req):
            return False
    for name, cond in (entry.get("queryParams") or {}).items():
        if not string_matches(cond or {}, req.query_params.get(name)):
            return False
    port = entry.get("port")
    if port and port != req.effective_port:
        return False
    for key, value in (entry.get("sourceLabels") or {}).items():
        if req.source_labels.get(key) != value:
            return False
    gateways = entry.get("gateways")
    if gateways and not gateway_matches(gateways, namespace, req.gateway):
        return False
    source_namespace = entry.get("sourceNamespace")
    return not source_namespace or source_namespace == req.source_namespace


def route_matches(route: Mapping[str, Any], req: Request, namespace: str = "") -> bool:
    """Whether an HTTPRoute matches: any of its match entries; no entries match everything."""
    entries = route.get("match")
    if not entries:
        return True
    return any(match_entry_matches(entry, req, namespace) for entry in entries)


def select_route(
    http_routes: Sequence[Mapping[str, Any]], req: Request, namespace: str = ""
) -> int | None:
    """Index of the first route that matches, or None (Envoy answers 404 with flag NR)."""
    for index, route in enumerate(http_routes):
        if route_matches(route, req, namespace):
            return index
    return None


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def _expand(host: str, namespace: str, domain: str) -> str:
    """The cluster FQDN a Kubernetes short name stands for, from ``namespace``."""
    labels = host.split(".")
    if len(labels) == 1 and namespace:
        return f"{host}.{namespace}.svc.{domain}"
    if len(labels) == 2:
        return f"{host}.svc.{domain}"
    if len(labels) == 3 and labels[2] == "svc":
        return f"{host}.{domain}"
    return host


def host_matches(
    vs_host: str,
    vs_namespace: str,
    request_host: str,
    client_namespace: str | None = None,
    domain: str = CLUSTER_DOMAIN,
) -> bool:
    """Whether a request's Host (port ignored) is one a VirtualService host stands for.

    Short VS hosts are relative to ``vs_namespace``. The request may name a service by
    "name" (resolved in ``client_namespace``, by default the VS's), "name.ns", "name.ns.svc"
    or its FQDN. "*.example.com" covers any name ending in ".example.com"; "*" covers all.
    """
    vs = vs_host.lower().rstrip(".")
    asked = _strip_port(request_host.lower()).rstrip(".")
    if vs == "*":
        return True
    client = vs_namespace if client_namespace is None else client_namespace
    expanded = _expand(asked, client, domain)
    # A one-label name only ever means a service in the client's own namespace.
    candidates = {expanded} if "." not in asked else {asked, expanded}
    if vs.startswith("*."):
        suffix = vs[1:]
        return any(name.endswith(suffix) and len(name) > len(suffix) for name in candidates)
    if vs in candidates:
        return True
    return _expand(vs, vs_namespace, domain) in candidates
