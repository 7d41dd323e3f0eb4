"""The local control plane over raw HTTP: discovery, CRUD, patches, errors, watch, restart."""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from chaosmesh_istio.localmesh.manager import mesh_up
from tests.conftest import LocalMesh, vs_body

GROUP = "networking.istio.io"
_names = itertools.count()


def unique(prefix: str = "vs") -> str:
    return f"{prefix}-{next(_names)}"


def coll(mesh: LocalMesh, ns: str = "default", version: str = "v1") -> str:
    return f"{mesh.url}/apis/{GROUP}/{version}/namespaces/{ns}/virtualservices"


def item(mesh: LocalMesh, name: str, ns: str = "default", version: str = "v1") -> str:
    return f"{coll(mesh, ns, version)}/{name}"


def create(api: requests.Session, mesh: LocalMesh, name: str, **meta: Any) -> dict[str, Any]:
    ns = meta.pop("namespace", "default")
    answer = api.post(coll(mesh, ns), json=vs_body(name, ns, **meta))
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def assert_status(answer: requests.Response, code: int, reason: str) -> dict[str, Any]:
    assert answer.status_code == code, answer.text
    body = answer.json()
    assert body["kind"] == "Status" and body["apiVersion"] == "v1"
    assert body["status"] == "Failure" and body["code"] == code and body["reason"] == reason
    assert body["metadata"] == {}
    return dict(body)


def patch(api: requests.Session, url: str, kind: str, body: Any, **kw: Any) -> requests.Response:
    headers = {"Content-Type": f"application/{kind}+json"}
    return api.patch(url, data=json.dumps(body), headers=headers, **kw)


# -- auth and discovery -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/livez"])
def test_health_endpoints_need_no_token(local_mesh: LocalMesh, path: str) -> None:
    answer = requests.get(local_mesh.url + path, verify=str(local_mesh.ca), timeout=5)
    assert answer.status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic abc"])
@pytest.mark.parametrize(
    "path", ["/apis", "/version", "/apis/networking.istio.io/v1/virtualservices"]
)
def test_missing_or_wrong_token_is_401(
    local_mesh: LocalMesh, header: str | None, path: str
) -> None:
    headers = {"Authorization": header} if header else {}
    answer = requests.get(local_mesh.url + path, headers=headers, verify=str(local_mesh.ca))
    body = assert_status(answer, 401, "Unauthorized")
    assert body["message"] == "Unauthorized"


def test_discovery_documents(api: requests.Session, local_mesh: LocalMesh) -> None:
    url = local_mesh.url
    assert api.get(f"{url}/version").json()["gitVersion"].startswith("v1.")
    assert api.get(f"{url}/api").json()["versions"] == ["v1"]
    core = api.get(f"{url}/api/v1").json()
    assert [r["name"] for r in core["resources"]] == ["namespaces"]
    groups = api.get(f"{url}/apis").json()
    assert groups["kind"] == "APIGroupList"
    group, authorization = groups["groups"]
    assert (group["name"], authorization["name"]) == (GROUP, "authorization.k8s.io")
    assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1", "v1alpha3"]
    assert group["preferredVersion"] == {"groupVersion": f"{GROUP}/v1", "version": "v1"}
    assert api.get(f"{url}/apis/{GROUP}").json()["name"] == GROUP
    for version in ("v1", "v1beta1", "v1alpha3"):
        listing = api.get(f"{url}/apis/{GROUP}/{version}").json()
        assert listing["groupVersion"] == f"{GROUP}/{version}"
        by_name = {r["name"]: r for r in listing["resources"]}
        vs, dr = by_name["virtualservices"], by_name["destinationrules"]
        assert (vs["kind"], vs["shortNames"], vs["singularName"]) == (
            "VirtualService",
            ["vs"],
            "virtualservice",
        )
        assert (dr["kind"], dr["shortNames"]) == ("DestinationRule", ["dr"])
        assert vs["namespaced"] and "watch" in vs["verbs"] and "istio-io" in vs["categories"]
    assert_status(api.get(f"{url}/apis/{GROUP}/v2"), 404, "NotFound")


