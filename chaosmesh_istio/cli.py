"""The ``chaosmesh-istio`` command line: one function per subcommand, kept thin."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from chaoslib import convert_vars, merge_vars
from chaoslib.control import load_global_controls
from chaoslib.exceptions import ChaosException
from chaoslib.experiment import ensure_experiment_is_valid, run_experiment
from chaoslib.loader import load_experiment
from chaoslib.run import RunEventHandler
from chaoslib.settings import load_settings

from chaosmesh_istio import __version__
from chaosmesh_istio.cleanup import cleanup
from chaosmesh_istio.demo import run_demo
from chaosmesh_istio.errors import ChaosMeshIstioError, InvalidArgument
from chaosmesh_istio.localmesh.manager import mesh_down, mesh_status, mesh_up
from chaosmesh_istio.report import report_run
from chaosmesh_istio.report.compare import write_comparison
from chaosmesh_istio.report.index import write_index
from chaosmesh_istio.verdicts import USAGE_EXIT_CODE, verdict

__all__ = ["build_parser", "default_mesh_dir", "main"]

logger = logging.getLogger("chaostoolkit")

Command = Callable[[argparse.Namespace], int]


def default_mesh_dir() -> Path:
    """``$CHAOSMESH_MESH_DIR``, else ``~/.chaosmesh-istio/mesh``."""
    configured = os.environ.get("CHAOSMESH_MESH_DIR")
    return Path(configured) if configured else Path.home() / ".chaosmesh-istio" / "mesh"


def cmd_mesh_up(args: argparse.Namespace) -> int:
    """Start the local mesh and say where it listens."""
    started = time.monotonic()
    info = mesh_up(args.dir, port=args.port, full=not args.control_plane_only)
    took = time.monotonic() - started
    if args.json:
        print(json.dumps(info.to_json(), indent=2))
        return 0
    print(f"local mesh is up in {info.directory} ({took:.1f} s)")
    print(f"  API server:  {info.api_url}")
    if info.ingress_url:
        print(f"  ingress:     {info.ingress_url}  (try: curl {info.ingress_url}/product/1)")
    if info.prometheus_url:
        print(f"  Prometheus:  {info.prometheus_url}")
    print(f"  kubeconfig:  {info.kubeconfig}")
    print("to point experiments and kubectl at it:")
    print(f"  export KUBECONFIG={info.kubeconfig}")
    if info.ingress_url and info.prometheus_url and info.admin_url:
        print(f"  export CHAOSMESH_INGRESS_URL={info.ingress_url}")
        print(f"  export CHAOSMESH_PROMETHEUS_URL={info.prometheus_url}")
        print(f"  export CHAOSMESH_PROXY_ADMIN_URLS={info.admin_url}")
    return 0


def cmd_mesh_down(args: argparse.Namespace) -> int:
    """Stop the local mesh; its state stays on disk."""
    stopped = mesh_down(args.dir)
    print(f"stopped {', '.join(stopped)}" if stopped else "local mesh was not running")
    return 0


def cmd_mesh_status(args: argparse.Namespace) -> int:
    """Report the health of each part; exit 1 unless all are healthy."""
    report = mesh_status(args.dir)
    healthy = bool(report) and all(part["state"] == "healthy" for part in report.values())
    if args.json:
        print(json.dumps({"dir": str(args.dir), "healthy": healthy, "parts": report}, indent=2))
    elif not report:
        print(f"local mesh is not running in {args.dir}")
    else:
        for name, part in report.items():
            print(
                f"{name:<13} {part['state']:<10} pid {part['pid']:<8} {part['url']}  "
                f"({part['detail']})"
            )
    return 0 if healthy else 1


def _add_mesh(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mesh = subparsers.add_parser("mesh", help="run the local mesh (no cluster needed)")
    actions = mesh.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_text)
        parser.add_argument(
            "--dir",
            type=Path,
            default=default_mesh_dir(),
            help="mesh directory (default: $CHAOSMESH_MESH_DIR or ~/.chaosmesh-istio/mesh)",
        )
        parser.set_defaults(func=func)
        return parser

    up = action("up", cmd_mesh_up, "start the local mesh on 127.0.0.1")
    up.add_argument("--json", action="store_true", help="print where everything listens")
    up.add_argument("--port", type=int, default=0, help="API server port (default: any free)")
    up.add_argument(
        "--control-plane-only",
        action="store_true",
        help="start only the API server (no data plane, sample app or Prometheus)",
    )
    action("down", cmd_mesh_down, "stop the local mesh")
    status = action("status", cmd_mesh_status, "check the local mesh (exit 1 if unhealthy)")
    status.add_argument("--json", action="store_true", help="print the report as JSON")


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo on a local mesh in a temporary directory (or --dir)."""
    if args.dir is not None:
        return run_demo(Path(args.dir))
    with tempfile.TemporaryDirectory(prefix="chaosmesh-demo-") as tmp:
        return run_demo(Path(tmp) / "mesh")


