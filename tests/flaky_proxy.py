"""A reverse proxy in front of the local control plane that fails on request.

Tests use it to produce transient API failures over real HTTP (5xx answers, dropped
connections) without touching the client library's internals.
"""

from __future__ import annotations

import http.client
import http.server
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = ["FlakyProxy", "flaky_proxy", "kubeconfig_for"]


@dataclass
class FlakyProxy:
    upstream: str
    ca: str | None = None
    url: str = ""
    failures: list[int] = field(default_factory=list)
    """Statuses to answer with, one per request, before forwarding again (0 = drop)."""
    only_methods: frozenset[str] = frozenset()
    seen: list[tuple[str, str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, *statuses: int, methods: tuple[str, ...] = ()) -> None:
        with self.lock:
            self.failures.extend(statuses)
            self.only_methods = frozenset(methods)


def _handler(proxy: FlakyProxy) -> type[http.server.BaseHTTPRequestHandler]:
    target = urllib.parse.urlsplit(proxy.upstream)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            with proxy.lock:
                fail = None
                if proxy.failures and (
                    not proxy.only_methods or self.command in proxy.only_methods
                ):
                    fail = proxy.failures.pop(0)
            if fail == 0:
                proxy.seen.append((self.command, self.path, 0))
                self.close_connection = True
                self.connection.close()
                return
            if fail is not None:
                payload = (
                    b'{"kind":"Status","apiVersion":"v1","status":"Failure",'
                    b'"message":"injected by the test proxy","code":%d}' % fail
                )
                # Recorded before answering: the client may look as soon as it has the answer.
                proxy.seen.append((self.command, self.path, fail))
                self.send_response(fail)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            conn: http.client.HTTPConnection
            if target.scheme == "https":
                context = ssl.create_default_context(cafile=proxy.ca)
                conn = http.client.HTTPSConnection(
                    target.hostname, target.port, timeout=30, context=context
                )
            else:
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            conn.request(self.command, self.path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            conn.close()
            proxy.seen.append((self.command, self.path, answer.status))
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any  # noqa: N815

    return Handler


@contextmanager
def flaky_proxy(upstream: str, ca: str | None = None) -> Iterator[FlakyProxy]:
    """Run a plain-HTTP proxy on a free 127.0.0.1 port for the duration of the block."""
    proxy = FlakyProxy(upstream, ca)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def kubeconfig_for(original: Path, server: str, into: Path) -> Path:
    """A copy of a kubeconfig whose clusters point at another server URL."""
    config = yaml.safe_load(original.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = server
    into.write_text(yaml.safe_dump(config))
    return into