def test_openapi_is_an_empty_protobuf_document(
    api: requests.Session, local_mesh: LocalMesh
) -> None:
    proto = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
    answer = api.get(f"{local_mesh.url}/openapi/v2", headers={"Accept": proto})
    assert answer.status_code == 200 and answer.content == b""
    assert api.get(f"{local_mesh.url}/openapi/v2").json()["swagger"] == "2.0"
    assert_status(api.get(f"{local_mesh.url}/openapi/v3"), 404, "NotFound")


def test_unknown_paths_and_methods_get_status_bodies(
    api: requests.Session, local_mesh: LocalMesh
) -> None:
    body = assert_status(api.get(f"{local_mesh.url}/apis/{GROUP}/v1/gateways"), 404, "NotFound")
    assert body["message"] == "the server could not find the requested resource"
    assert_status(api.get(f"{local_mesh.url}/nothing/here"), 404, "NotFound")
    assert_status(api.post(item(local_mesh, "x"), json={}), 405, "MethodNotAllowed")


# -- CRUD ---------------------------------------------------------------------------------


def test_create_get_replace_delete(api: requests.Session, local_mesh: LocalMesh) -> None:
    name = unique()
    created = create(api, local_mesh, name)
    meta = created["metadata"]
    assert meta["generation"] == 1 and meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) > 0
    got = api.get(item(local_mesh, name)).json()
    assert got == created
    beta = api.get(item(local_mesh, name, version="v1beta1")).json()
    assert beta["apiVersion"] == f"{GROUP}/v1beta1" and beta["spec"] == created["spec"]

    got["spec"]["http"][0]["route"][0]["destination"]["subset"] = "v2"
    replaced = api.put(item(local_mesh, name), json=got).json()
    assert replaced["metadata"]["generation"] == 2
    assert replaced["metadata"]["uid"] == meta["uid"]
    assert replaced["metadata"]["creationTimestamp"] == meta["creationTimestamp"]
    assert int(replaced["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])

    labelled = dict(replaced, metadata={**replaced["metadata"], "labels": {"a": "b"}})
    relabelled = api.put(item(local_mesh, name), json=labelled).json()
    assert relabelled["metadata"]["generation"] == 2, "metadata changes keep the generation"

    deleted = api.delete(item(local_mesh, name))
    assert deleted.status_code == 200 and deleted.json()["metadata"]["uid"] == meta["uid"]
    body = assert_status(api.get(item(local_mesh, name)), 404, "NotFound")
    assert body["message"] == f'virtualservices.{GROUP} "{name}" not found'
    assert body["details"] == {"name": name, "group": GROUP, "kind": "virtualservices"}
    assert_status(api.delete(item(local_mesh, name)), 404, "NotFound")
    assert_status(api.put(item(local_mesh, name), json=got), 404, "NotFound")


def test_create_twice_is_409_already_exists(api: requests.Session, local_mesh: LocalMesh) -> None:
    name = unique()
    create(api, local_mesh, name)
    body = assert_status(api.post(coll(local_mesh), json=vs_body(name)), 409, "AlreadyExists")
    assert body["message"] == f'virtualservices.{GROUP} "{name}" already exists'


def test_generate_name(api: requests.Session, local_mesh: LocalMesh) -> None:
    body = vs_body("ignored")
    body["metadata"] = {"generateName": "chaos-"}
    created = api.post(coll(local_mesh), json=body).json()
    assert created["metadata"]["name"].startswith("chaos-")
    assert len(created["metadata"]["name"]) == len("chaos-") + 5


def test_replace_with_stale_resource_version_is_409(
    api: requests.Session, local_mesh: LocalMesh
) -> None:
    name = unique()
    stale = create(api, local_mesh, name)
    fresh = patch(api, item(local_mesh, name), "merge-patch", {"metadata": {"labels": {"x": "1"}}})
    assert fresh.status_code == 200
    body = assert_status(api.put(item(local_mesh, name), json=stale), 409, "Conflict")
    assert body["message"] == (
        f'Operation cannot be fulfilled on virtualservices.{GROUP} "{name}": the object has '
        "been modified; please apply your changes to the latest version and try again"
    )
    unconditional = dict(
        stale, metadata={k: v for k, v in stale["metadata"].items() if k != "resourceVersion"}
    )
    assert api.put(item(local_mesh, name), json=unconditional).status_code == 200


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda b: b.update(kind="DestinationRule"), "does not match the expected kind"),
        (lambda b: b.update(apiVersion="networking.istio.io/v1beta1"), "expected API version"),
        (lambda b: b.pop("kind"), "Kind"),
        (lambda b: b["metadata"].update(namespace="other"), "namespace"),
    ],
)
def test_body_not_matching_the_url_is_400(
    api: requests.Session, local_mesh: LocalMesh, mutate: Any, fragment: str
) -> None:
    body = vs_body(unique())
    mutate(body)
    answer = assert_status(api.post(coll(local_mesh), json=body), 400, "BadRequest")
    assert fragment in answer["message"]


