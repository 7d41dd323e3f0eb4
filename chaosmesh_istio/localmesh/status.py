"""Kubernetes ``Status`` errors, worded like the apiserver's so clients react the same way."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chaosmesh_istio.errors import MeshError
from chaosmesh_istio.localmesh.discovery import GROUP, Resource

__all__ = [
    "ApiError",
    "Cause",
    "already_exists",
    "bad_request",
    "conflict",
    "invalid",
    "method_not_allowed",
    "namespace_not_found",
    "not_found",
    "path_not_found",
    "unauthorized",
    "unprocessable_patch",
    "unsupported_media_type",
]

Cause = dict[str, str]


class ApiError(MeshError):
    """An error answer of the API: ``status()`` is the body, ``code`` the HTTP status."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        """The ``Status`` object to send."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(resource: Resource, name: str) -> dict[str, Any]:
    return {"name": name, "group": GROUP, "kind": resource.plural}


def not_found(resource: Resource, name: str) -> ApiError:
    """404 for a missing object."""
    return ApiError(
        404, "NotFound", f'{resource.group_resource} "{name}" not found', _details(resource, name)
    )


def namespace_not_found(name: str) -> ApiError:
    """404 for a namespace that holds nothing."""
    return ApiError(
        404, "NotFound", f'namespaces "{name}" not found', {"name": name, "kind": "namespaces"}
    )


def path_not_found() -> ApiError:
    """404 for a URL that names no resource."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(resource: Resource, name: str) -> ApiError:
    """409 when creating an object whose name is taken."""
    return ApiError(
        409,
        "AlreadyExists",
        f'{resource.group_resource} "{name}" already exists',
        _details(resource, name),
    )


def conflict(resource: Resource, name: str, why: str) -> ApiError:
    """409 when a resourceVersion or uid precondition does not hold."""
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {resource.group_resource} "{name}": {why}',
        _details(resource, name),
    )


def invalid(resource: Resource, name: str, causes: Sequence[Cause]) -> ApiError:
    """422 with one cause per field error, as ``errors.NewInvalid`` words it."""
    texts = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes]
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{resource.kind}.{GROUP} "{name}" is invalid: {summary}',
        {"name": name, "group": GROUP, "kind": resource.kind, "causes": list(causes)},
    )


def unprocessable_patch(error: str) -> ApiError:
    """422 when a JSON patch cannot be applied, e.g. a failed ``test`` operation."""
    return ApiError(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
        {"causes": [{"reason": "UnexpectedServerResponse", "message": error}]},
    )


def bad_request(message: str) -> ApiError:
    """400 for a body or query the server cannot use."""
    return ApiError(400, "BadRequest", message)


def unauthorized() -> ApiError:
    """401 for a missing or wrong bearer token."""
    return ApiError(401, "Unauthorized", "Unauthorized")


def method_not_allowed() -> ApiError:
    """405 for a verb the URL does not support."""
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
    )


def unsupported_media_type(content_type: str, accepted: Sequence[str]) -> ApiError:
    """415 for a patch type the server does not implement for custom resources."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format ({content_type!s}) - accepted "
        f"media types include: {', '.join(accepted)}",
    )
