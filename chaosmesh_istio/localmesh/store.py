"""Persistent object store of the local control plane, with ordered watch events.

Objects are kept in memory, keyed by ``(plural, namespace, name)``, and every change
is written to ``DIR/state/`` (one JSON file per object, atomic replace plus fsync) before
it becomes visible, so the state survives ``kill -9``. The store assigns the metadata the
Kubernetes apiserver owns: a global increasing ``resourceVersion``, ``uid``,
``creationTimestamp`` and ``generation``.

The store is synchronous and meant to be driven from one event loop: a write and the
delivery of its event to every subscriber happen in one step, which keeps events ordered.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaosmesh_istio.errors import MeshError

__all__ = [
    "AlreadyExists",
    "Conflict",
    "Event",
    "Gone",
    "ObjectNotFound",
    "Store",
    "StoreError",
    "Subscription",
    "atomic_write",
    "now_rfc3339",
]

logger = logging.getLogger("chaostoolkit").getChild("localmesh")

Object = dict[str, Any]
Key = tuple[str, str, str]

# How many past events a watch may resume from; older resourceVersions get 410 Gone.
HISTORY_SIZE = 10_000
_META_FILE = "_meta.json"


class StoreError(MeshError):
    """A store operation on object ``name`` was refused; the API turns it into a ``Status``."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


class ObjectNotFound(StoreError):
    """The object does not exist."""


class AlreadyExists(StoreError):
    """An object with that name already exists."""


class Conflict(StoreError):
    """The caller's resourceVersion or uid precondition does not match the stored object."""


class Gone(StoreError):
    """The requested resourceVersion is older than the kept event history."""


@dataclass(frozen=True)
class Event:
    """One change: ``type`` is ADDED, MODIFIED or DELETED; objects must not be mutated.

    ``previous`` is the object before a MODIFIED change, so that a filtered watch can
    tell when an object starts or stops matching its selector.
    """

    type: str
    plural: str
    object: Mapping[str, Any]
    resource_version: int
    previous: Mapping[str, Any] | None = None


class Subscription:
    """An ordered stream of events for one watcher; ``None`` in the queue means closed."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()

    def close(self) -> None:
        """Stop receiving events."""
        self._store._subscribers.discard(self)


_MODIFIED = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def _precondition(what: str, wanted: str, actual: str) -> str:
    return f"Precondition failed: {what} in precondition: {wanted}, {what} in object meta: {actual}"


def now_rfc3339() -> str:
    """Return the current UTC time as Kubernetes writes timestamps."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or new file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _strip_volatile(obj: Mapping[str, Any]) -> Object:
    """The object without the fields a no-op write would change anyway."""
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta.pop("resourceVersion", None)
    out["metadata"] = meta
    out.pop("apiVersion", None)
    return out


