"""``meta.k8s.io`` Tables, the server-side printing ``kubectl get`` asks for."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from chaosmesh_istio.localmesh.discovery import Column

__all__ = ["human_duration", "table", "table_version"]


def table_version(accept: str) -> str | None:
    """The Table apiVersion an ``Accept`` header asks for, or ``None`` for plain objects."""
    for clause in accept.split(","):
        params = dict(
            part.strip().partition("=")[::2] for part in clause.split(";")[1:] if "=" in part
        )
        if params.get("as") == "Table" and params.get("g", "meta.k8s.io") == "meta.k8s.io":
            return f"meta.k8s.io/{params.get('v', 'v1')}"
    return None


def human_duration(seconds: float) -> str:
    """Format an age as kubectl does (``5m``, ``3h12m``, ``4d``)."""
    if seconds < -1:
        return "<invalid>"
    s = max(int(seconds), 0)
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    days = hours // 24
    if days < 365 * 2:
        return f"{days}d"
    if days < 365 * 8:
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{days // 365}y"


def _lookup(obj: Mapping[str, Any], path: str) -> Any:
    value: Any = obj
    for key in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _cell(column: Column, obj: Mapping[str, Any], now: datetime) -> Any:
    value = _lookup(obj, column.path)
    if value is None:
        return None
    if column.type == "date":
        try:
            created = datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return "<unknown>"
        return human_duration((now - created).total_seconds())
    if isinstance(value, list | dict):
        # The CRD printer renders lists through JSONPath, which prints them as JSON.
        return json.dumps(value, separators=(",", ":"))
    return value


def _partial(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def table(
    api_version: str,
    columns: Sequence[Column],
    objects: Iterable[Mapping[str, Any]],
    resource_version: str,
) -> dict[str, Any]:
    """A Table with a Name column followed by ``columns``, one row per object."""
    now = datetime.now(UTC)
    definitions = [
        {
            "name": "Name",
            "type": "string",
            "format": "name",
            "description": "Name must be unique within a namespace.",
            "priority": 0,
        }
    ] + [
        {"name": c.name, "type": c.type, "format": "", "description": c.description, "priority": 0}
        for c in columns
    ]
    rows = [
        {
            "cells": [obj.get("metadata", {}).get("name")] + [_cell(c, obj, now) for c in columns],
            "object": _partial(obj),
        }
        for obj in objects
    ]
    return {
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }
