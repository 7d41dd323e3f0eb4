"""What every benchmark returns and how the table is printed.

A benchmark measures its figure and, where the target is relative, the reference it is
compared with, side by side in the same run; never a number from another run.
"""

from __future__ import annotations

import re
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Result", "percentile", "render_table", "wrk"]


@dataclass(frozen=True)
class Result:
    """One line of the table: what was measured, against which target, and whether it is met."""

    name: str
    measured: str
    target: str
    met: bool
    detail: str = ""


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) with linear interpolation, like numpy's default."""
    if not values:
        raise ValueError("no values")
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1])


def render_table(results: Sequence[Result]) -> str:
    """A Markdown table, as pasted into the README."""
    rows = [("benchmark", "measured", "target", "met", "detail")]
    rows += [(r.name, r.measured, r.target, "yes" if r.met else "NO", r.detail) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def wrk(url: str, seconds: int = 5, connections: int = 32, host: str | None = None) -> float:
    """Requests per second `wrk` (Debian) achieves against `url` (2 threads, kept alive)."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", url]
    if host:
        command[1:1] = ["-H", f"Host: {host}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True)
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if found is None or errors is not None:
        raise RuntimeError(f"wrk against {url} failed: {done.stdout}{done.stderr}")
    return float(found.group(1))
