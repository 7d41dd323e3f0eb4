"""Test switches of the local control plane: make writes fail or lag, or refuse connections.

They are off by default and only change behaviour once set through the authenticated
endpoint ``/chaosmesh/switches``::

    POST   {"fail_writes": {"count": 3, "status": 409},
            "delay_writes": {"count": 2, "seconds": 0.5},
            "refuse_connections": {"seconds": 1.5}}      set the switches given, keep the others
    GET                                                  the switches and what they did so far
    DELETE                                               turn every switch off, zero the counters

A failing write answers a Kubernetes ``Status`` with that code and writes nothing; a delayed
write sleeps, then commits against the object as stored after the sleep. Refusing
connections closes the listening socket (clients get "connection refused") and every open
connection, and listens again on the same port after the given seconds. Reads are never
affected. The switches live in memory only: a restarted control plane has them all off.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from chaosmesh_istio.localmesh import status

__all__ = ["FAIL_STATUSES", "PATH", "Refuser", "Switches"]

logger = logging.getLogger("chaostoolkit").getChild("localmesh")

PATH = "/chaosmesh/switches"
FAIL_STATUSES = {
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
_MAX_SECONDS = 300.0
_MAX_COUNT = 10_000

_TASKS = web.AppKey("switch_tasks", set[asyncio.Task[None]])

#: Closes the listener for the given seconds, then listens again (set by the server).
Refuser = Callable[[float], Awaitable[None]]


def _count(switch: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_COUNT:
        raise status.bad_request(
            f"{switch}.count must be a whole number from 0 to {_MAX_COUNT}, got {value!r}"
        )
    return value


def _seconds(switch: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= _MAX_SECONDS
    ):
        raise status.bad_request(
            f"{switch}.seconds must be a number of seconds from 0 to {_MAX_SECONDS:g}, "
            f"got {value!r}"
        )
    return float(value)


def _fields(switch: str, value: object, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise status.bad_request(f"{switch} must be a JSON object, got {value!r}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise status.bad_request(
            f"{switch} has unknown field {unknown[0]!r}; its fields are {sorted(allowed)!r}"
        )
    return value


@dataclass
class Switches:
    """The switches of one control plane, and counters of what they did."""

    fail_count: int = 0
    fail_status: int = 503
    delay_count: int = 0
    delay_seconds: float = 0.0
    refusing: bool = False
    refuser: Refuser | None = None
    counters: dict[str, int] = field(
        default_factory=lambda: {"failed": 0, "delayed": 0, "refused": 0}
    )

    def state(self) -> dict[str, Any]:
        """The switches as the endpoint shows them."""
        return {
            "fail_writes": {"count": self.fail_count, "status": self.fail_status},
            "delay_writes": {"count": self.delay_count, "seconds": self.delay_seconds},
            "refuse_connections": {"active": self.refusing},
            "counters": dict(self.counters),
        }

    def reset(self) -> None:
        """Turn every switch off and zero the counters."""
        self.fail_count, self.fail_status = 0, 503
        self.delay_count, self.delay_seconds = 0, 0.0
        self.counters = {"failed": 0, "delayed": 0, "refused": 0}

    def configure(self, body: object) -> float | None:
        """Validate a POST body and set its switches; return seconds to refuse, if asked."""
        switches = {"fail_writes", "delay_writes", "refuse_connections"}
        spec = _fields("the switches body", body, switches)
        fail = delay = None
        refuse: float | None = None
        if "fail_writes" in spec:
            fail = _fields("fail_writes", spec["fail_writes"], {"count", "status"})
            code = fail.get("status", 503)
            if code not in FAIL_STATUSES:
                raise status.bad_request(
                    f"fail_writes.status must be one of {sorted(FAIL_STATUSES)!r}, got {code!r}"
                )
            fail = {"count": _count("fail_writes", fail.get("count", 1)), "status": code}
        if "delay_writes" in spec:
            delay = _fields("delay_writes", spec["delay_writes"], {"count", "seconds"})
            delay = {
                "count": _count("delay_writes", delay.get("count", 1)),
                "seconds": _seconds("delay_writes", delay.get("seconds")),
            }
        if "refuse_connections" in spec:
            refusal = _fields("refuse_connections", spec["refuse_connections"], {"seconds"})
            refuse = _seconds("refuse_connections", refusal.get("seconds"))
            if self.refuser is None:
                raise status.ApiError(
                    501,
                    "NotImplemented",
                    "this control plane cannot refuse connections: it does not own its "
                    "listening socket",
                )
        # Nothing is set before every switch of the body has been checked.
        if fail is not None:
            self.fail_count, self.fail_status = fail["count"], fail["status"]
        if delay is not None:
            self.delay_count, self.delay_seconds = delay["count"], delay["seconds"]
        return refuse

    async def before_write(self) -> None:
        """Fail or delay this write when a switch says so (one count per write)."""
        if self.fail_count > 0:
            self.fail_count -= 1
            self.counters["failed"] += 1
            code = self.fail_status
            raise status.ApiError(
                code,
                FAIL_STATUSES[code],
                f"write refused by the test switch fail_writes (status {code}, "
                f"{self.fail_count} more to fail)",
            )
        if self.delay_count > 0:
            self.delay_count -= 1
            self.counters["delayed"] += 1
            await asyncio.sleep(self.delay_seconds)

    async def _refuse(self, seconds: float) -> None:
        assert self.refuser is not None
        self.counters["refused"] += 1
        try:
            await self.refuser(seconds)
        except Exception:
            logger.exception("the refuse_connections switch failed")
        finally:
            self.refusing = False

    # -- the endpoint ----------------------------------------------------------------------

    async def handle_get(self, request: web.Request) -> web.Response:
        """GET the switches."""
        return web.json_response(self.state())

    async def handle_post(self, request: web.Request) -> web.Response:
        """POST switches to set; answers before connections start being refused."""
        raw = await request.read()
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            raise status.bad_request(f"the switches body is not JSON: {exc}") from exc
        refuse = self.configure(body)
        logger.warning("test switches set: %s", body)
        if refuse:
            self.refusing = True
        answer = web.json_response(self.state())
        if refuse:
            # The answer goes out before the connections, this one included, are dropped.
            await answer.prepare(request)
            await answer.write_eof()
            task = asyncio.get_running_loop().create_task(self._refuse(refuse))
            request.app[_TASKS].add(task)
            task.add_done_callback(request.app[_TASKS].discard)
        return answer

    async def handle_delete(self, request: web.Request) -> web.Response:
        """DELETE: every switch off."""
        self.reset()
        return web.json_response(self.state())

    def install(self, app: web.Application) -> None:
        """Add the endpoint to ``app`` (behind its authentication)."""
        app[_TASKS] = set()
        app.on_shutdown.append(_cancel_refusals)
        app.router.add_get(PATH, self.handle_get)
        app.router.add_post(PATH, self.handle_post)
        app.router.add_delete(PATH, self.handle_delete)


async def _cancel_refusals(app: web.Application) -> None:
    """A server stopping while it refuses connections must not listen again."""
    tasks = app[_TASKS]
    for task in list(tasks):
        task.cancel()
