"""``authorization.k8s.io/v1`` SelfSubjectAccessReviews: what the bearer token may do.

The local control plane has one identity (whoever holds the token), so the answer is what
the server serves to that token: every verb it implements on the ``networking.istio.io``
resources, ``get`` and ``list`` on namespaces, and ``get`` on the discovery and health
paths. Anything else is not allowed, with a reason naming what is. A missing or wrong
token never gets here: it is answered 401 like every other request.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from chaosmesh_istio.localmesh import bodies, discovery, status

__all__ = ["create_review", "review"]

GROUP = discovery.AUTHORIZATION_GROUP
VERSION = discovery.AUTHORIZATION_VERSION
KIND = "SelfSubjectAccessReview"
PLURAL = "selfsubjectaccessreviews"

_ISTIO_VERBS = frozenset(discovery.RESOURCE_VERBS)
_NAMESPACE_VERBS = frozenset({"get", "list"})
_NON_RESOURCE_PREFIXES = ("/api", "/apis", "/openapi")
_NON_RESOURCE_PATHS = frozenset({"/version", "/healthz", "/readyz", "/livez"})
_GRANTED = (
    f"the token may {', '.join(sorted(_ISTIO_VERBS))} {' and '.join(sorted(discovery.RESOURCES))}"
    f" of {discovery.GROUP} in every namespace, get and list namespaces, and get the "
    "discovery and health paths"
)


def _invalid(field: str, value: object, message: str) -> status.ApiError:
    """422 as the apiserver words a SelfSubjectAccessReview that fails validation."""
    return status.ApiError(
        422,
        "Invalid",
        f'{KIND}.{GROUP} "" is invalid: {field}: Invalid value: {value!r}: {message}',
        {
            "group": GROUP,
            "kind": KIND,
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
        },
    )


def _attributes(spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    given = [k for k in ("resourceAttributes", "nonResourceAttributes") if spec.get(k) is not None]
    if len(given) != 1:
        raise _invalid(
            "spec.resourceAttributes",
            given,
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )
    attributes = spec[given[0]]
    if not isinstance(attributes, dict) or not all(
        isinstance(v, str) for k, v in attributes.items() if k != "fieldSelector"
    ):
        raise _invalid(f"spec.{given[0]}", attributes, "must be an object of strings")
    return given[0], attributes


def _resource_decision(attributes: dict[str, Any]) -> tuple[bool, str]:
    verb = attributes.get("verb", "")
    group = attributes.get("group", "")
    resource = attributes.get("resource", "")
    version = attributes.get("version", "")
    subresource = attributes.get("subresource", "")
    what = f"{verb!r} on {resource}{'/' + subresource if subresource else ''}" + (
        f".{group}" if group else ""
    )
    if subresource:
        return False, f"{what} is not served by the local control plane; {_GRANTED}"
    if group == discovery.GROUP and resource in discovery.RESOURCES:
        if version not in ("", "*", *discovery.VERSIONS):
            return False, f"{group}/{version} is not served; {_GRANTED}"
        if verb in _ISTIO_VERBS:
            return True, f"the local control plane grants the token {verb} on {resource}.{group}"
    elif group == "" and resource == "namespaces" and verb in _NAMESPACE_VERBS:
        return True, f"the local control plane grants the token {verb} on namespaces"
    elif group == GROUP and resource == PLURAL and verb == "create":
        return True, "anyone authenticated may review their own access"
    return False, f"{what} is not allowed: {_GRANTED}"


def _non_resource_decision(attributes: dict[str, Any]) -> tuple[bool, str]:
    path = attributes.get("path", "")
    verb = attributes.get("verb", "")
    served = path in _NON_RESOURCE_PATHS or any(
        path == p or path.startswith(p + "/") for p in _NON_RESOURCE_PREFIXES
    )
    if verb == "get" and served:
        return True, f"the local control plane serves get on {path}"
    return False, f"{verb!r} on the path {path!r} is not allowed: {_GRANTED}"


def review(body: object) -> dict[str, Any]:
    """Answer a SelfSubjectAccessReview body (a 400 or 422 ``Status`` when it is unusable)."""
    if not isinstance(body, dict):
        raise status.bad_request("the body of the request must be a JSON object")
    expected = f"{GROUP}/{VERSION}"
    if body.get("apiVersion") not in (None, expected):
        raise status.bad_request(
            f"the API version in the data ({body.get('apiVersion')}) does not match the "
            f"expected API version ({expected})"
        )
    if body.get("kind") not in (None, KIND):
        raise status.bad_request(
            f"the kind in the data ({body.get('kind')}) does not match the expected kind ({KIND})"
        )
    spec = body.get("spec")
    if not isinstance(spec, dict):
        raise _invalid("spec", spec, "must be an object with resourceAttributes or "
                       "nonResourceAttributes")  # fmt: skip
    kind, attributes = _attributes(spec)
    decide = _resource_decision if kind == "resourceAttributes" else _non_resource_decision
    allowed, reason = decide(attributes)
    answer: dict[str, Any] = {"allowed": allowed, "reason": reason}
    return {
        "kind": KIND,
        "apiVersion": expected,
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": answer,
    }


async def create_review(request: web.Request) -> web.StreamResponse:
    """``POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews``."""
    for value in request.query.getall("dryRun", []):
        if value != "All":
            raise status.bad_request(
                f'dryRun: Unsupported value: "{value}": supported values: "All"'
            )
    answer = review(bodies.read_json(await request.read()))
    return web.json_response(answer, status=201)
