"""Data plane overhead: latency and throughput through the proxy vs direct, and vs nginx.

- added latency: 2,000 pairs of sequential requests on kept-alive connections, one direct to
  ratings and one through the reviews sidecar listener, interleaved so that both see the
  same machine; added = proxied quantile - direct quantile. Target: p50 <= 1 ms.
- throughput: `wrk` (2 threads, 32 connections, 5 s) direct, through the proxy, and through
  nginx (Debian; one worker, upstream keep-alive) as a reverse proxy to the same ratings.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import requests

from benchmarks.common import Result, percentile, wrk
from benchmarks.mesh import BenchMesh

__all__ = ["nginx_proxy", "run"]

PAIRS = 2000


def run(mesh: BenchMesh) -> list[Result]:
    direct: list[float] = []
    proxied: list[float] = []
    with requests.Session() as via_proxy, requests.Session() as straight:
        for n in range(PAIRS + 100):
            a = time.perf_counter()
            straight.get(mesh.direct_url, timeout=5).raise_for_status()
            b = time.perf_counter()
            via_proxy.get(
                mesh.proxied_url, headers={"Host": "ratings"}, timeout=5
            ).raise_for_status()
            c = time.perf_counter()
            if n >= 100:  # warm-up: connections, caches
                direct.append(b - a)
                proxied.append(c - b)
    added50 = (percentile(proxied, 0.5) - percentile(direct, 0.5)) * 1000
    added99 = (percentile(proxied, 0.99) - percentile(direct, 0.99)) * 1000

    rps_direct = wrk(mesh.direct_url)
    rps_proxy = wrk(mesh.proxied_url, host="ratings")
    results = [
        Result(
            "data plane: added latency",
            f"p50 {added50:.2f} ms, p99 {added99:.2f} ms",
            "p50 <= 1 ms",
            added50 <= 1.0,
            f"{PAIRS} interleaved pairs; direct p50 {percentile(direct, 0.5) * 1000:.2f} ms",
        ),
        Result(
            "data plane: throughput vs direct",
            f"{rps_proxy:,.0f} vs {rps_direct:,.0f} req/s ({rps_proxy / rps_direct:.2f}x)",
            "reported",
            True,
            "wrk -t2 -c32 -d5s; the upstream is one Python process",
        ),
    ]
    if shutil.which("nginx") is None:
        results.append(Result("data plane: throughput vs nginx", "n/a", "reported", False,
                              "nginx is not installed (make bench installs it)"))  # fmt: skip
        return results
    with nginx_proxy(mesh.direct) as nginx_url:
        rps_nginx = wrk(nginx_url + "/ratings/1")
    results.append(
        Result(
            "data plane: throughput vs nginx",
            f"{rps_proxy:,.0f} vs {rps_nginx:,.0f} req/s ({rps_proxy / rps_nginx:.2f}x)",
            "reported",
            True,
            "nginx: 1 worker, upstream keep-alive, same upstream",
        )
    )
    return results


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def nginx_proxy(upstream: str) -> Iterator[str]:
    """nginx on 127.0.0.1 proxying to `upstream` (http://host:port); yields its URL."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as tmp:
        temp_paths = "".join(
            f"{kind}_temp_path {tmp}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        user = "user root;" if os.geteuid() == 0 else ""
        conf = f"""{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  {temp_paths}
  upstream ratings {{ server {upstream.removeprefix("http://")}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://ratings;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""
        path = f"{tmp}/nginx.conf"
        with open(path, "w") as handle:
            handle.write(conf)
        proc = subprocess.Popen(
            ["nginx", "-p", tmp, "-c", path, "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 10
            while True:
                try:
                    requests.get(url + "/ratings/1", timeout=1).raise_for_status()
                    break
                except requests.RequestException:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"nginx did not start: {proc.stderr}") from None
                    time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
