"""VirtualService access through the official ``kubernetes`` client.

Credentials are resolved exactly as chaostoolkit-kubernetes resolves them. Every write is
a JSON Patch whose first operation tests ``metadata.resourceVersion``: when someone else
wrote in between (409, or a failed test: 422) the object is read again and the change is
computed again from what is there now, so no one's edit is lost. Transient errors (5xx,
429, connection failures, timeouts) are retried with backoff.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import jsonpatch
import urllib3
from chaosk8s import create_k8s_api_client
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from chaosmesh_istio.errors import (
    ApiUnavailable,
    ConflictError,
    Forbidden,
    InvalidArgument,
    KubeError,
    NotFound,
)
from chaosmesh_istio.settings import Configuration, Secrets, check_namespace, setting

__all__ = [
    "GROUP",
    "PLURAL",
    "VERSIONS",
    "Change",
    "Outcome",
    "Update",
    "VirtualServices",
    "api_client",
    "check_label_selector",
    "check_target",
    "open_virtual_services",
]

GROUP = "networking.istio.io"
PLURAL = "virtualservices"
VERSIONS = ("v1", "v1beta1", "v1alpha3")
_TRANSIENT = {429, 500, 502, 503, 504}
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_SELECTOR_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=!,() "
)

logger = logging.getLogger("chaostoolkit").getChild("chaosmesh_istio.kube")

#: Given the current object, return the object to write, or None when nothing is to change.
Change = Callable[[dict[str, Any]], dict[str, Any] | None]
# One guarded update: (name, namespace, change, the object as just read or None).
Update = tuple[str, str, Change, dict[str, Any] | None]
Outcome = tuple[dict[str, Any], dict[str, Any]] | Exception


def _api_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "")
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(exc.reason or exc.body or f"HTTP {exc.status}")


@dataclass
class VirtualServices:
    """Reads and guarded writes of VirtualServices, with retries."""

    api: client.ApiClient
    attempts: int = 5
    backoff: float = 0.2
    max_conflicts: int = 10
    timeout: float = 10.0
    concurrency: int = 8
    _version: str | None = None

    @property
    def version(self) -> str:
        """The first of v1, v1beta1, v1alpha3 that the API server serves."""
        if self._version is None:
            groups = self._call("discover the Istio API", client.ApisApi(self.api).get_api_versions)
            served = [
                v.version for g in groups.groups or [] if g.name == GROUP for v in g.versions or []
            ]
            chosen = next((v for v in VERSIONS if v in served), None)
            if chosen is None:
                raise KubeError(
                    f"the API server does not serve {GROUP} (versions {list(VERSIONS)!r}); "
                    "install Istio or point the kubeconfig at a cluster that has it"
                )
            self._version = chosen
        return self._version

    @property
    def _objects(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the API, retrying transient failures with exponential backoff."""
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                return fn(*args, _request_timeout=self.timeout, **kwargs)
            except ApiException as exc:
                if exc.status not in _TRANSIENT or attempt == self.attempts:
                    raise
                reason = f"HTTP {exc.status}"
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if attempt == self.attempts:
                    raise ApiUnavailable(
                        f"could not {what}: the Kubernetes API at {self.api.configuration.host} "
                        f"is unreachable after {self.attempts} attempts ({exc}); check the "
                        "kubeconfig and that the API server is up"
                    ) from exc
                reason = type(exc).__name__
            logger.debug("could not %s (%s), retry %d in %.2fs", what, reason, attempt, delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    def _raise(self, exc: ApiException, what: str, ref: str) -> KubeError:
        message = _api_message(exc)
        if exc.status == 404:
            return NotFound(
                f"virtual service {ref} was not found; check its name and namespace", 404
            )
        if exc.status in (401, 403):
            return Forbidden(
                f"not allowed to {what} virtual service {ref}: {message}; check the credentials "
                "and RBAC (get, list and patch on virtualservices)",
                exc.status,
            )
        if exc.status in _TRANSIENT:
            return ApiUnavailable(
                f"could not {what} virtual service {ref}: the API kept failing ({message})",
                exc.status,
            )
        return KubeError(f"could not {what} virtual service {ref}: {message}", exc.status)

    def get(self, name: str, namespace: str) -> dict[str, Any]:
        ref = f"{namespace}/{name}"
        try:
            obj = self._call(
                f"read virtual service {ref}",
                self._objects.get_namespaced_custom_object,
                GROUP,
                self.version,
                namespace,
                PLURAL,
                name,
            )
        except ApiException as exc:
            raise self._raise(exc, "read", ref) from exc
        return dict(obj)

    def select(
        self, namespace: str | None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """VirtualServices of one namespace (all namespaces when None), by label selector."""
        where = f"namespace {namespace!r}" if namespace else "all namespaces"
        kwargs = {"label_selector": label_selector} if label_selector else {}
        try:
            if namespace is None:
                found = self._call(
                    f"list virtual services in {where}",
                    self._objects.list_cluster_custom_object,
                    GROUP,
                    self.version,
                    PLURAL,
                    **kwargs,
                )
            else:
                found = self._call(
                    f"list virtual services in {where}",
                    self._objects.list_namespaced_custom_object,
                    GROUP,
                    self.version,
                    namespace,
                    PLURAL,
                    **kwargs,
                )
        except ApiException as exc:
            raise self._raise(exc, "list", where) from exc
        items: list[dict[str, Any]] = found.get("items") or []
        return sorted(
            items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])
        )

    def targets(
        self, name: str | None, namespace: str, label_selector: str | None
    ) -> list[dict[str, Any]]:
        """The VirtualServices an activity targets: one by name, or all matching a selector."""
        if name is not None:
            return [self.get(name, namespace)]
        assert label_selector is not None
        found = self.select(namespace, label_selector)
        if not found:
            raise NotFound(
                f"no virtual service in namespace {namespace!r} matches the label selector "
                f"{label_selector!r}; check the labels with kubectl get vs -n {namespace} "
                "--show-labels",
                404,
            )
        return found

    def update(
        self, name: str, namespace: str, change: Change, current: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Apply ``change`` with a resourceVersion-guarded JSON Patch; return (before, after).

        ``current`` is the object as just read (e.g. listed), which saves a read: the patch's
        resourceVersion test makes a stale copy harmless. On a conflict the object is read
        again and ``change`` computed again, at most ``max_conflicts`` times.
        """
        ref = f"{namespace}/{name}"
        known = copy.deepcopy(current) if current is not None else None
        for _ in range(self.max_conflicts):
            current, known = known or self.get(name, namespace), None
            wanted = change(copy.deepcopy(current))
            if wanted is None:
                return current, current
            ops = jsonpatch.make_patch(current, wanted).patch
            if not ops:
                return current, current
            version = current["metadata"]["resourceVersion"]
            body = [{"op": "test", "path": "/metadata/resourceVersion", "value": version}, *ops]
            try:
                written = self._call(
                    f"patch virtual service {ref}",
                    self._objects.patch_namespaced_custom_object,
                    GROUP,
                    self.version,
                    namespace,
                    PLURAL,
                    name,
                    body,
                    _content_type="application/json-patch+json",
                )
            except ApiException as exc:
                if exc.status == 409 or (
                    exc.status == 422 and self._moved(name, namespace, version)
                ):
                    logger.debug("virtual service %s changed meanwhile; re-applying", ref)
                    continue
                raise self._raise(exc, "patch", ref) from exc
            return current, dict(written)
        raise ConflictError(
            f"virtual service {ref} kept changing under us: {self.max_conflicts} guarded patches "
            "in a row hit a newer resourceVersion; retry when the other writer (GitOps, an "
            "operator) is quiet",
            409,
        )

    def update_many(self, updates: Sequence[Update]) -> list[Outcome]:
        """`update` each, up to `concurrency` at a time; outcomes in the order given.

        Each object is patched on its own (an API server has no multi-object write), so a
        wait for one answer no longer holds up the others: 200 VirtualServices are written
        in a fraction of the time one after another takes. A failure is returned in its
        place rather than raised, so that the caller knows exactly what was written.
        """
        if len(updates) <= 1 or self.concurrency <= 1:
            return [self._outcome(update) for update in updates]
        self.version  # noqa: B018  (discovered once, before the threads share it)
        workers = min(self.concurrency, len(updates))
        with ThreadPoolExecutor(workers, thread_name_prefix="chaosmesh-patch") as pool:
            futures = [pool.submit(self._outcome, update) for update in updates]
            try:
                return [future.result() for future in futures]
            except BaseException:
                # Interrupted (Ctrl-C): patches not yet started are not sent; those in
                # flight finish, and the run's ledger already names every target.
                for future in futures:
                    future.cancel()
                raise

    def _outcome(self, update: Update) -> Outcome:
        name, namespace, change, current = update
        try:
            return self.update(name, namespace, change, current)
        except Exception as exc:
            return exc

    def _moved(self, name: str, namespace: str, version: str) -> bool:
        """Whether a 422 was our resourceVersion test failing rather than a refused object."""
        return str(self.get(name, namespace)["metadata"]["resourceVersion"]) != str(version)


def _positive(configuration: Configuration, key: str, default: float) -> float:
    value = setting(configuration, key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidArgument(f"{key} must be a positive number, got {value!r}")
    return float(value)


def check_label_selector(label_selector: object) -> str:
    """A syntactically plausible Kubernetes label selector."""
    if (
        not isinstance(label_selector, str)
        or not label_selector.strip()
        or not set(label_selector) <= _LABEL_SELECTOR_CHARS
    ):
        raise InvalidArgument(
            f"label_selector must be a Kubernetes label selector such as 'app=reviews', "
            f"got {label_selector!r}"
        )
    return label_selector


def check_target(
    virtual_service: object,
    namespace: object,
    label_selector: object,
    configuration: Configuration,
    required: bool = True,
) -> tuple[str | None, str, str | None]:
    """Validate a target: a VirtualService name or a label selector, in an allowed namespace."""
    ns = check_namespace(namespace, configuration)
    if virtual_service is not None and label_selector is not None:
        raise InvalidArgument(
            f"virtual_service {virtual_service!r} and label_selector {label_selector!r} were "
            "both given; target one virtual service by name or several by label, not both"
        )
    if virtual_service is None and label_selector is None:
        if required:
            raise InvalidArgument(
                "no target given: set virtual_service to a VirtualService name or "
                "label_selector to a label selector such as 'app=reviews'"
            )
        return None, ns, None
    if virtual_service is not None:
        if not isinstance(virtual_service, str) or not _is_dns_subdomain(virtual_service):
            raise InvalidArgument(
                f"virtual_service must be a Kubernetes object name (lowercase letters, digits, "
                f"'-' and '.'), got {virtual_service!r}"
            )
        return virtual_service, ns, None
    return None, ns, check_label_selector(label_selector)


def _is_dns_subdomain(name: str) -> bool:
    return len(name) <= 253 and bool(_DNS_SUBDOMAIN.fullmatch(name))


def api_client(secrets: Secrets = None) -> client.ApiClient:
    """An API client, with credentials looked up in chaostoolkit-kubernetes' order.

    1. a kubeconfig (``KUBECONFIG`` or ``~/.kube/config``), context ``KUBERNETES_CONTEXT``;
    2. in a pod with ``CHAOSTOOLKIT_IN_POD=true``, the service account;
    3. ``KUBERNETES_HOST`` and the other ``KUBERNETES_*`` keys.
    Secrets are looked up before the environment. The kubeconfig is read from the
    environment now rather than when the kubernetes package was imported (which is what
    chaostoolkit-kubernetes ends up doing), and into a fresh configuration.
    """
    found = dict(secrets) if isinstance(secrets, Mapping) else {}
    paths = os.environ.get("KUBECONFIG", "~/.kube/config")
    if any(os.path.exists(os.path.expanduser(p)) for p in paths.split(os.pathsep) if p):
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=paths,
            context=found.get("KUBERNETES_CONTEXT", os.environ.get("KUBERNETES_CONTEXT")),
        )
        for variable, attribute in (("HTTP_PROXY", "proxy"), ("NO_PROXY", "no_proxy")):
            if os.environ.get(variable):
                setattr(api.configuration, attribute, os.environ[variable])
        return api
    from_env: client.ApiClient = create_k8s_api_client(found or None)
    return from_env


def open_virtual_services(
    configuration: Configuration = None, secrets: Secrets = None
) -> VirtualServices:
    """A VirtualServices client with credentials resolved as chaostoolkit-kubernetes does."""
    attempts = int(_positive(configuration, "chaosmesh_api_attempts", 5))
    timeout = _positive(configuration, "chaosmesh_api_timeout", 10.0)
    concurrency = int(_positive(configuration, "chaosmesh_api_concurrency", 8))
    try:
        api = api_client(secrets)
    except config.ConfigException as exc:
        raise KubeError(
            f"could not load Kubernetes credentials: {exc}; set KUBECONFIG to a valid "
            "kubeconfig or KUBERNETES_HOST and KUBERNETES_API_KEY"
        ) from exc
    return VirtualServices(api, attempts=attempts, timeout=timeout, concurrency=concurrency)
