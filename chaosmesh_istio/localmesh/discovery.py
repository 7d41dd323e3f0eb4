"""What the control plane serves: the Istio resources and the discovery documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chaosmesh_istio import __version__

__all__ = [
    "AUTHORIZATION_GROUP",
    "AUTHORIZATION_VERSION",
    "GROUP",
    "PREFERRED_VERSION",
    "RESOURCES",
    "RESOURCE_VERBS",
    "VERSIONS",
    "Column",
    "Resource",
    "api_group",
    "api_group_list",
    "api_resource_list",
    "api_versions",
    "authorization_group",
    "authorization_resource_list",
    "core_resource_list",
    "openapi_v2",
    "version_info",
]

GROUP = "networking.istio.io"
# Istio serves all three with one schema and one storage version.
VERSIONS = ("v1", "v1beta1", "v1alpha3")
PREFERRED_VERSION = "v1"
# Served for SelfSubjectAccessReviews (``kubectl auth can-i``, permission checks).
AUTHORIZATION_GROUP = "authorization.k8s.io"
AUTHORIZATION_VERSION = "v1"

RESOURCE_VERBS = ("delete", "deletecollection", "get", "list", "patch", "create", "update", "watch")


@dataclass(frozen=True)
class Column:
    """A printer column as Istio's CRDs declare it (``path`` is a dotted JSON path)."""

    name: str
    type: str
    path: str
    description: str


@dataclass(frozen=True)
class Resource:
    """One served resource type of the ``networking.istio.io`` group."""

    plural: str
    singular: str
    kind: str
    short_names: tuple[str, ...]
    columns: tuple[Column, ...]

    @property
    def group_resource(self) -> str:
        """``plural.group``, as apiserver error messages name the resource."""
        return f"{self.plural}.{GROUP}"

    def api_resource(self) -> dict[str, Any]:
        """The entry of this resource in an APIResourceList."""
        return {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": True,
            "kind": self.kind,
            "verbs": list(RESOURCE_VERBS),
            "shortNames": list(self.short_names),
            "categories": ["istio-io", "networking-istio-io"],
        }


_AGE = Column(
    "Age",
    "date",
    "metadata.creationTimestamp",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
)

RESOURCES: dict[str, Resource] = {
    "virtualservices": Resource(
        plural="virtualservices",
        singular="virtualservice",
        kind="VirtualService",
        short_names=("vs",),
        columns=(
            Column(
                "Gateways",
                "string",
                "spec.gateways",
                "The names of gateways and sidecars that should apply these routes",
            ),
            Column(
                "Hosts",
                "string",
                "spec.hosts",
                "The destination hosts to which traffic is being sent",
            ),
            _AGE,
        ),
    ),
    "destinationrules": Resource(
        plural="destinationrules",
        singular="destinationrule",
        kind="DestinationRule",
        short_names=("dr",),
        columns=(
            Column(
                "Host", "string", "spec.host", "The name of a service from the service registry"
            ),
            _AGE,
        ),
    ),
}


def version_info() -> dict[str, str]:
    """The ``/version`` document (kubectl only warns about a skew, it does not refuse)."""
    return {
        "major": "1",
        "minor": "30",
        "gitVersion": f"v1.30.0+chaosmesh-istio-{__version__}",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "python",
        "compiler": "cpython",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> dict[str, Any]:
    """The ``/api`` document."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def core_resource_list() -> dict[str, Any]:
    """The ``/api/v1`` document: only namespaces are served from the core group."""
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "v1",
        "resources": [
            {
                "name": "namespaces",
                "singularName": "namespace",
                "namespaced": False,
                "kind": "Namespace",
                "verbs": ["get", "list"],
                "shortNames": ["ns"],
            }
        ],
    }


def api_group() -> dict[str, Any]:
    """The APIGroup of ``networking.istio.io``."""
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": GROUP,
        "versions": [{"groupVersion": f"{GROUP}/{v}", "version": v} for v in VERSIONS],
        "preferredVersion": {
            "groupVersion": f"{GROUP}/{PREFERRED_VERSION}",
            "version": PREFERRED_VERSION,
        },
    }


def authorization_group() -> dict[str, Any]:
    """The APIGroup of ``authorization.k8s.io`` (only v1, only SelfSubjectAccessReviews)."""
    version = {
        "groupVersion": f"{AUTHORIZATION_GROUP}/{AUTHORIZATION_VERSION}",
        "version": AUTHORIZATION_VERSION,
    }
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": AUTHORIZATION_GROUP,
        "versions": [version],
        "preferredVersion": version,
    }


def api_group_list() -> dict[str, Any]:
    """The ``/apis`` document."""
    groups = [api_group(), authorization_group()]
    for group in groups:
        del group["kind"], group["apiVersion"]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_resource_list(version: str) -> dict[str, Any]:
    """The ``/apis/networking.istio.io/{version}`` document."""
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{GROUP}/{version}",
        "resources": [r.api_resource() for r in RESOURCES.values()],
    }


def authorization_resource_list() -> dict[str, Any]:
    """The ``/apis/authorization.k8s.io/v1`` document."""
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{AUTHORIZATION_GROUP}/{AUTHORIZATION_VERSION}",
        "resources": [
            {
                "name": "selfsubjectaccessreviews",
                "singularName": "selfsubjectaccessreview",
                "namespaced": False,
                "kind": "SelfSubjectAccessReview",
                "verbs": ["create"],
            }
        ],
    }


def openapi_v2() -> dict[str, Any]:
    """An OpenAPI v2 document without schemas, for clients that ask for JSON."""
    return {
        "swagger": "2.0",
        "info": {"title": "chaosmesh-istio local control plane", "version": __version__},
        "paths": {},
        "definitions": {},
    }
