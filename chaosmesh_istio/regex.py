"""RE2 patterns, as Istio (Envoy) evaluates them: full match, no look-arounds or back-references."""

from __future__ import annotations

import functools
from typing import Any

import re2

__all__ = ["compile_re2", "re2_escape"]

_OPTIONS = re2.Options()
# RE2 logs every bad pattern to stderr through absl; the caller reports it instead.
_OPTIONS.log_errors = False


@functools.lru_cache(maxsize=4096)
def compile_re2(pattern: str) -> Any:
    """Compile an RE2 pattern once; raise ValueError with RE2's reason when it is invalid."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"invalid RE2 regex {pattern!r}: {reason}") from None


def re2_escape(text: str) -> str:
    """Escape text so that it matches itself literally in RE2."""
    return "".join(c if c.isalnum() or c == "_" else "\\" + c for c in text)
