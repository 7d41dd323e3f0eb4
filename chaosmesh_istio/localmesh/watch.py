"""Streaming watches: newline-delimited ``{"type", "object"}`` events over one response."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from chaosmesh_istio.localmesh import status
from chaosmesh_istio.localmesh.store import Event, Gone, Store

__all__ = ["WatchRequest", "serve_watch"]

Matcher = Callable[[Mapping[str, Any]], bool]
Render = Callable[[Mapping[str, Any]], Mapping[str, Any]]

# How often an idle watch checks whether its client went away.
_IDLE_CHECK_SECONDS = 2.0


class WatchRequest:
    """What a watch selects: one resource, optionally one namespace, and selectors."""

    def __init__(
        self, plural: str, namespace: str | None, matchers: list[Matcher], render: Render
    ) -> None:
        self.plural = plural
        self.namespace = namespace
        self.matchers = matchers
        self.render = render

    def matches(self, obj: Mapping[str, Any] | None) -> bool:
        """Whether ``obj`` is in the watched set."""
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"]["namespace"] != self.namespace:
            return False
        return all(m(obj) for m in self.matchers)

    def translate(self, event: Event) -> str | None:
        """The event type this watcher sees, if any (selector changes become ADDED/DELETED)."""
        if event.plural != self.plural:
            return None
        now = self.matches(event.object)
        if event.type != "MODIFIED":
            return event.type if now else None
        before = self.matches(event.previous)
        if now:
            return "MODIFIED" if before else "ADDED"
        return "DELETED" if before else None

    def line(self, event_type: str, obj: Mapping[str, Any]) -> bytes:
        """One serialized event."""
        payload = {"type": event_type, "object": self.render(obj)}
        return json.dumps(payload, separators=(",", ":")).encode() + b"\n"


def _parse_timeout(query: Mapping[str, str]) -> float | None:
    raw = query.get("timeoutSeconds")
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError as exc:
        raise status.bad_request(f"invalid timeoutSeconds: {raw!r}") from exc


async def serve_watch(
    request: web.Request, store: Store, watch: WatchRequest
) -> web.StreamResponse:
    """Stream events from the request's ``resourceVersion`` until timeout or disconnect."""
    since_raw = request.query.get("resourceVersion", "")
    timeout = _parse_timeout(request.query)
    initial: list[bytes] = []
    expired: str | None = None
    # Subscribing and taking the initial state happen with no await in between, so no
    # event can fall between them.
    if since_raw in ("", "0"):
        sub, _ = store.subscribe(None)
        initial = [
            watch.line("ADDED", obj)
            for obj in store.objects(watch.plural, watch.namespace)
            if watch.matches(obj)
        ]
    else:
        try:
            since = int(since_raw)
        except ValueError as exc:
            raise status.bad_request(f"invalid resourceVersion: {since_raw!r}") from exc
        try:
            sub, backlog = store.subscribe(since)
        except Gone as exc:
            sub, backlog, expired = None, [], exc.message
        for event in backlog:
            seen = watch.translate(event)
            if seen:
                initial.append(watch.line(seen, event.object))

    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    if sub is None:
        gone = status.ApiError(410, "Expired", expired or "too old resource version")
        line = json.dumps({"type": "ERROR", "object": gone.status()}).encode() + b"\n"
        with contextlib.suppress(ConnectionError):
            await response.write(line)
        return response
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        if initial:
            await response.write(b"".join(initial))
        await _stream(request, response, sub.queue, watch, deadline)
    except ConnectionError:
        pass
    finally:
        sub.close()
    with contextlib.suppress(ConnectionError):
        await response.write_eof()
    return response


async def _stream(
    request: web.Request,
    response: web.StreamResponse,
    queue: asyncio.Queue[Event | None],
    watch: WatchRequest,
    deadline: float | None,
) -> None:
    while True:
        wait = _IDLE_CHECK_SECONDS
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
            if wait <= 0:
                return
        try:
            event = await asyncio.wait_for(queue.get(), wait)
        except TimeoutError:
            if request.transport is None or request.transport.is_closing():
                return
            continue
        # Send everything already queued in one write: a burst of 200 patches is one syscall.
        chunk: list[bytes] = []
        while event is not None:
            seen = watch.translate(event)
            if seen:
                chunk.append(watch.line(seen, event.object))
            if queue.empty():
                break
            event = queue.get_nowait()
        if chunk:
            await response.write(b"".join(chunk))
        if event is None:
            return
