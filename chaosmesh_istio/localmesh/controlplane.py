"""Run the local control plane: ``python -m chaosmesh_istio.localmesh.controlplane``.

Once listening it writes ``DIR/controlplane.json`` (pid, url, port, started) so that the
manager and tests find it; SIGTERM and SIGINT stop it cleanly and remove that file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import ssl
import sys
from pathlib import Path

from aiohttp import web

from chaosmesh_istio.errors import MeshError
from chaosmesh_istio.localmesh.apiserver import SWITCHES_KEY, create_app
from chaosmesh_istio.localmesh.store import Store, atomic_write, now_rfc3339

__all__ = ["INFO_FILE", "main", "read_token", "serve"]

logger = logging.getLogger("chaostoolkit").getChild("localmesh")

INFO_FILE = "controlplane.json"
_DEFAULT_HOST = "127.0.0.1"


def read_token(path: Path) -> str:
    """Read the bearer token from ``path``, creating a random one (mode 0600) if missing."""
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = secrets.token_urlsafe(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, token.encode(), mode=0o600)
    if not token:
        raise MeshError(f"the token file {str(path)!r} is empty; delete it to get a new token")
    return token


async def _listen(
    runner: web.AppRunner,
    family: socket.AddressFamily,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
) -> tuple[web.SockSite, int]:
    """Listen on ``host:port`` (0: any free port); return the site and its port."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    site = web.SockSite(runner, sock, ssl_context=ssl_context)
    await site.start()
    return site, int(sock.getsockname()[1])


async def serve(
    directory: Path, host: str, port: int, token: str, ssl_context: ssl.SSLContext | None
) -> None:
    """Serve (https when ``ssl_context`` is given) until SIGTERM or SIGINT."""
    store = Store(directory)
    app = create_app(store, token)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    site, bound = await _listen(runner, family, host, port, ssl_context)

    async def refuse(seconds: float) -> None:
        """Stop listening (and drop open connections) for ``seconds``, then listen again."""
        nonlocal site
        await site.stop()
        # A dead server also drops the connections clients keep alive in their pools.
        for connection in runner.server.connections if runner.server else []:
            connection.force_close()
        logger.warning("refusing connections for %.1f s (test switch)", seconds)
        await asyncio.sleep(seconds)
        site, _ = await _listen(runner, family, host, bound, ssl_context)
        logger.warning("listening again on port %d", bound)

    app[SWITCHES_KEY].refuser = refuse
    url_host = f"[{host}]" if family == socket.AF_INET6 else host
    info = {
        "pid": os.getpid(),
        "url": f"{'https' if ssl_context else 'http'}://{url_host}:{bound}",
        "port": bound,
        "started": now_rfc3339(),
    }
    info_path = directory / INFO_FILE
    atomic_write(info_path, json.dumps(info, indent=2).encode())
    logger.info("control plane listening on %s (state in %s)", info["url"], directory / "state")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        logger.info("control plane stopping")
    finally:
        await runner.cleanup()
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
            # Only remove the file if it is still ours (a newer instance may have replaced it).
            if json.loads(info_path.read_text())["pid"] == os.getpid():
                info_path.unlink()
    logger.info("control plane stopped")


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, configure logging to stderr and serve."""
    parser = argparse.ArgumentParser(
        prog="python -m chaosmesh_istio.localmesh.controlplane",
        description="Kubernetes-API-compatible server for Istio networking objects.",
    )
    parser.add_argument("--dir", required=True, type=Path, help="state and info directory")
    parser.add_argument("--host", default=None, help=f"address to bind (default {_DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=0, help="port (0 picks a free one)")
    parser.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="bearer token file (default DIR/token, created if missing)",
    )
    parser.add_argument(
        "--tls-cert",
        type=Path,
        default=None,
        help="server certificate (PEM); with --tls-key serves https",
    )
    parser.add_argument("--tls-key", type=Path, default=None, help="server private key (PEM)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Only an explicit --host may move the server off loopback.
    host = args.host or _DEFAULT_HOST
    if args.host and args.host not in ("127.0.0.1", "::1", "localhost"):
        logger.warning("binding to %s: the API is reachable from other machines", args.host)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    directory: Path = args.dir.resolve()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        token = read_token(args.token_file or directory / "token")
        context = None
        if args.tls_cert:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(args.tls_cert, args.tls_key)
        asyncio.run(serve(directory, host, args.port, token, context))
    except MeshError as exc:
        logger.error("%s", exc)
        return 2
    except OSError as exc:
        logger.error("cannot serve on %s:%d: %s", host, args.port, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