def test_bad_bodies_are_400(api: requests.Session, local_mesh: LocalMesh) -> None:
    assert_status(api.post(coll(local_mesh), data=b"{not json"), 400, "BadRequest")
    assert_status(api.post(coll(local_mesh), json=["a"]), 400, "BadRequest")
    name = unique()
    create(api, local_mesh, name)
    body = assert_status(api.put(item(local_mesh, name), json=vs_body("other")), 400, "BadRequest")
    assert "does not match the name on the URL" in body["message"]


def test_invalid_object_is_422_with_causes(api: requests.Session, local_mesh: LocalMesh) -> None:
    body = vs_body("faulty")
    body["spec"]["http"][0]["fault"] = {"abort": {"httpStatus": 700}}
    answer = assert_status(api.post(coll(local_mesh), json=body), 422, "Invalid")
    assert answer["message"].startswith(
        f'VirtualService.{GROUP} "faulty" is invalid: spec.http[0].fault.abort.httpStatus: '
        "Invalid value: 700"
    )
    assert answer["details"]["kind"] == "VirtualService"
    (cause,) = answer["details"]["causes"]
    assert cause["field"] == "spec.http[0].fault.abort.httpStatus"
    assert cause["reason"] == "FieldValueInvalid"
    assert_status(api.get(item(local_mesh, "faulty")), 404, "NotFound")


def test_invalid_name_is_422(api: requests.Session, local_mesh: LocalMesh) -> None:
    answer = assert_status(api.post(coll(local_mesh), json=vs_body("Bad_Name")), 422, "Invalid")
    assert answer["details"]["causes"][0]["field"] == "metadata.name"


# -- patches ------------------------------------------------------------------------------


def test_merge_patch(api: requests.Session, local_mesh: LocalMesh) -> None:
    name = unique()
    create(api, local_mesh, name, labels={"keep": "1", "drop": "1"})
    answer = patch(
        api,
        item(local_mesh, name),
        "merge-patch",
        {"metadata": {"labels": {"drop": None, "new": "2"}}, "spec": {"gateways": ["mesh"]}},
    )
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert got["metadata"]["labels"] == {"keep": "1", "new": "2"}
    assert got["spec"]["gateways"] == ["mesh"] and got["spec"]["hosts"] == [name]
    assert got["metadata"]["generation"] == 2


def test_json_patch_with_passing_and_failing_test(
    api: requests.Session, local_mesh: LocalMesh
) -> None:
    name = unique()
    rv = create(api, local_mesh, name)["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/spec/http/0/timeout", "value": "2s"},
    ]
    answer = patch(api, item(local_mesh, name), "json-patch", ops)
    assert answer.status_code == 200, answer.text
    assert answer.json()["spec"]["http"][0]["timeout"] == "2s"
    failed = assert_status(patch(api, item(local_mesh, name), "json-patch", ops), 422, "Invalid")
    assert failed["details"]["causes"][0]["message"]
    missing = [{"op": "remove", "path": "/spec/nothing"}]
    assert_status(patch(api, item(local_mesh, name), "json-patch", missing), 422, "Invalid")
    assert_status(patch(api, item(local_mesh, name), "json-patch", {"op": "x"}), 400, "BadRequest")
    assert_status(patch(api, item(local_mesh, "nope"), "json-patch", ops), 404, "NotFound")


