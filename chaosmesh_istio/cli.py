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

from chaosmesh_istio import __version__
from chaosmesh_istio.demo import run_demo
from chaosmesh_istio.errors import ChaosMeshIstioError
from chaosmesh_istio.localmesh.manager import mesh_down, mesh_status, mesh_up

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
    print(f"  export KUBECONFIG={info.kubeconfig}; kubectl get virtualservices")
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
    demo = subparsers.add_parser(
        "demo", help="start the local mesh, run a header-scoped abort, explain it, stop"
    )
    demo.add_argument("--dir", help="mesh directory (default: a temporary one)")
    demo.set_defaults(func=cmd_demo)
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
