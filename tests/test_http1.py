"""The proxy's upstream HTTP/1.1 client against raw servers that answer byte by byte what
each case needs: framing, keep-alive, interim answers, resets, stale connections."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from multidict import CIMultiDict

from chaosmesh_istio.localmesh.dataplane.http1 import ConnectFailed, Http1Pool, UpstreamReset
from tests.dataplane_support import free_port

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Kind: a\r\nX-Kind: b\r\n\r\nok"


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request's head and body (by Content-Length), or (b"", b"") at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return b"", b""
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


def _run(serve: Serve, client: Callable[[Http1Pool, int], Awaitable[None]]) -> None:
    """Start `serve` on 127.0.0.1, run `client(pool, port)`, stop both."""

    handlers: list[asyncio.Task[None]] = []

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await serve(reader, writer)
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(tracked, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = Http1Pool(connect_timeout=2.0)
        try:
            async with asyncio.timeout(10):
                await client(pool, port)
        finally:
            pool.close()  # the handlers see EOF and end
            server.close()
            await asyncio.wait_for(asyncio.gather(*handlers), 5)
            await server.wait_closed()

    asyncio.run(main())


def _get(pool: Http1Pool, port: int, method: str = "GET", body: bytes = b"", **headers: str):  # type: ignore[no-untyped-def]
    return pool.request(
        "127.0.0.1", port, method, "/p?q=1", CIMultiDict({"Host": "svc", **headers}), body
    )


def test_keeps_connections_alive_and_sends_exact_bytes() -> None:
    connections: list[list[tuple[bytes, bytes]]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen: list[tuple[bytes, bytes]] = []
        connections.append(seen)
        while (request := await _read_request(reader))[0]:
            seen.append(request)
            writer.write(OK)
            await writer.drain()
        writer.close()

    async def client(pool: Http1Pool, port: int) -> None:
        for _ in range(3):
            status, headers, body = await _get(pool, port, x_note="é")
            assert (status, body, headers.getall("X-Kind")) == (200, b"ok", ["a", "b"])
        assert await _get(pool, port, "POST", b"payload") == (200, headers, b"ok")

    _run(serve, client)
    assert len(connections) == 1  # one connection carried all four requests
    first_head, _ = connections[0][0]
    assert first_head == "GET /p?q=1 HTTP/1.1\r\nHost: svc\r\nx_note: é\r\n\r\n".encode()
    post_head, post_body = connections[0][3]
    assert b"Content-Length: 7\r\n" in post_head and post_body == b"payload"


def test_chunked_answer() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b"3\r\nabc\r\n", b"2\r\nde\r\n", b"0\r\n\r\n"):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.01)
        await _read_request(reader)
        writer.close()

    async def client(pool: Http1Pool, port: int) -> None:
        status, _, body = await _get(pool, port)
        assert (status, body) == (200, b"abcde")

    _run(serve, client)


def test_answer_without_length_ends_with_the_connection_and_is_not_reused() -> None:
    count = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        count += 1
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nuntil")
        await writer.drain()
        writer.write(b" close")
        writer.close()

    async def client(pool: Http1Pool, port: int) -> None:
        for _ in range(2):
            assert (await _get(pool, port))[2] == b"until close"

    _run(serve, client)
    assert count == 2


def test_head_answer_is_complete_at_the_headers() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await _read_request(reader))[0]:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            await writer.drain()
        writer.close()

    async def client(pool: Http1Pool, port: int) -> None:
        status, headers, body = await _get(pool, port, "HEAD")
        assert (status, headers["Content-Length"], body) == (200, "1000", b"")
        assert (await _get(pool, port, "HEAD"))[0] == 200

    _run(serve, client)


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_statuses_keep_the_connection(status: int) -> None:
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while (await _read_request(reader))[0]:
            writer.write(f"HTTP/1.1 {status} X\r\n\r\n".encode())
            await writer.drain()
        writer.close()

    async def client(pool: Http1Pool, port: int) -> None:
        for _ in range(2):
            assert await _get(pool, port) == (status, CIMultiDict(), b"")

    _run(serve, client)
    assert connections == 1


def test_interim_answer_is_skipped() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + OK)
        await writer.drain()
        await _read_request(reader)
        writer.close()

    async def client(pool: Http1Pool, port: int) -> None:
        status, headers, body = await _get(pool, port)
        assert (status, body, "X-Kind" in headers) == (200, b"ok", True)

    _run(serve, client)


def test_connection_close_answer_is_not_reused() -> None:
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.3)  # the client must not wait for this close
        writer.close()

    async def client(pool: Http1Pool, port: int) -> None:
        for _ in range(2):
            assert (await _get(pool, port))[2] == b"ok"

    _run(serve, client)
    assert connections == 2


def test_refused_connection_is_connect_failed() -> None:
    async def main() -> None:
        pool = Http1Pool(connect_timeout=2.0)
        with pytest.raises(ConnectFailed, match=r"connect to 127\.0\.0\.1"):
            await _get(pool, free_port())

    asyncio.run(main())


def test_reset_mid_answer_is_upstream_reset_and_not_retried() -> None:
    requests = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        await _read_request(reader)
        requests += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npart")
        await writer.drain()
        writer.transport.abort()

    async def client(pool: Http1Pool, port: int) -> None:
        with pytest.raises(UpstreamReset):
            await _get(pool, port)

    _run(serve, client)
    assert requests == 1


def test_closed_before_any_answer_on_a_fresh_connection_is_a_reset() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.close()

    async def client(pool: Http1Pool, port: int) -> None:
        with pytest.raises(UpstreamReset, match="connection closed"):
            await _get(pool, port)

    _run(serve, client)


def test_stale_kept_alive_connection_is_retried_once_on_a_fresh_one() -> None:
    # The server answers, keeps the connection, then drops it the moment the next request
    # arrives, before answering: what an idle timeout racing a reuse looks like.
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        mine, answered = connections, 0
        while (await _read_request(reader))[0]:
            if mine == 1 and answered == 1:
                break
            writer.write(OK)
            await writer.drain()
            answered += 1
        writer.close()

    async def client(pool: Http1Pool, port: int) -> None:
        assert (await _get(pool, port))[2] == b"ok"
        assert (await _get(pool, port))[2] == b"ok"

    _run(serve, client)
    assert connections == 2


def test_malformed_answer_is_a_reset() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        await _read_request(reader)
        writer.close()

    async def client(pool: Http1Pool, port: int) -> None:
        with pytest.raises(UpstreamReset, match="malformed"):
            await _get(pool, port)

    _run(serve, client)


def test_cancelled_exchange_closes_its_connection() -> None:
    closed = asyncio.Event()
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:
            await _read_request(reader)  # never answered
            await reader.read()  # returns at EOF: the client closed it
            closed.set()
        else:
            while (await _read_request(reader))[0]:
                writer.write(OK)
                await writer.drain()
        writer.close()

    async def client(pool: Http1Pool, port: int) -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await _get(pool, port)
        await asyncio.wait_for(closed.wait(), 2)
        assert (await _get(pool, port))[2] == b"ok"  # a new connection, not the abandoned one

    _run(serve, client)
    assert connections == 2
