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

__all__ = ["Result", "parse_wrk", "percentile", "render_table", "wrk"]


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
    try:
        return parse_wrk(done.stdout)
    except ValueError as exc:
        raise RuntimeError(f"wrk against {url}: {exc}\n{done.stdout}{done.stderr}") from exc


def parse_wrk(output: str) -> float:
    """Requests per second from wrk's report; ValueError if any answer failed or none came."""
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if found is None:
        raise ValueError("no Requests/sec line in the output")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors is not None:
        raise ValueError(f"{errors.group(1)} answers were not 2xx/3xx")
    if re.search(r"Socket errors:", output):
        raise ValueError("socket errors during the run")
    return float(found.group(1))
