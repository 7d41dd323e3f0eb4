"""A lean HTTP/1.1 client for the proxy's upstream hop: kept-alive connections per
endpoint, one request at a time on each, responses read whole.

aiohttp's client spent about a third of the proxy's time per request (request objects,
URL handling, tracing hooks, connector bookkeeping). A proxy needs none of that: it sends
bytes it already has and reads a whole answer. Parsing is llhttp (through ``httptools``),
the parser Node.js uses, so framing (Content-Length, chunked, read-until-close) is what
a real server expects.

Errors: `ConnectFailed` when no connection could be made, `UpstreamReset` when a
connection broke before the whole answer came. A kept-alive connection the server closed
while it idled is retried once on a fresh one (before any byte of an answer), as Envoy
and every HTTP client do.
"""

from __future__ import annotations

import asyncio
import socket
from collections import defaultdict
from typing import cast

import httptools
from multidict import CIMultiDict

__all__ = ["ConnectFailed", "Http1Pool", "UpstreamReset"]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ConnectFailed(OSError):
    """No connection to the endpoint (refused, unreachable, or the connect timed out)."""


class UpstreamReset(OSError):
    """The connection broke before the whole answer came."""


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; at most one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reusable = False
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[tuple[int, CIMultiDict[str], bytes]] | None = None
        self._headers: CIMultiDict[str] = CIMultiDict()
        self._body: list[bytes] = []
        self._status = 0
        self._head = False
        self._started = False  # a byte of the current answer arrived

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reusable = True

    def data_received(self, data: bytes) -> None:
        if self._answer is None:  # bytes nobody asked for: the connection is unusable
            self._close()
            return
        self._started = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamReset(f"malformed answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self.transport = None
        answer = self._answer
        if answer is None or answer.done():
            return
        if self._status and self._body_until_close():
            self._finish(keep=False)  # an answer without a length ends with the connection
            return
        self._fail(UpstreamReset(f"connection closed: {exc or 'by the server'}"))

    # -- httptools callbacks --------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.add(_text(name), _text(value))

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        if self._head and self._status >= 200:
            # llhttp would wait for the body the answer to HEAD announces but never sends.
            self._finish(keep=False)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:  # an interim answer (100 Continue): the real one follows
            self._headers, self._status = CIMultiDict(), 0
            return
        self._finish(keep=self._parser.should_keep_alive())

    # -- exchange -------------------------------------------------------------------------

    async def exchange(
        self, head: bytes, body: bytes, is_head: bool
    ) -> tuple[int, CIMultiDict[str], bytes]:
        """Send one request; the answer's (status, headers, body)."""
        assert self.transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self._headers, self._body, self._status = CIMultiDict(), [], 0
        self._head, self._started = is_head, False
        self.reusable = False  # until the whole answer is in
        self.transport.write(head + body)
        try:
            return await self._answer
        except BaseException:
            self._close()  # cancelled or broken mid-exchange: never reused
            raise
        finally:
            self._answer = None

    @property
    def started(self) -> bool:
        """Whether any byte of the last answer arrived."""
        return self._started

    def _body_until_close(self) -> bool:
        framed = "Content-Length" in self._headers
        return not framed and "chunked" not in self._headers.get("Transfer-Encoding", "").lower()

    def _finish(self, keep: bool) -> None:
        answer = self._answer
        if answer is None or answer.done():
            return
        self.reusable = keep and self.transport is not None
        answer.set_result((self._status, self._headers, b"".join(self._body)))
        if not self.reusable:
            self._close()

    def _fail(self, exc: Exception) -> None:
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_exception(exc)
        self._close()

    def _close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        """Close the connection."""
        self._close()


class Http1Pool:
    """Kept-alive connections per (host, port), handed out one exchange at a time."""

    def __init__(self, connect_timeout: float, idle_per_endpoint: int = 256) -> None:
        self._connect_timeout = connect_timeout
        self._idle_max = idle_per_endpoint
        self._idle: defaultdict[tuple[str, int], list[_Connection]] = defaultdict(list)
        self._closed = False

    async def request(
        self,
        host: str,
        port: int,
        method: str,
        target: str,
        headers: CIMultiDict[str],
        body: bytes,
    ) -> tuple[int, CIMultiDict[str], bytes]:
        """Send `method target` with `headers` and `body`; the whole answer.

        `headers` must carry Host and no hop-by-hop header; Content-Length is set here.
        """
        head = _head(method, target, headers, body)
        key = (host, port)
        connection = self._take(key)
        if connection is not None:
            try:
                answer = await connection.exchange(head, body, method == "HEAD")
            except UpstreamReset:
                if connection.started:
                    raise
                # The server closed the idle connection as we reused it: nothing of this
                # request was answered, so send it once more on a fresh connection.
            else:
                self._give_back(key, connection)
                return answer
        connection = await self._connect(host, port)
        answer = await connection.exchange(head, body, method == "HEAD")
        self._give_back(key, connection)
        return answer

    def _take(self, key: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if connection.reusable and connection.transport is not None:
                return connection
        return None

    def _give_back(self, key: tuple[str, int], connection: _Connection) -> None:
        idle = self._idle[key]
        if self._closed or not connection.reusable or len(idle) >= self._idle_max:
            connection.close()
        else:
            idle.append(connection)

    async def _connect(self, host: str, port: int) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(_Connection, host, port)
        except TimeoutError as exc:
            raise ConnectFailed(f"connect to {host}:{port} timed out") from exc
        except OSError as exc:
            raise ConnectFailed(f"connect to {host}:{port} failed: {exc}") from exc
        return connection

    def close(self) -> None:
        """Close every idle connection; connections in use close when they finish."""
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()


def _head(method: str, target: str, headers: CIMultiDict[str], body: bytes) -> bytes:
    lines = [f"{method} {target} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method in _BODY_METHODS:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("\r\n")
    # aiohttp decoded the caller's header bytes as UTF-8 with surrogateescape: this gives
    # back the very bytes the caller sent.
    return "\r\n".join(lines).encode("utf-8", "surrogateescape")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")
