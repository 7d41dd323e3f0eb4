"""Kubernetes label and field selectors, parsed once and matched against objects."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["SelectorError", "parse_field_selector", "parse_label_selector"]

Matcher = Callable[[Mapping[str, Any]], bool]

# One requirement: `!key`, `key`, `key op value` or `key in|notin (v1, v2)`.
_SET_RE = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")

_FIELDS = {"metadata.name": "name", "metadata.namespace": "namespace"}


class SelectorError(ValueError):
    """The selector does not parse; the message says which part."""


def _split(selector: str) -> list[str]:
    """Split on commas that are not inside a parenthesised value set."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def _requirement(text: str) -> Callable[[Mapping[str, str]], bool]:
    if m := _SET_RE.match(text):
        key, op = m.group(1), m.group(2)
        values = {v.strip() for v in m.group(3).split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if m := _EQ_RE.match(text):
        key, op, value = m.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if m := _EXISTS_RE.match(text):
        negate, key = m.groups()
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise SelectorError(f"unable to parse requirement: {text.strip()!r}")


def parse_label_selector(selector: str) -> Matcher:
    """Return a predicate on objects for a ``labelSelector`` query value."""
    requirements = [_requirement(part) for part in _split(selector)]

    def matches(obj: Mapping[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(req(labels) for req in requirements)

    return matches


def parse_field_selector(selector: str) -> Matcher:
    """Return a predicate for a ``fieldSelector`` on metadata.name / metadata.namespace."""
    checks: list[tuple[str, str, bool]] = []
    for part in _split(selector):
        m = _EQ_RE.match(part)
        if m is None:
            raise SelectorError(f"invalid selector: {part.strip()!r}")
        field, op, value = m.groups()
        if field not in _FIELDS:
            raise SelectorError(f"field label not supported: {field}")
        checks.append((_FIELDS[field], value, op != "!="))

    def matches(obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata", {})
        return all((meta.get(key) == value) is equal for key, value, equal in checks)

    return matches
