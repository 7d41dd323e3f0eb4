"""Request and response edits of a route: header operations, URI rewrites, redirects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from multidict import CIMultiDict

from chaosmesh_istio.localmesh.dataplane.routes import HeaderOps, Route
from chaosmesh_istio.localmesh.routing import Request, match_entry_matches

__all__ = ["apply_headers", "redirect_location", "rewrite_path"]

_DEFAULT_PORTS = {"http": "80", "https": "443"}


def apply_headers(headers: CIMultiDict[str], ops: HeaderOps | None) -> None:
    """Apply one level of Istio header operations: remove, then set, then add."""
    if ops is None:
        return
    for name in ops.remove:
        headers.popall(name, None)
    for name, value in ops.set:
        headers[name] = value
    for name, value in ops.add:
        headers.add(name, value)


def _matched_uri(
    route_spec: Mapping[str, Any], request: Request | None, namespace: str
) -> Mapping[str, Any]:
    """The ``uri`` condition of the match entry that selected the route ({} if none):
    Istio makes one Envoy route per match entry, so the first matching entry decides."""
    entries = route_spec.get("match") or ()
    if request is None:
        return {}
    for entry in entries:
        if match_entry_matches(entry, request, namespace):
            return entry.get("uri") or {}
    return {}


def rewrite_path(
    route: Route, spec: Mapping[str, Any], namespace: str, request: Request | None, raw_path: str
) -> str:
    """The path (with query) to send upstream after ``rewrite.uri``/``uriRegexRewrite``.

    As in Envoy, ``rewrite.uri`` replaces the matched prefix for a prefix match, the whole
    path for exact and regex matches, and the leading "/" when the route has no uri match.
    """
    if route.rewrite_uri is None and route.rewrite_regex is None:
        return raw_path
    path, sep, query = raw_path.partition("?")
    if route.rewrite_uri is not None:
        uri = _matched_uri(spec, request, namespace)
        prefix = uri.get("prefix")
        if prefix is not None:
            return route.rewrite_uri + raw_path[len(prefix) :]
        if uri.get("exact") is not None or uri.get("regex") is not None:
            return route.rewrite_uri + sep + query
        return route.rewrite_uri + raw_path[1:]
    assert route.rewrite_regex is not None
    pattern, replacement = route.rewrite_regex
    rewritten: str = pattern.sub(replacement, path)
    return rewritten + sep + query


def redirect_location(
    redirect: Mapping[str, Any], raw_path: str, authority: str
) -> tuple[str, int]:
    """The Location and status of an HTTPRedirect (Envoy keeps the query unless the new
    path brings its own, and drops a port that is the scheme's default)."""
    scheme = str(redirect.get("scheme") or "http")
    host = str(redirect.get("authority") or authority)
    port = redirect.get("port")
    if port is None and redirect.get("derivePort") == "FROM_PROTOCOL_DEFAULT":
        port = _DEFAULT_PORTS.get(scheme)
    if port is not None:
        name, sep, current = host.rpartition(":")
        bare = name if sep and current.isdigit() else host
        host = bare if str(port) == _DEFAULT_PORTS.get(scheme) else f"{bare}:{port}"
    path = raw_path
    uri = redirect.get("uri")
    if uri:
        _, sep, query = raw_path.partition("?")
        path = uri if "?" in uri else uri + sep + query
    code = int(redirect.get("redirectCode") or 301)
    return f"{scheme}://{host}{path}", code
