"""``chaosmesh-istio mesh up|down|status``: the local mesh from the command line."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from chaosmesh_istio.localmesh.manager import mesh_down, mesh_status, mesh_up

__all__ = ["add_mesh", "cmd_mesh_down", "cmd_mesh_status", "cmd_mesh_up", "default_mesh_dir"]

Command = Callable[[argparse.Namespace], int]

_EXAMPLES = """\
examples:
  chaosmesh-istio mesh up                      # everything, in ~/.chaosmesh-istio/mesh
  chaosmesh-istio mesh up --control-plane-only --dir /tmp/mesh --json
  chaosmesh-istio mesh status && chaosmesh-istio mesh down
"""


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


def add_mesh(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``mesh`` and its actions."""
    mesh = subparsers.add_parser(
        "mesh",
        help="run the local mesh (no cluster needed)",
        description="Start, stop or check the local mesh: control plane, data plane, sample "
        "app and Prometheus on 127.0.0.1. Exit code 64 on invalid input.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = mesh.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=_EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
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
    action("down", cmd_mesh_down, "stop the local mesh (its state stays on disk)")
    status = action("status", cmd_mesh_status, "check the local mesh (exit 1 if unhealthy)")
    status.add_argument("--json", action="store_true", help="print the report as JSON")
