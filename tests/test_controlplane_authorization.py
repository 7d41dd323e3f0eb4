"""SelfSubjectAccessReviews on the local control plane, through the official client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.conftest import LocalMesh

AUTHZ = "authorization.k8s.io"


@pytest.fixture
def api(local_mesh: LocalMesh) -> Iterator[client.ApiClient]:
    found = config.new_client_from_config(config_file=str(local_mesh.kubeconfig))
    yield found
    found.close()


def review(
    api: client.ApiClient, verb: str, resource: str, group: str = "networking.istio.io", **more: str
) -> client.V1SubjectAccessReviewStatus:
    body = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                verb=verb, resource=resource, group=group, **more
            )
        )
    )
    answer = client.AuthorizationV1Api(api).create_self_subject_access_review(body)
    assert answer.kind == "SelfSubjectAccessReview"
    assert answer.api_version == f"{AUTHZ}/v1"
    assert answer.spec.resource_attributes.verb == verb
    return answer.status


@pytest.mark.parametrize("verb", ["get", "list", "watch", "patch", "update", "create", "delete"])
@pytest.mark.parametrize("resource", ["virtualservices", "destinationrules"])
def test_the_token_may_use_every_served_verb_on_istio_resources(
    api: client.ApiClient, verb: str, resource: str
) -> None:
    status = review(api, verb, resource, namespace="shop")
    assert status.allowed is True
    assert resource in status.reason


def test_the_token_may_review_in_every_namespace_and_version(api: client.ApiClient) -> None:
    for namespace in ("default", "", "istio-system"):
        assert review(api, "patch", "virtualservices", namespace=namespace).allowed
    assert review(api, "get", "virtualservices", version="v1beta1", name="reviews").allowed
    assert review(api, "list", "namespaces", group="").allowed


@pytest.mark.parametrize(
    ("verb", "resource", "group", "extra"),
    [
        ("get", "pods", "", {}),
        ("create", "gateways", "networking.istio.io", {}),
        ("escalate", "virtualservices", "networking.istio.io", {}),
        ("get", "virtualservices", "networking.istio.io", {"version": "v2"}),
        ("update", "virtualservices", "networking.istio.io", {"subresource": "status"}),
    ],
)
def test_anything_else_is_denied_with_a_reason(
    api: client.ApiClient, verb: str, resource: str, group: str, extra: dict[str, str]
) -> None:
    status = review(api, verb, resource, group=group, namespace="default", **extra)
    assert status.allowed is False
    assert "virtualservices" in status.reason and "networking.istio.io" in status.reason


def test_non_resource_paths(api: client.ApiClient) -> None:
    authz = client.AuthorizationV1Api(api)

    def can(verb: str, path: str) -> bool:
        body = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                non_resource_attributes=client.V1NonResourceAttributes(path=path, verb=verb)
            )
        )
        return bool(authz.create_self_subject_access_review(body).status.allowed)

    assert can("get", "/version") and can("get", "/apis/networking.istio.io/v1")
    assert not can("post", "/version") and not can("get", "/metrics")


def test_discovery_lists_the_authorization_group(api: client.ApiClient) -> None:
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
    assert set(groups) == {"networking.istio.io", AUTHZ}
    assert groups[AUTHZ].preferred_version.group_version == f"{AUTHZ}/v1"
    resources = client.AuthorizationV1Api(api).get_api_resources().resources
    assert [(r.name, r.kind, r.verbs) for r in resources] == [
        ("selfsubjectaccessreviews", "SelfSubjectAccessReview", ["create"])
    ]


def test_a_wrong_token_is_401_and_a_bad_review_is_422(local_mesh: LocalMesh) -> None:
    stranger = client.Configuration()
    stranger.host = local_mesh.url
    stranger.ssl_ca_cert = str(local_mesh.ca)
    stranger.api_key = {"authorization": "Bearer wrong"}
    with client.ApiClient(stranger) as api, pytest.raises(ApiException) as refused:
        review(api, "get", "virtualservices")
    assert refused.value.status == 401

    url = f"{local_mesh.url}/apis/{AUTHZ}/v1/selfsubjectaccessreviews"
    with local_mesh.session() as session:
        both = {"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"path": "/"}}
        for spec in ({}, both):
            answer = session.post(url, json={"kind": "SelfSubjectAccessReview", "spec": spec})
            assert answer.status_code == 422, answer.text
            body = answer.json()
            assert (body["kind"], body["reason"]) == ("Status", "Invalid")
            assert "exactly one of nonResourceAttributes or resourceAttributes" in body["message"]
        wrong_kind = session.post(url, json={"kind": "TokenReview", "spec": {}})
        assert wrong_kind.status_code == 400
        assert session.get(url).status_code == 405
    assert requests.post(url, json={}, verify=str(local_mesh.ca), timeout=5).status_code == 401