def test_patch_changing_resource_version_conflicts(
    api: requests.Session, local_mesh: LocalMesh
) -> None:
    name = unique()
    create(api, local_mesh, name)
    body = {"metadata": {"resourceVersion": "1", "labels": {"a": "b"}}}
    assert_status(patch(api, item(local_mesh, name), "merge-patch", body), 409, "Conflict")


def test_patch_that_makes_object_invalid_is_422(
    api: requests.Session, local_mesh: LocalMesh
) -> None:
    name = unique()
    create(api, local_mesh, name)
    ops = [{"op": "add", "path": "/spec/http/0/fault", "value": {"abort": {"httpStatus": 99}}}]
    assert_status(patch(api, item(local_mesh, name), "json-patch", ops), 422, "Invalid")


@pytest.mark.parametrize(
    "content_type",
    [
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ],
)
def test_unsupported_patch_types_are_415(
    api: requests.Session, local_mesh: LocalMesh, content_type: str
) -> None:
    name = unique()
    create(api, local_mesh, name)
    answer = api.patch(item(local_mesh, name), data=b"{}", headers={"Content-Type": content_type})
    assert_status(answer, 415, "UnsupportedMediaType")


# -- dry run, selectors, tables -------------------------------------------------------------


def test_dry_run_changes_nothing(api: requests.Session, local_mesh: LocalMesh) -> None:
    name = unique()
    dry = api.post(coll(local_mesh), json=vs_body(name), params={"dryRun": "All"})
    assert dry.status_code == 201 and dry.json()["metadata"]["name"] == name
    assert_status(api.get(item(local_mesh, name)), 404, "NotFound")
    created = create(api, local_mesh, name)
    body = {"metadata": {"labels": {"dry": "run"}}}
    answer = patch(api, item(local_mesh, name), "merge-patch", body, params={"dryRun": "All"})
    assert answer.json()["metadata"]["labels"] == {"dry": "run"}
    assert api.get(item(local_mesh, name)).json() == created
    assert api.delete(item(local_mesh, name), params={"dryRun": "All"}).status_code == 200
    assert api.get(item(local_mesh, name)).json() == created
    bad = api.delete(item(local_mesh, name), params={"dryRun": "Some"})
    assert_status(bad, 400, "BadRequest")


def test_label_and_field_selectors(api: requests.Session, local_mesh: LocalMesh) -> None:
    ns = unique("sel")
    create(api, local_mesh, "a", namespace=ns, labels={"app": "web", "tier": "front"})
    create(api, local_mesh, "b", namespace=ns, labels={"app": "db"})
    create(api, local_mesh, "c", namespace=ns)

    def names(**params: str) -> list[str]:
        answer = api.get(coll(local_mesh, ns), params=params)
        assert answer.status_code == 200, answer.text
        return [o["metadata"]["name"] for o in answer.json()["items"]]

    assert names() == ["a", "b", "c"]
    assert names(labelSelector="app=web") == ["a"]
    assert names(labelSelector="app==db") == ["b"]
    assert names(labelSelector="app!=web") == ["b", "c"]
    assert names(labelSelector="app in (web, db)") == ["a", "b"]
    assert names(labelSelector="app notin (web)") == ["b", "c"]
    assert names(labelSelector="app") == ["a", "b"]
    assert names(labelSelector="!app") == ["c"]
    assert names(labelSelector="app,tier=front") == ["a"]
    assert names(fieldSelector="metadata.name=b") == ["b"]
    assert names(fieldSelector=f"metadata.namespace!={ns}") == []
    assert_status(
        api.get(coll(local_mesh, ns), params={"labelSelector": "a in b"}), 400, "BadRequest"
    )
    everywhere = api.get(
        f"{local_mesh.url}/apis/{GROUP}/v1/virtualservices", params={"labelSelector": "app=web"}
    ).json()
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in everywhere["items"]] == [
        (ns, "a")
    ]
    namespaces = api.get(f"{local_mesh.url}/api/v1/namespaces").json()["items"]
    assert {"default", ns} <= {n["metadata"]["name"] for n in namespaces}
    assert api.get(f"{local_mesh.url}/api/v1/namespaces/{ns}").json()["status"]["phase"] == "Active"
    assert_status(api.get(f"{local_mesh.url}/api/v1/namespaces/none-here"), 404, "NotFound")