class _Progress(RunEventHandler):  # type: ignore[misc]
    """Prints each step of the run for the person watching."""

    def start_hypothesis_before(self, experiment: dict[str, Any]) -> None:
        print("steady state before the method...", flush=True)

    def start_method(self, experiment: dict[str, Any]) -> None:
        print("method...", flush=True)

    def start_hypothesis_after(self, experiment: dict[str, Any]) -> None:
        print("steady state after the method...", flush=True)

    def start_rollbacks(self, experiment: dict[str, Any]) -> None:
        print("rollbacks...", flush=True)

    def activity_completed(self, activity: dict[str, Any], run: dict[str, Any]) -> None:
        status = run.get("status", "?")
        extra = "" if status == "succeeded" else f" ({_last_line(run.get('exception'))})"
        print(
            f"  {activity.get('type', '?')} {activity.get('name')!r}: {status} "
            f"in {run.get('duration', 0):.1f} s{extra}",
            flush=True,
        )


def _last_line(exception: object) -> str:
    lines = exception if isinstance(exception, list) else [str(exception)]
    return str(lines[-1]).strip() if lines else ""


_CONTROL = {"type": "python", "module": "chaosmesh_istio.controls"}


def _usage_error(message: str) -> int:
    print(f"chaosmesh-istio: error: {message}", file=sys.stderr)
    return USAGE_EXIT_CODE


def cmd_run(args: argparse.Namespace) -> int:
    """Run an experiment with our control and exit with its verdict's code."""
    source = Path(args.experiment)
    if not source.is_file():
        return _usage_error(f"experiment file {str(source)!r} does not exist")
    try:
        experiment_vars = merge_vars(convert_vars(args.var or []), args.var_file or [])
        settings = load_settings(args.settings) or {} if args.settings else {}
        experiment = load_experiment(str(source), settings)
        ensure_experiment_is_valid(experiment)
    except (ChaosException, OSError, ValueError) as exc:
        return _usage_error(f"{source} is not a valid experiment: {exc}")
    declared = any(
        (c.get("provider") or {}).get("module") == _CONTROL["module"]
        for c in experiment.get("controls") or []
    )
    controls = settings.setdefault("controls", {})
    if not declared:
        controls["chaosmesh"] = {"provider": dict(_CONTROL)}
    runtime = settings.setdefault("runtime", {})
    runtime.setdefault("rollbacks", {})["strategy"] = "always"
    load_global_controls(settings)
    print(f"running {experiment.get('title', source.name)!r}", flush=True)
    started = time.monotonic()
    journal = run_experiment(
        experiment, settings=settings, experiment_vars=experiment_vars,
        event_handlers=[_Progress()],
    )  # fmt: skip
    result = verdict(journal)
    journal.setdefault("chaosmesh", {})["verdict"] = {
        "name": result.name, "code": result.code, "reason": result.reason,
    }  # fmt: skip
    Path(args.journal_path).write_text(json.dumps(journal, indent=2, default=str))
    rollback = (journal.get("chaosmesh") or {}).get("rollback") or {}
    removed = sum(len(r.get("routes", [])) for r in rollback.get("removed", []))
    print(
        f"run {journal['chaosmesh'].get('run_id', '?')} ended {journal.get('status')} in "
        f"{time.monotonic() - started:.1f} s; control removed {removed} chaos route(s), "
        f"verified: {rollback.get('verified')}; journal: {args.journal_path}"
    )
    print(result.line(), flush=True)
    # The control wrote the report (and refreshed the index) right after the run.
    report = (journal.get("chaosmesh") or {}).get("report") or {}
    if report.get("html"):
        print(f"report: {report['html']} (junit: {report['junit']})", flush=True)
    elif report.get("error"):
        print(f"chaosmesh-istio: could not write the report: {report['error']}", file=sys.stderr)
    return result.code


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
            return _usage_error(
                f"run {run!r} is neither a directory nor a run id under {str(reports_dir)!r}"
            )
        if not (found / "summary.json").is_file():
            return _usage_error(
                f"run directory {str(found)!r} has no summary.json; write it with "
                "'chaosmesh-istio report JOURNAL'"
            )
        dirs.append(found)
    out = Path(args.out) if args.out else dirs[1].parent / "compare.html"
    try:
        written = write_comparison(dirs[0], dirs[1], out)
    except InvalidArgument as exc:
        return _usage_error(str(exc))
    print(f"compare: {written}")
    return 0


