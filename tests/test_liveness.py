"""A fault is confirmed live on the data plane before the clock starts, and gone after removal."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from chaosmesh_istio import actions, liveness
from chaosmesh_istio.errors import InvalidArgument, MeshError
from chaosmesh_istio.kube import open_virtual_services


@pytest.fixture
def mesh(full_mesh: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("KUBECONFIG", str(full_mesh.kubeconfig))
    monkeypatch.delenv("KUBERNETES_CONTEXT", raising=False)
    monkeypatch.delenv("CHAOSMESH_PROXY_ADMIN_URLS", raising=False)
    yield full_mesh
    actions.remove_faults(namespace="default", all_runs=True)


def dump(admin_url: str) -> str:
    return requests.get(f"{admin_url}/config_dump", timeout=5).text


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"chaosmesh_proxy_admin_urls": "ftp://x"}, "not an http"),
        ({"chaosmesh_proxy_admin_urls": 15000}, "must be a list of URLs"),
        ({"chaosmesh_proxy_admin_urls": ["http://h:1"], "chaosmesh_live_timeout": 0}, "positive"),
        ({"chaosmesh_live_timeout": "soon"}, "positive number of seconds"),
    ],
)  # fmt: skip
def test_bad_settings_are_refused_before_anything_is_written(
    mesh: Any, config: dict[str, Any], needle: str
) -> None:
    before = open_virtual_services().get("reviews", "default")
    with pytest.raises(InvalidArgument, match=needle):
        actions.inject_delay(
            "reviews", delay="1s", configuration={"chaosmesh_run_id": "live-bad", **config}
        )
    after = open_virtual_services().get("reviews", "default")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_settings_accept_a_list_or_a_comma_separated_string() -> None:
    check = liveness.live_check(
        {
            "chaosmesh_proxy_admin_urls": " http://a:1/ , https://b:2",
            "chaosmesh_live_timeout": "2.5",
        }
    )
    assert check.urls == ["http://a:1", "https://b:2"]
    assert check.timeout == 2.5
    assert liveness.live_check({"chaosmesh_proxy_admin_urls": ["http://c:3"]}).urls == [
        "http://c:3"
    ]


def test_injection_waits_until_the_proxy_applies_the_fault_and_removal_until_it_drops_it(
    mesh: Any,
) -> None:
    config = {"chaosmesh_run_id": "live-ok", "chaosmesh_proxy_admin_urls": [mesh.admin_url]}
    result = actions.inject_abort("frontend-ingress", status=418, configuration=config)
    live = result["live"]
    assert live["checked"] is True and live["live"] is True and live["proxies"] == 1
    assert live["at"] >= result["written_at"]
    # Live means the proxy applies every chaos route now, without any further wait.
    text = dump(mesh.admin_url)
    assert all(f'"{name}"' in text for name in result["routes"])
    tagged = requests.get(
        f"{mesh.ingress_url}/product/1", headers={"x-chaos-run": "live-ok"}, timeout=10
    )
    assert tagged.status_code == 418

    removed = actions.remove_faults("frontend-ingress", configuration=config)
    assert removed["gone"]["checked"] is True and removed["gone"]["gone"] is True
    assert not any(f'"{name}"' in dump(mesh.admin_url) for name in result["routes"])


def test_without_admin_urls_nothing_is_checked_and_the_result_says_so(mesh: Any) -> None:
    result = actions.inject_delay(
        "reviews", delay="1s", configuration={"chaosmesh_run_id": "live-no"}
    )
    assert result["live"]["checked"] is False and result["live"]["method"] == "none"
    actions.remove_faults("reviews", configuration={"chaosmesh_run_id": "live-no"})


def test_the_environment_variable_names_the_proxies(
    mesh: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAOSMESH_PROXY_ADMIN_URLS", mesh.admin_url)
    result = actions.inject_delay(
        "reviews", delay="1s", configuration={"chaosmesh_run_id": "live-env"}
    )
    assert result["live"]["checked"] is True
    actions.remove_faults("reviews", configuration={"chaosmesh_run_id": "live-env"})


def test_a_fault_never_seen_live_fails_the_action_and_is_not_left_behind(mesh: Any) -> None:
    config = {
        "chaosmesh_run_id": "live-never",
        "chaosmesh_proxy_admin_urls": [f"http://127.0.0.1:{unused_port()}"],
        "chaosmesh_live_timeout": 0.5,
    }
    with pytest.raises(MeshError, match="not yet applying routes"):
        actions.inject_abort("reviews", status=503, configuration=config)
    vs = open_virtual_services().get("reviews", "default")
    names = [r.get("name", "") for r in vs["spec"]["http"]]
    assert not [n for n in names if n.startswith("chaos-live-never")]
