"""``python -m chaosmesh_istio.localmesh.dataplane --config FILE``: run the data plane until
SIGTERM or SIGINT. The state file is written once every listener is up and the first
configuration is applied, and removed on exit."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from chaosmesh_istio.errors import MeshError
from chaosmesh_istio.localmesh.dataplane.admin import create_admin_app
from chaosmesh_istio.localmesh.dataplane.config import DataPlaneConfig, load_config
from chaosmesh_istio.localmesh.dataplane.http1 import Http1Pool
from chaosmesh_istio.localmesh.dataplane.proxy import Listener
from chaosmesh_istio.localmesh.dataplane.telemetry import Telemetry
from chaosmesh_istio.localmesh.dataplane.xds import ConfigWatcher
from chaosmesh_istio.localmesh.store import atomic_write

__all__ = ["main", "serve"]

logger = logging.getLogger("chaostoolkit").getChild("localmesh.dataplane")

_LISTEN_HOST = "127.0.0.1"
_CONNECT_TIMEOUT = 10.0  # Istio's default cluster connect timeout


async def _start(runner: web.BaseRunner, port: int) -> str:
    await runner.setup()
    site = web.TCPSite(runner, _LISTEN_HOST, port, backlog=1024)
    await site.start()
    host, bound = runner.addresses[0][:2]
    return f"http://{host}:{bound}"


async def serve(config: DataPlaneConfig, stop: asyncio.Event) -> None:
    """Run the listeners, the admin server and the config watch until ``stop`` is set."""
    watcher = ConfigWatcher(config)
    telemetry = Telemetry(config.group_label)
    watch = asyncio.create_task(watcher.run())
    runners: list[web.BaseRunner] = []
    listeners: list[Listener] = []
    try:
        pool = Http1Pool(_CONNECT_TIMEOUT)
        try:
            urls: dict[str, str] = {}
            for item in config.listeners:
                listener = Listener(item, watcher, telemetry, pool, config.group_header)
                runner: web.BaseRunner = web.ServerRunner(
                    web.Server(listener.handle, access_log=None, handler_cancellation=True)
                )
                runners.append(runner)
                urls[item.name] = await _start(runner, item.port)
                listener.port = int(urls[item.name].rsplit(":", 1)[1])
                listeners.append(listener)
            admin = web.AppRunner(create_admin_app(watcher, telemetry), access_log=None)
            runners.append(admin)
            admin_url = await _start(admin, config.admin_port)
            logger.info("listeners up: %s; admin at %s", urls, admin_url)
            ready = asyncio.create_task(watcher.ready.wait())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({ready, stopped, watch}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if watch.done():
                watch.result()
            if watcher.ready.is_set() and not stop.is_set():
                state = {
                    "pid": os.getpid(),
                    "admin_url": admin_url,
                    "listeners": urls,
                    "version": str(watcher.version),
                }
                atomic_write(config.state_file, json.dumps(state, indent=2).encode())
                logger.info("data plane ready at configuration version %d", watcher.version)
            await stopped
            for listener in listeners:
                listener.close()
            for runner in reversed(runners):
                await runner.cleanup()
        finally:
            pool.close()
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        config.state_file.unlink(missing_ok=True)


async def _main(config: DataPlaneConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await serve(config, stop)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, then serve until signalled; the exit code."""
    parser = argparse.ArgumentParser(prog="python -m chaosmesh_istio.localmesh.dataplane")
    parser.add_argument("--config", required=True, help="the data plane's JSON config file")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_config(args.config)
    except MeshError as exc:
        logger.error("%s", exc)
        return 2
    try:
        import uvloop  # noqa: PLC0415  (optional speed-up)
    except ImportError:
        asyncio.run(_main(config))
    else:
        uvloop.run(_main(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
