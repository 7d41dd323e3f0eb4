"""``chaosmesh-istio report``: a run's report from its journal, the index, a comparison."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from chaosmesh_istio.errors import InvalidArgument
from chaosmesh_istio.report import report_run
from chaosmesh_istio.report.compare import write_comparison
from chaosmesh_istio.report.index import write_index

__all__ = ["add_report", "cmd_report"]

_EXAMPLES = """\
examples:
  chaosmesh-istio report reports/20261122-004825-ae47c4/journal.json
  chaosmesh-istio report --index reports/
  chaosmesh-istio report --compare 20261122-004825-ae47c4 20261122-010623-84ba92
"""


def _run_dir(run: str, reports_dir: Path) -> Path | None:
    """A run given as a directory, else as a run id under the reports directory."""
    for candidate in (Path(run), reports_dir / run):
        if candidate.is_dir():
            return candidate
    return None


def _report_compare(args: argparse.Namespace) -> int:
    reports_dir = Path(args.reports_dir)
    dirs = []
    for run in args.compare:
        found = _run_dir(run, reports_dir)
        if found is None:
            raise InvalidArgument(
                f"run {run!r} is neither a directory nor a run id under {str(reports_dir)!r}"
            )
        if not (found / "summary.json").is_file():
            raise InvalidArgument(
                f"run directory {str(found)!r} has no summary.json; write it with "
                "'chaosmesh-istio report JOURNAL'"
            )
        dirs.append(found)
    out = Path(args.out) if args.out else dirs[1].parent / "compare.html"
    print(f"compare: {write_comparison(dirs[0], dirs[1], out)}")
    return 0


def _report_index(args: argparse.Namespace) -> int:
    reports_dir = Path(args.index or args.reports_dir)
    if args.out:
        raise InvalidArgument("--out does not apply to --index: the index is DIR/index.html")
    if not reports_dir.is_dir():
        raise InvalidArgument(f"reports directory {str(reports_dir)!r} does not exist")
    print(f"index: {write_index(reports_dir)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write a run's report from its journal, the index of all runs, or a comparison."""
    modes = [
        name
        for name, given in (
            ("JOURNAL", args.journal is not None),
            ("--index", args.index is not None),
            ("--compare", args.compare is not None),
        )
        if given
    ]
    if len(modes) != 1:
        given = f" (got {' and '.join(modes)})" if modes else ""
        raise InvalidArgument(f"give exactly one of JOURNAL, --index or --compare{given}")
    if args.index is not None:
        return _report_index(args)
    if args.compare is not None:
        return _report_compare(args)
    source = Path(args.journal)
    try:
        journal = json.loads(source.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"journal {str(source)!r} cannot be read as JSON: {exc}") from None
    if not isinstance(journal, dict) or "experiment" not in journal:
        raise InvalidArgument(f"{str(source)!r} is not a Chaos Toolkit journal (no 'experiment')")
    reports_dir = Path(args.reports_dir)
    written = report_run(journal, reports_dir, Path(args.out) if args.out else None)
    for kind, path in written.items():
        print(f"{kind}: {path}")
    if reports_dir.is_dir():
        try:
            print(f"index: {write_index(reports_dir)}")
        except OSError as exc:
            print(f"chaosmesh-istio: could not write the index: {exc}", file=sys.stderr)
    return 0


def add_report(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``report``."""
    report = subparsers.add_parser(
        "report",
        help="write a run's report from its journal, the index of all runs, or a comparison",
        usage=(
            "chaosmesh-istio report JOURNAL [--out DIR] [--reports-dir DIR]\n"
            "       chaosmesh-istio report --index [DIR]\n"
            "       chaosmesh-istio report --compare RUN_A RUN_B [--out FILE] [--reports-dir DIR]"
        ),
        description=(
            "Write report.html, junit.xml and summary.json of a journal (and refresh the "
            "reports directory's index.html), or write index.html listing every run, or "
            "compare.html of two runs. Exit code 64 on invalid input."
        ),
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("journal", nargs="?", help="the journal.json of a run")
    report.add_argument(
        "--index",
        nargs="?",
        const="",
        metavar="DIR",
        help="write DIR/index.html listing every run, newest first (default DIR: --reports-dir)",
    )
    report.add_argument(
        "--compare",
        nargs=2,
        metavar=("RUN_A", "RUN_B"),
        help="compare two runs, each a run directory or a run id under --reports-dir",
    )
    report.add_argument(
        "--out",
        help="JOURNAL: output directory (default: REPORTS_DIR/<run-id>); --compare: output "
        "file (default: compare.html next to RUN_B)",
    )
    report.add_argument(
        "--reports-dir", default="reports", help="where runs' outputs live (default: reports)"
    )
    report.set_defaults(func=cmd_report)