def test_table_for_kubectl(api: requests.Session, local_mesh: LocalMesh) -> None:
    name = unique()
    create(api, local_mesh, name)
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    table = api.get(coll(local_mesh), headers={"Accept": accept}).json()
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Gateways", "Hosts", "Age"]
    row = next(r for r in table["rows"] if r["cells"][0] == name)
    assert row["cells"][2] == f'["{name}"]'
    assert row["object"]["metadata"]["name"] == name
    dr = api.get(
        f"{local_mesh.url}/apis/{GROUP}/v1/namespaces/default/destinationrules",
        headers={"Accept": accept},
    ).json()
    assert [c["name"] for c in dr["columnDefinitions"]] == ["Name", "Host", "Age"]


# -- watch --------------------------------------------------------------------------------


def read_events(answer: requests.Response, count: int) -> list[dict[str, Any]]:
    events = []
    for line in answer.iter_lines():
        if line:
            events.append(json.loads(line))
        if len(events) == count:
            break
    return events


@pytest.fixture
def watch_ns() -> str:
    return unique("watch")


def test_watch_streams_changes_in_order(
    api: requests.Session, local_mesh: LocalMesh, watch_ns: str
) -> None:
    create(api, local_mesh, "before", namespace=watch_ns)
    rv = api.get(coll(local_mesh, watch_ns)).json()["metadata"]["resourceVersion"]
    params = {"watch": "true", "resourceVersion": rv, "timeoutSeconds": "20"}
    with api.get(coll(local_mesh, watch_ns, "v1beta1"), params=params, stream=True) as answer:
        assert answer.status_code == 200
        create(api, local_mesh, "w", namespace=watch_ns)
        patch(api, item(local_mesh, "w", watch_ns), "merge-patch", {"spec": {"gateways": ["g"]}})
        api.delete(item(local_mesh, "w", watch_ns))
        events = read_events(answer, 3)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert all(e["object"]["apiVersion"] == f"{GROUP}/v1beta1" for e in events)
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and versions[0] > int(rv)
    assert events[1]["object"]["spec"]["gateways"] == ["g"]


def test_watch_without_resource_version_starts_with_current_state(
    api: requests.Session, local_mesh: LocalMesh, watch_ns: str
) -> None:
    create(api, local_mesh, "one", namespace=watch_ns)
    create(api, local_mesh, "two", namespace=watch_ns)
    with api.get(
        coll(local_mesh, watch_ns), params={"watch": "1", "timeoutSeconds": "20"}, stream=True
    ) as answer:
        events = read_events(answer, 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "one"),
        ("ADDED", "two"),
    ]


def test_watch_replays_history_and_follows_label_selector(
    api: requests.Session, local_mesh: LocalMesh, watch_ns: str
) -> None:
    rv = api.get(coll(local_mesh, watch_ns)).json()["metadata"]["resourceVersion"]
    create(api, local_mesh, "x", namespace=watch_ns, labels={"chaos": "yes"})
    create(api, local_mesh, "y", namespace=watch_ns)
    patch(
        api,
        item(local_mesh, "x", watch_ns),
        "merge-patch",
        {"metadata": {"labels": {"chaos": None}}},
    )
    patch(
        api,
        item(local_mesh, "y", watch_ns),
        "merge-patch",
        {"metadata": {"labels": {"chaos": "yes"}}},
    )
    params = {
        "watch": "true",
        "resourceVersion": rv,
        "labelSelector": "chaos=yes",
        "timeoutSeconds": "20",
    }
    with api.get(coll(local_mesh, watch_ns), params=params, stream=True) as answer:
        events = read_events(answer, 3)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "x"),
        ("DELETED", "x"),
        ("ADDED", "y"),
    ]


