"""Config distribution: list and watch the control plane's VirtualServices and
DestinationRules, and apply each change as a new immutable :class:`Snapshot`.

Event-driven: a change is applied a few milliseconds after its watch event arrives (events of
one burst are coalesced, as Istio debounces pushes). A watch that ends is resumed from the
last resourceVersion seen; 410 Gone (history expired) triggers a fresh list.

``version`` is the highest resourceVersion applied. The two kinds arrive on separate streams,
so in a burst touching both a DestinationRule event may trail a VirtualService event by
a moment; the coalescing delay covers that in practice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Mapping
from typing import Any

import aiohttp

from chaosmesh_istio.localmesh.dataplane.config import DataPlaneConfig
from chaosmesh_istio.localmesh.dataplane.snapshot import Snapshot, build_snapshot

__all__ = ["PLURALS", "ConfigWatcher"]

logger = logging.getLogger("chaostoolkit").getChild("localmesh.dataplane")

PLURALS = ("virtualservices", "destinationrules")
_GROUP_PATH = "/apis/networking.istio.io/v1"
_COALESCE_SECONDS = 0.005
_RETRY_MIN, _RETRY_MAX = 0.1, 2.0

Object = Mapping[str, Any]


class _Expired(Exception):
    """The watch's resourceVersion is older than the server's history (410 Gone)."""


def _key(obj: Object) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _rv(obj: Object) -> int:
    return int((obj.get("metadata") or {}).get("resourceVersion") or 0)


class ConfigWatcher:
    """Keeps the latest snapshot of the control plane's networking configuration."""

    def __init__(self, config: DataPlaneConfig) -> None:
        self.config = config
        self._objects: dict[str, dict[str, Object]] = {plural: {} for plural in PLURALS}
        self._seen: dict[str, int | None] = dict.fromkeys(PLURALS)
        self._snapshot = build_snapshot(config, (), (), 0)
        self._pending: asyncio.TimerHandle | None = None
        self._changed = asyncio.Event()
        self.ready = asyncio.Event()

    @property
    def snapshot(self) -> Snapshot:
        """The snapshot the listeners apply now."""
        return self._snapshot

    @property
    def version(self) -> int:
        """The highest resourceVersion applied (0 before the first snapshot)."""
        return self._snapshot.version

    async def run(self) -> None:
        """Watch both kinds until cancelled."""
        token = self.config.api.token_file.read_text().strip()
        context = ssl.create_default_context(cafile=str(self.config.api.ca_file))
        async with aiohttp.ClientSession(
            base_url=self.config.api.url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            connector=aiohttp.TCPConnector(ssl=context),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0),
        ) as session:
            await asyncio.gather(*(self._follow(session, plural) for plural in PLURALS))

    async def wait_for(self, version: int, timeout: float) -> bool:
        """Wait until ``version`` is applied; False if ``timeout`` seconds pass first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.version < version:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return False
        return True

    async def _follow(self, session: aiohttp.ClientSession, plural: str) -> None:
        delay = _RETRY_MIN
        while True:
            try:
                if self._seen[plural] is None:
                    await self._list(session, plural)
                await self._watch(session, plural)
                delay = _RETRY_MIN
            except _Expired:
                logger.info("%s watch expired; listing again", plural)
                self._seen[plural] = None
            except (aiohttp.ClientError, OSError, ValueError, KeyError, TypeError) as exc:
                logger.warning("watching %s failed (%s); retrying in %.1f s", plural, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)

    async def _list(self, session: aiohttp.ClientSession, plural: str) -> None:
        async with session.get(f"{_GROUP_PATH}/{plural}") as response:
            if response.status != 200:
                raise aiohttp.ClientResponseError(
                    response.request_info, (), status=response.status, message="list failed"
                )
            body = await response.json()
        self._objects[plural] = {_key(item): item for item in body.get("items") or ()}
        self._seen[plural] = int(body["metadata"]["resourceVersion"])
        self._schedule()

    async def _watch(self, session: aiohttp.ClientSession, plural: str) -> None:
        params = {
            "watch": "true",
            "resourceVersion": str(self._seen[plural]),
            "allowWatchBookmarks": "true",
        }
        async with session.get(f"{_GROUP_PATH}/{plural}", params=params) as response:
            if response.status == 410:
                raise _Expired
            if response.status != 200:
                raise aiohttp.ClientResponseError(
                    response.request_info, (), status=response.status, message="watch failed"
                )
            buffer = b""
            # Lines can exceed aiohttp's readline limit (a VirtualService with many routes).
            async for chunk in response.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        self._event(plural, json.loads(line))

    def _event(self, plural: str, event: Mapping[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Expired
            raise ValueError(f"watch error: {obj.get('message', obj)!r}")
        if kind in ("ADDED", "MODIFIED"):
            self._objects[plural][_key(obj)] = obj
        elif kind == "DELETED":
            self._objects[plural].pop(_key(obj), None)
        self._seen[plural] = max(self._seen[plural] or 0, _rv(obj))
        if kind != "BOOKMARK":
            logger.debug("%s %s %s", kind, plural, _key(obj))
        self._schedule()

    def _schedule(self) -> None:
        if self._pending is None:
            loop = asyncio.get_running_loop()
            self._pending = loop.call_later(_COALESCE_SECONDS, self._apply)

    def _apply(self) -> None:
        self._pending = None
        seen = [rv for rv in self._seen.values() if rv is not None]
        if len(seen) < len(PLURALS):
            return  # not every kind is listed yet: a partial config would misroute
        self._snapshot = build_snapshot(
            self.config,
            list(self._objects["virtualservices"].values()),
            list(self._objects["destinationrules"].values()),
            max(seen),
        )
        logger.debug("applied configuration version %d", self._snapshot.version)
        self.ready.set()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