def _report_index(args: argparse.Namespace) -> int:
    reports_dir = Path(args.index or args.reports_dir)
    if args.out:
        return _usage_error("--out does not apply to --index: the index is DIR/index.html")
    if not reports_dir.is_dir():
        return _usage_error(f"reports directory {str(reports_dir)!r} does not exist")
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
        return _usage_error(f"give exactly one of JOURNAL, --index or --compare{given}")
    if args.index is not None:
        return _report_index(args)
    if args.compare is not None:
        return _report_compare(args)
    source = Path(args.journal)
    try:
        journal = json.loads(source.read_text())
    except (OSError, ValueError) as exc:
        return _usage_error(f"journal {str(source)!r} cannot be read as JSON: {exc}")
    if not isinstance(journal, dict) or "experiment" not in journal:
        return _usage_error(f"{str(source)!r} is not a Chaos Toolkit journal (no 'experiment')")
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


def _add_report(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _add_run(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = subparsers.add_parser(
        "run",
        help="run an experiment; no fault is left behind; exit with the verdict's code",
        description=(
            "Run an experiment with the chaosmesh control and the 'always' rollback "
            "strategy. Exit codes: 0 passed, 1 deviated, 2 baseline not met (skipped), "
            "3 halted by a safeguard, 4 inconclusive, 5 an activity errored, 6 rollback not "
            "verified, 64 invalid input, 130/143 interrupted by SIGINT/SIGTERM."
        ),
    )
    run.add_argument("experiment", help="experiment file (JSON or YAML)")
    run.add_argument(
        "--var", action="append", metavar="KEY=VALUE", help="configuration value (repeatable)"
    )
    run.add_argument(
        "--var-file", action="append", metavar="FILE", help="JSON/YAML/.env values (repeatable)"
    )
    run.add_argument("--journal-path", default="journal.json", help="where to write the journal")
    run.add_argument("--settings", help="Chaos Toolkit settings file (default: none)")
    run.set_defaults(func=cmd_run)


def cmd_cleanup(args: argparse.Namespace) -> int:
    """Remove leftover faults and say what was removed."""
    removed = cleanup(
        expired=args.expired,
        run_id=args.run_id,
        all_runs=args.all,
        namespace=args.namespace,
        all_namespaces=args.all_namespaces,
    )
    if args.json:
        print(json.dumps({"removed": removed}, indent=2))
    elif not removed:
        print("nothing to clean up")
    for item in [] if args.json else removed:
        routes = item["routes"]
        expires = item["expires"]
        when = f"expired {expires}" if args.expired and expires else f"expires {expires}"
        print(
            f"removed {len(routes)} route{'' if len(routes) == 1 else 's'} of run "
            f"{item['run_id']} from {item['virtual_service']} "
            f"({when if expires else 'no expiry recorded'})"
        )
    return 0


def _add_cleanup(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cleanup", help="remove leftover faults (expired runs, one run, or all of them)"
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--expired", action="store_true", help="runs whose TTL is past (or that record none)"
    )
    which.add_argument("--run-id", metavar="ID", help="the faults of this run")
    which.add_argument("--all", action="store_true", help="the faults of every run")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--namespace", "-n", default="default", help="default: default")
    where.add_argument("--all-namespaces", "-A", action="store_true", help="every namespace")
    parser.add_argument("--json", action="store_true", help="print what was removed as JSON")
    parser.set_defaults(func=cmd_cleanup)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="chaosmesh-istio",
        description="Header-scoped chaos experiments for Istio service meshes.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_mesh(subparsers)
    _add_cleanup(subparsers)
    demo = subparsers.add_parser(
        "demo", help="start the local mesh, run a header-scoped abort, explain it, stop"
    )
    demo.add_argument("--dir", help="mesh directory (default: a temporary one)")
    demo.set_defaults(func=cmd_demo)
    _add_run(subparsers)
    _add_report(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    command: Command = args.func
    try:
        return command(args)
    except ChaosMeshIstioError as exc:
        print(f"chaosmesh-istio: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        # main() may run many times in one process (tests); never stack handlers.
        logger.removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
