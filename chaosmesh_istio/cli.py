"""The ``chaosmesh-istio`` command line: one function per subcommand, kept thin.

Exit codes: ``run`` exits with its verdict's code (see ``verdicts``); every command exits
64 on unusable input (a missing or malformed file, an unknown variable, a bad option);
``validate`` exits 1 when a check fails, ``mesh status`` when a part is unhealthy, and
any command 1 when the cluster, Prometheus or the local mesh fails it. Errors are one
sentence on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn, TypeAlias, cast

from chaosmesh_istio import __version__, plan, runner, scaffold
from chaosmesh_istio.cleanup import cleanup
from chaosmesh_istio.cli_mesh import add_mesh, default_mesh_dir
from chaosmesh_istio.cli_report import add_report
from chaosmesh_istio.demo import run_demo
from chaosmesh_istio.errors import ChaosMeshIstioError, InvalidArgument
from chaosmesh_istio.experiment import load
from chaosmesh_istio.validate import validate
from chaosmesh_istio.verdicts import USAGE_EXIT_CODE

__all__ = ["FAILURE_EXIT_CODE", "build_parser", "default_mesh_dir", "main"]

logger = logging.getLogger("chaostoolkit")

Command = Callable[[argparse.Namespace], int]
FAILURE_EXIT_CODE = 1

_RUN_EXAMPLES = """\
examples:
  chaosmesh-istio run experiments/delay-reviews-under-load.json
  chaosmesh-istio run experiments/slow-network.json --var chaosmesh_owner=sre-team
  chaosmesh-istio run my-experiment.json --var-file staging.yaml --dry-run

exit codes: 0 passed, 1 deviated, 2 baseline not met (skipped), 3 halted by a safeguard,
4 inconclusive, 5 an activity errored, 6 rollback not verified, 64 invalid input,
130/143 interrupted by SIGINT/SIGTERM (faults removed first).
"""
_VALIDATE_EXAMPLES = """\
examples:
  chaosmesh-istio validate experiments/delay-reviews-under-load.json
  chaosmesh-istio validate my-experiment.json --var prometheus_url=http://prometheus:9090

checks: experiment (schema and arguments), targets (the VirtualServices exist),
permissions (get/patch on virtualservices), header propagation (tagged requests reach the
faulted hop's caller). Exit 0 when all pass or are skipped, 1 when one fails, 64 when the
input is unusable.
"""
_INIT_EXAMPLES = """\
examples:
  chaosmesh-istio init --virtual-service reviews
  chaosmesh-istio init --virtual-service catalog --fault abort --out experiments/catalog.json
"""
_CLEANUP_EXAMPLES = """\
examples:
  chaosmesh-istio cleanup --expired --all-namespaces      # the CronJob backstop
  chaosmesh-istio cleanup --run-id 20261122-004825-ae47c4 -n shop
  chaosmesh-istio cleanup --all --json
"""
_DEMO_EXAMPLES = """\
examples:
  chaosmesh-istio demo              # or: make demo
  chaosmesh-istio demo --dir /tmp/demo-mesh
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but bad usage is one sentence and exit code 64 (2 means 'skipped')."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_EXIT_CODE, f"{self.prog}: error: {message}\n")


def _vars(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="configuration value, KEY[:TYPE]=VALUE (repeatable); the experiment must declare "
        "KEY, or KEY is a documented chaosmesh_*/prometheus_* key",
    )
    parser.add_argument(
        "--var-file",
        action="append",
        default=[],
        metavar="FILE",
        help="JSON/YAML file with configuration and secrets, or a .env file (repeatable)",
    )


def cmd_run(args: argparse.Namespace) -> int:
    """Run an experiment (or show its plan) and exit with its verdict's code."""
    experiment = load(args.experiment, args.var, args.var_file)
    if args.dry_run:
        experiment.ensure_valid()
        plan.print_plan(experiment, lambda line: print(line, flush=True))
        return 0
    result = runner.run(
        experiment,
        Path(args.journal_path),
        args.settings,
        out=lambda line: print(line, flush=True),
    )
    report = result.report
    if report.get("html"):
        print(f"report: {report['html']} (junit: {report.get('junit')})", flush=True)
    elif report.get("error"):
        print(f"chaosmesh-istio: could not write the report: {report['error']}", file=sys.stderr)
    return result.verdict.code


def cmd_validate(args: argparse.Namespace) -> int:
    """Check that an experiment can run here; nothing is written."""
    experiment = load(args.experiment, args.var, args.var_file)
    checks = validate(experiment, lambda line: print(line, flush=True), args.timeout)
    return FAILURE_EXIT_CODE if any(c.ok is False for c in checks) else 0


def cmd_init(args: argparse.Namespace) -> int:
    """Write an experiment for an existing VirtualService."""
    out = Path(args.out) if args.out else None
    path = scaffold.write_experiment(args.virtual_service, args.namespace, out, args.fault)
    print(f"wrote {path} (a header-scoped {args.fault} on {args.namespace}/"
          f"{args.virtual_service}; validated by Chaos Toolkit)")  # fmt: skip
    print("next:")
    print(f"  chaosmesh-istio validate {path}       # targets, permissions, header propagation")
    print(f"  chaosmesh-istio run --dry-run {path}  # the plan and the VirtualService diff")
    print(f"  chaosmesh-istio run {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo on a local mesh in a temporary directory (or --dir)."""
    if args.dir is not None:
        return run_demo(Path(args.dir))
    with tempfile.TemporaryDirectory(prefix="chaosmesh-demo-") as tmp:
        return run_demo(Path(tmp) / "mesh")


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
        return 0
    if not removed:
        print("nothing to clean up")
    for item in removed:
        routes = item["routes"]
        expires = item["expires"]
        when = f"expired {expires}" if args.expired and expires else f"expires {expires}"
        print(
            f"removed {len(routes)} route{'' if len(routes) == 1 else 's'} of run "
            f"{item['run_id']} from {item['virtual_service']} "
            f"({when if expires else 'no expiry recorded'})"
        )
    return 0


Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _subcommand(
    subparsers: Subparsers, name: str, func: Command, summary: str, examples: str
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=func)
    return parser


def _add_run(subparsers: Subparsers) -> None:
    run = _subcommand(
        subparsers, "run", cmd_run,
        "run an experiment with progress; no fault is left behind; exit with the verdict's code",
        _RUN_EXAMPLES,
    )  # fmt: skip
    run.add_argument("experiment", help="experiment file (JSON or YAML)")
    _vars(run)
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan and every injection's VirtualService diff; write nothing",
    )
    run.add_argument("--journal-path", default="journal.json", help="where to write the journal")
    run.add_argument("--settings", help="Chaos Toolkit settings file (default: none)")


def _add_validate(subparsers: Subparsers) -> None:
    parser = _subcommand(
        subparsers, "validate", cmd_validate,
        "check an experiment against the cluster without writing anything", _VALIDATE_EXAMPLES,
    )  # fmt: skip
    parser.add_argument("experiment", help="experiment file (JSON or YAML)")
    _vars(parser)
    parser.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        help="seconds to wait for Prometheus to see the tagged requests (default: 15)",
    )