def test_watch_ends_at_timeout(api: requests.Session, local_mesh: LocalMesh) -> None:
    params = {"watch": "true", "timeoutSeconds": "1", "resourceVersion": "0"}
    started = time.monotonic()
    answer = api.get(coll(local_mesh, unique("quiet")), params=params, timeout=10)
    assert answer.status_code == 200 and answer.text == ""
    assert time.monotonic() - started < 8


def test_watch_all_namespaces_sees_a_burst(api: requests.Session, local_mesh: LocalMesh) -> None:
    ns = unique("burst")
    rv = api.get(coll(local_mesh, ns)).json()["metadata"]["resourceVersion"]
    params = {"watch": "true", "resourceVersion": rv, "timeoutSeconds": "30"}
    url = f"{local_mesh.url}/apis/{GROUP}/v1/virtualservices"
    got: list[dict[str, Any]] = []
    with api.get(url, params=params, stream=True) as answer:
        reader = threading.Thread(target=lambda: got.extend(read_events(answer, 20)))
        reader.start()
        for i in range(20):
            create(api, local_mesh, f"b{i}", namespace=ns)
        reader.join(20)
    assert [e["object"]["metadata"]["name"] for e in got] == [f"b{i}" for i in range(20)]


# -- persistence ----------------------------------------------------------------------------


def test_state_survives_kill_9_and_restart(fresh_mesh: LocalMesh) -> None:
    with fresh_mesh.session() as api:
        kept = create(api, fresh_mesh, "kept")
        create(api, fresh_mesh, "gone")
        last = api.delete(item(fresh_mesh, "gone")).json()
        rv_before = int(api.get(coll(fresh_mesh)).json()["metadata"]["resourceVersion"])
    assert rv_before > int(last["metadata"]["resourceVersion"])
    os.kill(fresh_mesh.pid, signal.SIGKILL)
    info = mesh_up(fresh_mesh.dir, full=False)
    assert info.parts[0].pid != fresh_mesh.pid
    restarted = LocalMesh(
        fresh_mesh.dir, info.api_url, info.token, info.kubeconfig, info.ca_file, info.parts[0].pid
    )
    with restarted.session() as api:
        assert api.get(item(restarted, "kept")).json() == kept
        assert_status(api.get(item(restarted, "gone")), 404, "NotFound")
        listing = api.get(coll(restarted)).json()
        assert int(listing["metadata"]["resourceVersion"]) == rv_before
        again = create(api, restarted, "after")
        assert int(again["metadata"]["resourceVersion"]) > rv_before
        old = {"watch": "true", "resourceVersion": "1", "timeoutSeconds": "5"}
        with api.get(coll(restarted), params=old, stream=True) as answer:
            (event,) = read_events(answer, 1)
    assert event["type"] == "ERROR" and event["object"]["code"] == 410


@pytest.fixture
def many(api: requests.Session, local_mesh: LocalMesh) -> Iterator[str]:
    ns = unique("many")
    yield ns
    api.delete(coll(local_mesh, ns))


def test_delete_collection(api: requests.Session, local_mesh: LocalMesh, many: str) -> None:
    for i in range(3):
        create(api, local_mesh, f"d{i}", namespace=many, labels={"i": str(i)})
    answer = api.delete(coll(local_mesh, many), params={"labelSelector": "i in (0,1)"})
    assert [o["metadata"]["name"] for o in answer.json()["items"]] == ["d0", "d1"]
    left = api.get(coll(local_mesh, many)).json()["items"]
    assert [o["metadata"]["name"] for o in left] == ["d2"]
