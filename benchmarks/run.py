"""Run the benchmarks and print one table: each figure, its target, and whether it is met.

    python benchmarks/run.py [--only NAME ...]

Exit status 0 when every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import Result, render_table
from benchmarks.mesh import local_mesh

BENCHMARKS = ["faults", "safeguard", "dataplane", "fidelity", "load", "scale", "report"]
NEEDS_MESH = set(BENCHMARKS) - {"report"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    args = parser.parse_args(argv)
    chosen = args.only or BENCHMARKS
    results: list[Result] = []
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        mesh = None
        if NEEDS_MESH & set(chosen):
            print("starting the local mesh ...", flush=True)
            mesh = stack.enter_context(local_mesh())
        for name in chosen:
            print(f"benchmark {name} ...", flush=True)
            began = time.monotonic()
            module = importlib.import_module(f"benchmarks.bench_{name}")
            found = module.run(mesh)
            results.extend(found)
            for result in found:
                print(f"  {result.name}: {result.measured} ({'met' if result.met else 'MISSED'})")
            print(f"  done in {time.monotonic() - began:.1f} s", flush=True)
    print(f"\nmachine: {machine()}")
    print(f"total {time.monotonic() - started:.0f} s\n")
    print(render_table(results))
    return 0 if all(r.met for r in results) else 1


def machine() -> str:
    """CPU model and count, memory, kernel and Python: what the README's table ran on."""
    model, memory = platform.processor() or "unknown CPU", ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f", {int(line.split()[1]) / 1024**2:.0f} GiB"
                break
    cpus = len(os.sched_getaffinity(0))
    return (
        f"{model}, {cpus} CPUs{memory}, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


if __name__ == "__main__":
    sys.exit(main())
