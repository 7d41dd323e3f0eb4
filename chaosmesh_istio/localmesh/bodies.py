"""Request bodies: decoding, the checks the apiserver makes before storage, and patches."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import jsonpatch

from chaosmesh_istio.localmesh import status
from chaosmesh_istio.localmesh.discovery import GROUP, Resource

__all__ = [
    "JSON_PATCH",
    "MERGE_PATCH",
    "apply_patch",
    "check_object",
    "merge_patch",
    "read_json",
]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"


def read_json(body: bytes) -> Any:
    """Decode a JSON request body, or raise a 400 ``Status``."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise status.bad_request(f"the body of the request is not valid JSON: {exc}") from exc


def check_object(obj: Any, resource: Resource, version: str) -> dict[str, Any]:
    """Check that a body is an object of the URL's kind and version (400 otherwise)."""
    if not isinstance(obj, dict):
        raise status.bad_request("the body of the request must be a JSON object")
    expected = f"{GROUP}/{version}"
    if not obj.get("kind"):
        raise status.bad_request("Object 'Kind' is missing in the request body")
    if obj.get("apiVersion") != expected:
        raise status.bad_request(
            f"the API version in the data ({obj.get('apiVersion')}) does not match the "
            f"expected API version ({expected})"
        )
    if obj["kind"] != resource.kind:
        raise status.bad_request(
            f"the kind in the data ({obj['kind']}) does not match the expected kind "
            f"({resource.kind})"
        )
    if not isinstance(obj.setdefault("metadata", {}), dict):
        raise status.bad_request("metadata must be a JSON object")
    return obj


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch; ``target`` is not modified."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_patch(current: Mapping[str, Any], content_type: str, body: bytes) -> Any:
    """Apply a merge or JSON patch to ``current``; other patch types get 415."""
    if content_type == MERGE_PATCH:
        return merge_patch(current, read_json(body))
    if content_type != JSON_PATCH:
        raise status.unsupported_media_type(content_type, [JSON_PATCH, MERGE_PATCH])
    operations = read_json(body)
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise status.bad_request("a JSON patch must be a list of operation objects")
    try:
        patch = jsonpatch.JsonPatch(operations)
        return patch.apply(copy.deepcopy(dict(current)), in_place=True)
    except jsonpatch.InvalidJsonPatch as exc:
        raise status.bad_request(str(exc)) from exc
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        # The apiserver answers 422 when a well-formed patch does not apply.
        raise status.unprocessable_patch(str(exc)) from exc