def _content(obj: Mapping[str, Any]) -> Object:
    """What generation tracks: everything except metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Store:
    """Objects of all resources, persisted under ``directory/state``."""

    def __init__(self, directory: Path) -> None:
        self._dir = Path(directory) / "state"
        self._dir.mkdir(parents=True, exist_ok=True)
        self._objects: dict[Key, Object] = {}
        self._history: collections.deque[Event] = collections.deque(maxlen=HISTORY_SIZE)
        self._subscribers: set[Subscription] = set()
        self._rv = 0
        self._load()

    @property
    def resource_version(self) -> int:
        """The resourceVersion of the latest change."""
        return self._rv

    def _path(self, key: Key) -> Path:
        # "_" cannot occur in a resource, namespace or object name, so it separates safely.
        return self._dir / f"{key[0]}_{key[1]}_{key[2]}.json"

    def _load(self) -> None:
        meta_path = self._dir / _META_FILE
        if meta_path.exists():
            self._rv = int(json.loads(meta_path.read_text())["resourceVersion"])
        for leftover in self._dir.glob(".*.tmp"):
            # A temp file of a write interrupted by a crash; the old version is intact.
            leftover.unlink()
        for path in self._dir.glob("*_*_*.json"):
            try:
                record = json.loads(path.read_text())
                plural, obj = record["plural"], record["object"]
                meta = obj["metadata"]
                key = (plural, meta["namespace"], meta["name"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.warning("ignoring unreadable state file %s: %s", path, exc)
                continue
            self._objects[key] = obj
            self._rv = max(self._rv, int(meta["resourceVersion"]))
        logger.info(
            "loaded %d objects from %s (resourceVersion %d)", len(self), self._dir, self._rv
        )

    def __len__(self) -> int:
        return len(self._objects)

    def get(self, plural: str, namespace: str, name: str) -> Object | None:
        """Return the stored object (do not mutate it) or ``None``."""
        return self._objects.get((plural, namespace, name))

    def objects(self, plural: str, namespace: str | None = None) -> list[Object]:
        """Objects of a resource, in one namespace or all, ordered by namespace and name."""
        keys = sorted(k for k in self._objects if k[0] == plural and namespace in (None, k[1]))
        return [self._objects[k] for k in keys]

    def namespaces(self) -> set[str]:
        """Namespaces that hold at least one object."""
        return {key[1] for key in self._objects}

    def create(self, plural: str, obj: Mapping[str, Any], *, dry_run: bool = False) -> Object:
        """Store a new object; metadata.name and metadata.namespace must be set."""
        meta = obj["metadata"]
        key = (plural, meta["namespace"], meta["name"])
        if key in self._objects:
            raise AlreadyExists(meta["name"], "already exists")
        new = copy.deepcopy(dict(obj))
        new.pop("status", None)
        new_meta = new["metadata"]
        for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            new_meta.pop(field, None)
        new_meta["uid"] = str(uuid.uuid4())
        new_meta["creationTimestamp"] = now_rfc3339()
        new_meta["generation"] = 1
        return self._commit("ADDED", plural, key, new, dry_run)

    def replace(self, plural: str, obj: Mapping[str, Any], *, dry_run: bool = False) -> Object:
        """Replace an existing object; a set metadata.resourceVersion must match the stored one."""
        meta = obj["metadata"]
        key = (plural, meta["namespace"], meta["name"])
        old = self._objects.get(key)
        if old is None:
            raise ObjectNotFound(key[2], "not found")
        old_meta = old["metadata"]
        if meta.get("uid") not in (None, "", old_meta["uid"]):
            raise Conflict(key[2], _precondition("UID", meta["uid"], old_meta["uid"]))
        if meta.get("resourceVersion") not in (None, "", old_meta["resourceVersion"]):
            raise Conflict(key[2], _MODIFIED)
        new = copy.deepcopy(dict(obj))
        new_meta = new["metadata"]
        # The apiserver owns these; status only changes through the status subresource.
        for field in ("uid", "creationTimestamp", "generation", "resourceVersion"):
            new_meta[field] = old_meta[field]
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)
        if _strip_volatile(new) == _strip_volatile(old):
            # A no-op write changes nothing and sends no event, like the apiserver.
            return old
        if _content(new) != _content(old):
            new_meta["generation"] = old_meta["generation"] + 1
        return self._commit("MODIFIED", plural, key, new, dry_run, old)

    def delete(
        self,
        plural: str,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
        dry_run: bool = False,
    ) -> Object:
        """Delete an object and return it as it was, checking optional preconditions."""
        key = (plural, namespace, name)
        old = self._objects.get(key)
        if old is None:
            raise ObjectNotFound(name, "not found")
        old_meta = old["metadata"]
        if uid and uid != old_meta["uid"]:
            raise Conflict(name, _precondition("UID", uid, old_meta["uid"]))
        if resource_version and resource_version != old_meta["resourceVersion"]:
            raise Conflict(
                name,
                _precondition("ResourceVersion", resource_version, old_meta["resourceVersion"]),
            )
        if dry_run:
            return old
        rv = self._rv + 1
        # Remember the counter first: it must not go back when the newest object is deleted.
        atomic_write(self._dir / _META_FILE, json.dumps({"resourceVersion": str(rv)}).encode())
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()
        _fsync_dir(self._dir)
        self._rv = rv
        del self._objects[key]
        gone = copy.deepcopy(old)
        gone["metadata"]["resourceVersion"] = str(rv)
        self._publish(Event("DELETED", plural, gone, rv))
        return old

    def _commit(
        self,
        kind: str,
        plural: str,
        key: Key,
        obj: Object,
        dry_run: bool,
        previous: Object | None = None,
    ) -> Object:
        """Give ``obj`` the next resourceVersion, persist it, then publish the event."""
        if dry_run:
            # Nothing is stored, so there is no new resourceVersion to report.
            return obj
        rv = self._rv + 1
        obj["metadata"]["resourceVersion"] = str(rv)
        record = {"plural": plural, "object": obj}
        atomic_write(self._path(key), json.dumps(record, separators=(",", ":")).encode())
        self._rv = rv
        self._objects[key] = obj
        self._publish(Event(kind, plural, obj, rv, previous))
        return obj

    def _publish(self, event: Event) -> None:
        self._history.append(event)
        for sub in self._subscribers:
            sub.queue.put_nowait(event)

    def subscribe(self, since: int | None) -> tuple[Subscription, list[Event]]:
        """Start a subscription; also return the kept events after ``since``.

        With ``since=None`` no past events are returned. Raises :class:`Gone` when
        events after ``since`` were already dropped from the history.
        """
        backlog: list[Event] = []
        if since is not None and since < self._rv:
            oldest = self._history[0].resource_version if self._history else self._rv + 1
            if since + 1 < oldest:
                raise Gone("", f"too old resource version: {since} ({oldest - 1})")
            backlog = [e for e in self._history if e.resource_version > since]
        sub = Subscription(self)
        self._subscribers.add(sub)
        return sub, backlog

    def close_subscriptions(self) -> None:
        """End every watch, e.g. at shutdown."""
        for sub in list(self._subscribers):
            sub.queue.put_nowait(None)
            sub.close()
