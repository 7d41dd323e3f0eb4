"""HTTP handlers of the ``networking.istio.io`` resources and of namespaces.

Every write goes through :meth:`Handlers.write`, the one choke point where test switches
(forced errors, delays) can act on writes without touching the verbs.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from chaosmesh_istio.localmesh import bodies, status
from chaosmesh_istio.localmesh.discovery import GROUP, RESOURCES, VERSIONS, Column, Resource
from chaosmesh_istio.localmesh.selectors import (
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)
from chaosmesh_istio.localmesh.store import (
    AlreadyExists,
    Conflict,
    ObjectNotFound,
    Store,
    now_rfc3339,
)
from chaosmesh_istio.localmesh.switches import Switches
from chaosmesh_istio.localmesh.tables import table, table_version
from chaosmesh_istio.localmesh.validation import validate
from chaosmesh_istio.localmesh.watch import WatchRequest, serve_watch

__all__ = ["Handlers"]

logger = logging.getLogger("chaostoolkit").getChild("localmesh")

Object = dict[str, Any]
Commit = Callable[[bool], Any]

# generateName suffixes use the apiserver's alphabet: no vowels, no look-alike digits.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_NAMESPACE_COLUMNS = (
    Column("Status", "string", "status.phase", "The phase of the namespace"),
    Column("Age", "date", "metadata.creationTimestamp", "Time since creation"),
)


def _json(body: Any, code: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=code,
        content_type="application/json",
    )


def _dry_run(request: web.Request, extra: list[str] | None = None) -> bool:
    values = request.query.getall("dryRun", []) + (extra or [])
    for value in values:
        if value != "All":
            raise status.bad_request(
                f'dryRun: Unsupported value: "{value}": supported values: "All"'
            )
    return bool(values)


def _matchers(query: Mapping[str, str]) -> list[Callable[[Mapping[str, Any]], bool]]:
    matchers = []
    try:
        if query.get("labelSelector"):
            matchers.append(parse_label_selector(query["labelSelector"]))
        if query.get("fieldSelector"):
            matchers.append(parse_field_selector(query["fieldSelector"]))
    except SelectorError as exc:
        raise status.bad_request(str(exc)) from exc
    return matchers


def _is_watch(query: Mapping[str, str]) -> bool:
    return query.get("watch", "").lower() in ("true", "1")


class Handlers:
    """The request handlers, sharing one :class:`Store`."""

    def __init__(self, store: Store, switches: Switches | None = None) -> None:
        self.store = store
        self.switches = switches or Switches()
        self._started = now_rfc3339()

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _target(request: web.Request) -> tuple[Resource, str]:
        version = request.match_info["version"]
        resource = RESOURCES.get(request.match_info["plural"])
        if resource is None or version not in VERSIONS:
            raise status.path_not_found()
        return resource, version

    @staticmethod
    def _view(obj: Mapping[str, Any], version: str) -> Object:
        """The object as served at ``version``: all versions share one schema."""
        out = dict(obj)
        out["apiVersion"] = f"{GROUP}/{version}"
        return out

    def _respond(
        self,
        request: web.Request,
        resource: Resource,
        version: str,
        obj: Mapping[str, Any],
        code: int = 200,
    ) -> web.Response:
        as_table = table_version(request.headers.get("Accept", ""))
        if as_table:
            rv = str(obj["metadata"].get("resourceVersion", ""))
            return _json(table(as_table, resource.columns, [obj], rv), code)
        return _json(self._view(obj, version), code)

    def _validated(self, resource: Resource, obj: Object) -> Object:
        """Raise 422 with every field error of ``obj``; return it unchanged otherwise."""
        causes: list[status.Cause] = [
            {"reason": e.reason, "message": e.message, "field": e.field}
            for e in validate(resource.kind, obj)
        ]
        if causes:
            raise status.invalid(resource, str(obj["metadata"].get("name", "")), causes)
        return obj

    async def write(
        self, request: web.Request, resource: Resource, commit: Commit, dry_run: bool
    ) -> Any:
        """Run one write: the single path every create, update, patch and delete takes."""
        logger.debug("%s %s%s", request.method, request.path, " (dry run)" if dry_run else "")
        await self.switches.before_write()
        try:
            return commit(dry_run)
        except ObjectNotFound as exc:
            raise status.not_found(resource, exc.name) from exc
        except AlreadyExists as exc:
            raise status.already_exists(resource, exc.name) from exc
        except Conflict as exc:
            raise status.conflict(resource, exc.name, exc.message) from exc

    # -- collections ---------------------------------------------------------------------

    async def list_or_watch(self, request: web.Request) -> web.StreamResponse:
        """GET a collection (one namespace or all), or watch it with ``?watch=true``."""
        resource, version = self._target(request)
        namespace = request.match_info.get("namespace")
        matchers = _matchers(request.query)
        as_table = table_version(request.headers.get("Accept", ""))
        if _is_watch(request.query):

            def render(obj: Mapping[str, Any]) -> Mapping[str, Any]:
                if as_table:
                    rv = str(obj["metadata"]["resourceVersion"])
                    return table(as_table, resource.columns, [obj], rv)
                return self._view(obj, version)

            watch = WatchRequest(resource.plural, namespace, matchers, render)
            return await serve_watch(request, self.store, watch)
        items = [
            obj
            for obj in self.store.objects(resource.plural, namespace)
            if all(m(obj) for m in matchers)
        ]
        rv = str(self.store.resource_version)
        if as_table:
            return _json(table(as_table, resource.columns, items, rv))
        return _json(
            {
                "apiVersion": f"{GROUP}/{version}",
                "kind": f"{resource.kind}List",
                "metadata": {"resourceVersion": rv, "continue": ""},
                "items": [self._view(obj, version) for obj in items],
            }
        )

    async def create(self, request: web.Request) -> web.Response:
        """POST a new object into a namespace."""
        resource, version = self._target(request)
        namespace = request.match_info["namespace"]
        obj = bodies.check_object(bodies.read_json(await request.read()), resource, version)
        meta = obj["metadata"]
        if meta.setdefault("namespace", namespace) != namespace:
            raise status.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(random.choices(_NAME_ALPHABET, k=5))
            meta["name"] = f"{meta['generateName']}{suffix}"

        def commit(dry_run: bool) -> Object:
            return self.store.create(
                resource.plural, self._validated(resource, obj), dry_run=dry_run
            )

        created = await self.write(request, resource, commit, _dry_run(request))
        return self._respond(request, resource, version, created, 201)

    async def delete_collection(self, request: web.Request) -> web.Response:
        """DELETE every object of a namespace matching the selectors."""
        resource, version = self._target(request)
        namespace = request.match_info["namespace"]
        matchers = _matchers(request.query)

        def commit(dry_run: bool) -> list[Object]:
            doomed = [
                obj
                for obj in self.store.objects(resource.plural, namespace)
                if all(m(obj) for m in matchers)
            ]
            return [
                self.store.delete(
                    resource.plural, namespace, obj["metadata"]["name"], dry_run=dry_run
                )
                for obj in doomed
            ]

        deleted = await self.write(request, resource, commit, _dry_run(request))
        return _json(
            {
                "apiVersion": f"{GROUP}/{version}",
                "kind": f"{resource.kind}List",
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": [self._view(obj, version) for obj in deleted],
            }
        )

    # -- items ---------------------------------------------------------------------------

    def _current(self, resource: Resource, namespace: str, name: str) -> Object:
        obj = self.store.get(resource.plural, namespace, name)
        if obj is None:
            raise status.not_found(resource, name)
        return obj

    async def get(self, request: web.Request) -> web.Response:
        """GET one object."""
        resource, version = self._target(request)
        m = request.match_info
        return self._respond(
            request, resource, version, self._current(resource, m["namespace"], m["name"])
        )

    def _check_identity(self, obj: Object, namespace: str, name: str) -> Object:
        meta = obj["metadata"]
        if meta.setdefault("namespace", namespace) != namespace:
            raise status.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        if meta.get("name") != name:
            raise status.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({name})"
            )
        return obj

    async def replace(self, request: web.Request) -> web.Response:
        """PUT a whole object; a stale metadata.resourceVersion gets 409."""
        resource, version = self._target(request)
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        obj = bodies.check_object(bodies.read_json(await request.read()), resource, version)
        self._check_identity(obj, namespace, name)

        def commit(dry_run: bool) -> Object:
            return self.store.replace(
                resource.plural, self._validated(resource, obj), dry_run=dry_run
            )

        updated = await self.write(request, resource, commit, _dry_run(request))
        return self._respond(request, resource, version, updated)

    async def patch(self, request: web.Request) -> web.Response:
        """PATCH with a JSON merge patch or a JSON patch (``test`` failures get 422)."""
        resource, version = self._target(request)
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        content_type = request.content_type
        body = await request.read()

        def commit(dry_run: bool) -> Object:
            # The patch applies to the object as stored at commit time, so a delayed write
            # still sees the latest version, as the apiserver's GuaranteedUpdate does.
            current = self._view(self._current(resource, namespace, name), version)
            patched = bodies.apply_patch(current, content_type, body)
            obj = self._check_identity(
                bodies.check_object(patched, resource, version), namespace, name
            )
            return self.store.replace(
                resource.plural, self._validated(resource, obj), dry_run=dry_run
            )

        updated = await self.write(request, resource, commit, _dry_run(request))
        return self._respond(request, resource, version, updated)

    async def delete(self, request: web.Request) -> web.Response:
        """DELETE one object; the answer is the object as it was deleted."""
        resource, version = self._target(request)
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        raw = await request.read()
        options = bodies.read_json(raw) if raw.strip() else {}
        if not isinstance(options, dict):
            raise status.bad_request("DeleteOptions must be a JSON object")
        preconditions = options.get("preconditions") or {}
        dry_run = _dry_run(request, list(options.get("dryRun") or []))

        def commit(dry_run: bool) -> Object:
            return self.store.delete(
                resource.plural,
                namespace,
                name,
                uid=preconditions.get("uid"),
                resource_version=preconditions.get("resourceVersion"),
                dry_run=dry_run,
            )

        deleted = await self.write(request, resource, commit, dry_run)
        return self._respond(request, resource, version, deleted)

    # -- namespaces ----------------------------------------------------------------------

    def _namespace(self, name: str) -> Object:
        return {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"namespace/{name}")),
                "creationTimestamp": self._started,
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }

    async def list_namespaces(self, request: web.Request) -> web.Response:
        """GET the namespaces: "default" and every namespace holding an object."""
        if _is_watch(request.query):
            raise status.method_not_allowed()
        matchers = _matchers(request.query)
        names = sorted(self.store.namespaces() | {"default"})
        items = [ns for ns in map(self._namespace, names) if all(m(ns) for m in matchers)]
        rv = str(self.store.resource_version)
        as_table = table_version(request.headers.get("Accept", ""))
        if as_table:
            return _json(table(as_table, _NAMESPACE_COLUMNS, items, rv))
        return _json(
            {
                "apiVersion": "v1",
                "kind": "NamespaceList",
                "metadata": {"resourceVersion": rv},
                "items": items,
            }
        )

    async def get_namespace(self, request: web.Request) -> web.Response:
        """GET one namespace."""
        name = request.match_info["namespace"]
        if name != "default" and name not in self.store.namespaces():
            raise status.namespace_not_found(name)
        obj = self._namespace(name)
        as_table = table_version(request.headers.get("Accept", ""))
        if as_table:
            return _json(table(as_table, _NAMESPACE_COLUMNS, [obj], ""))
        return _json(obj)
