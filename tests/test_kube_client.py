"""The official ``kubernetes`` client against the local control plane, unchanged."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, dynamic, watch
from kubernetes.client.exceptions import ApiException

from tests.conftest import LocalMesh, vs_body

GROUP, VERSION, PLURAL = "networking.istio.io", "v1", "virtualservices"
_names = itertools.count()


@pytest.fixture
def api_client(local_mesh: LocalMesh) -> Iterator[client.ApiClient]:
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(local_mesh.kubeconfig)
    )
    yield api
    api.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def custom(api_client: client.ApiClient) -> Any:
    # The generated client types its answers as ``object``; tests index them freely.
    return client.CustomObjectsApi(api_client)


def new_name() -> str:
    return f"kc-{next(_names)}"


def create(custom: Any, name: str, **meta: Any) -> dict[str, Any]:
    body = vs_body(name, **meta)
    return dict(custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body))


def test_kubeconfig_uses_the_local_context(local_mesh: LocalMesh) -> None:
    contexts, active = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
        config_file=str(local_mesh.kubeconfig)
    )
    assert active["name"] == "chaosmesh-local"
    assert active["context"]["namespace"] == "default"
    assert [c["name"] for c in contexts] == ["chaosmesh-local"]
    assert oct(Path(local_mesh.kubeconfig).stat().st_mode & 0o777) == "0o600"


def test_custom_objects_crud(custom: Any) -> None:
    name = new_name()
    created = create(custom, name)
    assert created["metadata"]["generation"] == 1
    got = custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, name)
    assert got["metadata"]["uid"] == created["metadata"]["uid"]
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert name in [o["metadata"]["name"] for o in listed["items"]]
    everywhere = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    assert name in [o["metadata"]["name"] for o in everywhere["items"]]

    merged = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, name, {"metadata": {"labels": {"team": "a"}}}
    )
    assert merged["metadata"]["labels"] == {"team": "a"}

    ops = [
        {
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": merged["metadata"]["resourceVersion"],
        },
        {"op": "replace", "path": "/spec/http/0/route/0/destination/subset", "value": "v2"},
    ]
    patched = custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        name,
        ops,
        _content_type="application/json-patch+json",
    )
    assert patched["spec"]["http"][0]["route"][0]["destination"]["subset"] == "v2"
    with pytest.raises(ApiException) as failed:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            name,
            ops,
            _content_type="application/json-patch+json",
        )
    assert failed.value.status == 422

    patched["spec"]["hosts"] = [name, "extra"]
    replaced = custom.replace_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, name, patched
    )
    assert replaced["spec"]["hosts"] == [name, "extra"]
    with pytest.raises(ApiException) as stale:
        custom.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, name, patched)
    assert stale.value.status == 409

    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, name)
    with pytest.raises(ApiException) as missing:
        custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, name)
    assert missing.value.status == 404
    status = json.loads(missing.value.body or "{}")
    assert status["message"] == f'virtualservices.{GROUP} "{name}" not found'
    assert status["reason"] == "NotFound"


def test_create_conflict_and_dry_run(custom: Any) -> None:
    name = new_name()
    body = vs_body(name)
    custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body, dry_run="All")
    create(custom, name)
    with pytest.raises(ApiException) as exists:
        create(custom, name)
    assert exists.value.status == 409


def test_other_versions_share_storage(custom: Any) -> None:
    name = new_name()
    create(custom, name)
    for version in ("v1beta1", "v1alpha3"):
        got = custom.get_namespaced_custom_object(GROUP, version, "default", PLURAL, name)
        assert got["apiVersion"] == f"{GROUP}/{version}"


def test_watch_stream(custom: Any) -> None:
    name = new_name()
    rv = custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)["metadata"][
        "resourceVersion"
    ]
    create(custom, name)
    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, name)
    seen = []
    stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
        custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        "default",
        PLURAL,
        resource_version=rv,
        timeout_seconds=10,
    )
    for event in stream:
        seen.append((event["type"], event["object"]["metadata"]["name"]))
        if len(seen) == 2:
            break
    assert seen == [("ADDED", name), ("DELETED", name)]


def test_dynamic_client(api_client: client.ApiClient, tmp_path: Path) -> None:
    dyn = dynamic.DynamicClient(  # type: ignore[no-untyped-call]
        api_client, cache_file=str(tmp_path / "discovery.json")
    )
    vs = dyn.resources.get(api_version=f"{GROUP}/v1", kind="VirtualService")
    assert vs.namespaced and vs.name == PLURAL
    name = new_name()
    vs.create(body=vs_body(name), namespace="default")
    got = vs.get(name=name, namespace="default")
    assert got.metadata.name == name and got.spec.hosts == [name]
    patched = vs.patch(
        name=name,
        namespace="default",
        body={"metadata": {"labels": {"dyn": "yes"}}},
        content_type="application/merge-patch+json",
    )
    assert patched.metadata.labels.dyn == "yes"
    names = [o.metadata.name for o in vs.get(namespace="default", label_selector="dyn=yes").items]
    assert names == [name]
    beta = dyn.resources.get(api_version=f"{GROUP}/v1beta1", kind="VirtualService")
    assert beta.get(name=name, namespace="default").apiVersion == f"{GROUP}/v1beta1"
    dr = dyn.resources.get(api_version=f"{GROUP}/v1", kind="DestinationRule")
    assert dr.get(namespace="default").items == []
    vs.delete(name=name, namespace="default")
    with pytest.raises(dynamic.exceptions.NotFoundError):
        vs.get(name=name, namespace="default")
