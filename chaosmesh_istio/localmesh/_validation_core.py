"""Building blocks of the local control plane's validation: the error type, a checker that
walks JSON like a structural CRD schema with strict field validation, Go durations and RE2."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from chaosmesh_istio.durations import parse_duration_ns
from chaosmesh_istio.localmesh._validation_names import label_key_error, label_value_error
from chaosmesh_istio.regex import compile_re2

__all__ = [
    "INT32_MAX",
    "UINT32_MAX",
    "Checker",
    "FieldError",
    "join",
    "parse_duration",
]

INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1


@dataclass(frozen=True)
class FieldError:
    """One invalid field, as a Kubernetes ``Status`` cause describes it."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"


def parse_duration(text: str) -> float:
    """Parse a Go duration ("5s", "100ms", "1.5s", "1m30s", "2h") into seconds."""
    return parse_duration_ns(text) / 1e9


def join(path: str, key: str) -> str:
    """The path of field ``key`` inside the object at ``path`` ("" is the root)."""
    return f"{path}.{key}" if path else key


def _show(value: Any) -> str:
    """Render a value the way Kubernetes prints it in a field error."""
    if isinstance(value, Mapping):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return json.dumps(repr(value))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


class Checker:
    """Collects every field error while walking one object.

    The typed getters read ``obj[key]``: an absent or null field gives None silently (a
    structural schema prunes nulls), a wrong type records an error and also gives None, so
    semantic checks only ever see well-typed values.
    """

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def invalid(self, path: str, value: Any, detail: str) -> None:
        """Record an invalid value."""
        self.errors.append(FieldError(path, f"Invalid value: {_show(value)}: {detail}"))

    def required(self, path: str, detail: str = "") -> None:
        """Record a missing value."""
        message = f"Required value: {detail}" if detail else "Required value"
        self.errors.append(FieldError(path, message, "FieldValueRequired"))

    def unsupported(self, path: str, value: Any, supported: Collection[str]) -> None:
        """Record a value outside an enumeration."""
        listed = ", ".join(json.dumps(s) for s in sorted(supported))
        self.errors.append(
            FieldError(
                path,
                f"Unsupported value: {_show(value)}: supported values: {listed}",
                "FieldValueNotSupported",
            )
        )

    def duplicate(self, path: str, value: Any) -> None:
        """Record a repeated value."""
        self.errors.append(
            FieldError(path, f"Duplicate value: {_show(value)}", "FieldValueDuplicate")
        )

    def wrong_type(self, path: str, value: Any, expected: str) -> None:
        """Record a JSON type mismatch, worded like the API server's schema validation."""
        actual = _json_type(value)
        self.errors.append(
            FieldError(
                path,
                f'Invalid value: "{actual}": {path} in body must be of type {expected}: "{actual}"',
                "FieldValueTypeInvalid",
            )
        )

    def obj(self, value: Any, path: str, fields: Collection[str]) -> Mapping[str, Any] | None:
        """``value`` as an object that only has known ``fields`` (unknown ones are errors)."""
        if not isinstance(value, Mapping):
            self.wrong_type(path, value, "object")
            return None
        for key in value:
            if key not in fields:
                self.errors.append(
                    FieldError(
                        join(path, key),
                        f"Unsupported value: {_show(key)}: unknown field, supported fields: "
                        + ", ".join(json.dumps(f) for f in sorted(fields)),
                        "FieldValueNotSupported",
                    )
                )
        return value

    def child(
        self, obj: Mapping[str, Any], path: str, key: str, fields: Collection[str]
    ) -> Mapping[str, Any] | None:
        """The nested object ``obj[key]``."""
        value = obj.get(key)
        return None if value is None else self.obj(value, join(path, key), fields)

    def text(
        self, obj: Mapping[str, Any], path: str, key: str, required: bool = False
    ) -> str | None:
        """The string ``obj[key]``."""
        value = obj.get(key)
        if value is None:
            if required:
                self.required(join(path, key))
            return None
        if not isinstance(value, str):
            self.wrong_type(join(path, key), value, "string")
            return None
        return value

    def integer(
        self,
        obj: Mapping[str, Any],
        path: str,
        key: str,
        low: int = -(2**31),
        high: int = INT32_MAX,
        required: bool = False,
    ) -> int | None:
        """The integer ``obj[key]`` within its protobuf range (bool is not an integer)."""
        value = obj.get(key)
        if value is None:
            if required:
                self.required(join(path, key))
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.wrong_type(join(path, key), value, "integer")
            return None
        if not low <= value <= high:
            self.invalid(join(path, key), value, f"must be between {low} and {high}")
            return None
        return value

    def number(self, obj: Mapping[str, Any], path: str, key: str) -> float | None:
        """The number ``obj[key]`` (integers are numbers too)."""
        value = obj.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.wrong_type(join(path, key), value, "number")
            return None
        return float(value)

    def flag(self, obj: Mapping[str, Any], path: str, key: str) -> bool | None:
        """The boolean ``obj[key]``."""
        value = obj.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.wrong_type(join(path, key), value, "boolean")
            return None
        return value

    def items(self, obj: Mapping[str, Any], path: str, key: str) -> list[Any]:
        """The array ``obj[key]`` (empty when absent or mistyped)."""
        value = obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.wrong_type(join(path, key), value, "array")
            return []
        return value

    def strings(self, obj: Mapping[str, Any], path: str, key: str) -> list[tuple[str, str]]:
        """The string items of the array ``obj[key]``, each with its path."""
        found = []
        for index, item in enumerate(self.items(obj, path, key)):
            item_path = f"{join(path, key)}[{index}]"
            if isinstance(item, str):
                found.append((item_path, item))
            else:
                self.wrong_type(item_path, item, "string")
        return found

    def string_map(self, obj: Mapping[str, Any], path: str, key: str) -> dict[str, str]:
        """The string-to-string map ``obj[key]``."""
        value = obj.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.wrong_type(join(path, key), value, "object")
            return {}
        found = {}
        for name, item in value.items():
            if isinstance(item, str):
                found[name] = item
            else:
                self.wrong_type(f"{join(path, key)}[{name}]", item, "string")
        return found

    def enum(
        self, obj: Mapping[str, Any], path: str, key: str, allowed: Collection[str]
    ) -> str | None:
        """The string ``obj[key]`` restricted to ``allowed``."""
        value = self.text(obj, path, key)
        if value is not None and value not in allowed:
            self.unsupported(join(path, key), value, allowed)
            return None
        return value

    def duration(
        self, obj: Mapping[str, Any], path: str, key: str, required: bool = False
    ) -> int | None:
        """The duration ``obj[key]`` in nanoseconds, held to Istio's >= 1ms, ms precision."""
        value = self.text(obj, path, key, required)
        if value is None:
            return None
        try:
            nanos = parse_duration_ns(value)
        except ValueError as exc:
            self.invalid(join(path, key), value, str(exc))
            return None
        if nanos < 1_000_000:
            self.invalid(join(path, key), value, "duration must be greater than 1ms")
        elif nanos % 1_000_000:
            self.invalid(join(path, key), value, "only durations to ms precision are supported")
        return nanos

    def labels(self, obj: Mapping[str, Any], path: str, key: str) -> dict[str, str]:
        """A label map ``obj[key]`` with Kubernetes key and value rules."""
        found = self.string_map(obj, path, key)
        for name, value in found.items():
            key_error = label_key_error(name)
            if key_error:
                self.invalid(join(path, key), name, key_error)
            value_error = label_value_error(value)
            if value_error:
                self.invalid(f"{join(path, key)}[{name}]", value, value_error)
        return found

    def regex(self, path: str, pattern: str) -> None:
        """Check an RE2 pattern as Istio does (non-empty, at most 1024 long, compiles)."""
        if not pattern:
            self.invalid(path, pattern, "regex string match should not be empty")
        elif len(pattern) > 1024:
            self.invalid(path, pattern, "regex is too large, max length allowed is 1024")
        else:
            try:
                compile_re2(pattern)
            except ValueError as exc:
                self.invalid(path, pattern, f"{exc}; Istio uses RE2 style regex-based match")