def _add_init(subparsers: Subparsers) -> None:
    parser = _subcommand(
        subparsers, "init", cmd_init,
        "write an experiment for an existing VirtualService", _INIT_EXAMPLES,
    )  # fmt: skip
    parser.add_argument("--virtual-service", required=True, metavar="NAME")
    parser.add_argument("--namespace", "-n", default="default", help="default: default")
    parser.add_argument("--out", metavar="FILE", help="default: NAME-FAULT.json (never replaced)")
    parser.add_argument("--fault", choices=scaffold.FAULTS, default="delay", help="default: delay")


def _add_cleanup(subparsers: Subparsers) -> None:
    parser = _subcommand(
        subparsers, "cleanup", cmd_cleanup,
        "remove leftover faults (expired runs, one run, or all of them)", _CLEANUP_EXAMPLES,
    )  # fmt: skip
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = _Parser(
        prog="chaosmesh-istio",
        description="Header-scoped chaos experiments for Istio service meshes.",
        epilog="Run 'chaosmesh-istio COMMAND --help' for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    # Every subcommand's parser is a _Parser too (argparse uses the parent's class).
    subparsers = cast(
        "Subparsers", parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    )
    _add_run(subparsers)
    _add_validate(subparsers)
    _add_init(subparsers)
    add_report(subparsers)
    _add_cleanup(subparsers)
    add_mesh(subparsers)
    demo = _subcommand(
        subparsers, "demo", cmd_demo,
        "start the local mesh, run three catalog experiments, show the verdicts, stop",
        _DEMO_EXAMPLES,
    )  # fmt: skip
    demo.add_argument("--dir", help="mesh directory (default: a temporary one)")
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
    except InvalidArgument as exc:
        print(f"chaosmesh-istio: error: {exc}", file=sys.stderr)
        return USAGE_EXIT_CODE
    except ChaosMeshIstioError as exc:
        print(f"chaosmesh-istio: error: {exc}", file=sys.stderr)
        return FAILURE_EXIT_CODE
    except KeyboardInterrupt:
        return 130
    finally:
        # main() may run many times in one process (tests); never stack handlers.
        logger.removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
