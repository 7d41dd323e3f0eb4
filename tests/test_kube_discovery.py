"""Istio API version discovery: v1 first, then v1beta1, then v1alpha3, over real HTTP."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from kubernetes import client

from chaosmesh_istio.errors import KubeError
from chaosmesh_istio.kube import VirtualServices


@contextmanager
def api_serving(versions: list[str]) -> Iterator[str]:
    """A minimal API server whose /apis lists networking.istio.io with these versions."""
    groups = {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": "networking.istio.io",
                "versions": [
                    {"groupVersion": f"networking.istio.io/{v}", "version": v} for v in versions
                ],
            }
        ]
        if versions
        else [],
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = json.dumps(groups).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize(
    ("served", "chosen"),
    [
        (["v1alpha3", "v1beta1", "v1"], "v1"),
        (["v1alpha3", "v1beta1"], "v1beta1"),
        (["v1alpha3"], "v1alpha3"),
    ],
)
def test_the_newest_served_version_is_chosen(served: list[str], chosen: str) -> None:
    with api_serving(served) as url:
        configuration = client.Configuration()
        configuration.host = url
        with client.ApiClient(configuration) as api:
            assert VirtualServices(api).version == chosen


def test_a_cluster_without_istio_is_one_clear_error() -> None:
    with api_serving([]) as url:
        configuration = client.Configuration()
        configuration.host = url
        with (
            client.ApiClient(configuration) as api,
            pytest.raises(KubeError, match=r"does not serve networking\.istio\.io") as caught,
        ):
            _ = VirtualServices(api).version
    assert "\n" not in str(caught.value)
