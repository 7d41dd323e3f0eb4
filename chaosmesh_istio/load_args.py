"""Validation of ``start_load``'s arguments into a plan (pure: nothing is started here)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from chaosmesh_istio.durations import bounded_duration
from chaosmesh_istio.errors import InvalidArgument
from chaosmesh_istio.scoping import make_scope
from chaosmesh_istio.settings import setting

__all__ = ["LoadPlan", "plan_load"]

_MAX_DURATION_NS = 24 * 3600 * 10**9
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_PATH_KEYS = {"path", "method", "weight", "body", "headers"}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@dataclass(frozen=True)
class LoadPlan:
    """Everything a load needs, validated."""

    run_id: str
    host: str
    users: int
    spawn_rate: float
    duration_s: int
    control: int
    experiment: int
    paths: list[dict[str, Any]]
    headers: dict[str, str]
    rate_per_user: float | None
    locustfile: Path | None
    workers: int
    master_url: str | None
    group_header: str
    scope_header: str
    scope_value: str
    header_value: str

    def locust_config(self) -> dict[str, Any]:
        """The JSON configuration the bundled locustfile reads."""
        return {
            "control": self.control,
            "experiment": self.experiment,
            "group_header": self.group_header,
            "scope_header": self.scope_header,
            "scope_value": self.scope_value,
            "headers": self.headers,
            "paths": self.paths,
            "rate_per_user": self.rate_per_user,
            "bundled_users": self.locustfile is None,
        }


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _url(name: str, value: object) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(
            f"{name} must be an http(s) URL such as 'http://127.0.0.1:8080', got {value!r}"
        )
    return str(value).rstrip("/")


def _headers(name: str, value: object, forbidden: set[str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and _TOKEN.fullmatch(k) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidArgument(
            f"{name} must map header names to string values, such as {{'x-team': 'a'}}, "
            f"got {value!r}"
        )
    clash = sorted(k for k in value if k.lower() in forbidden)
    if clash:
        raise InvalidArgument(
            f"{name} sets {clash[0]!r}, which the load sets itself to tell the groups apart; "
            "remove it or choose another header or chaosmesh_group_header"
        )
    return dict(value)


def _paths(value: object, forbidden: set[str]) -> list[dict[str, Any]]:
    if value is None:
        return [{"path": "/", "method": "GET", "weight": 1}]
    if not isinstance(value, list) or not value:
        raise InvalidArgument(
            f"paths must be a non-empty list such as [{{'path': '/', 'method': 'GET'}}], "
            f"got {value!r}"
        )
    paths = []
    for i, entry in enumerate(value):
        where = f"paths[{i}]"
        if not isinstance(entry, Mapping) or set(entry) - _PATH_KEYS:
            raise InvalidArgument(
                f"{where} must be an object with keys among {sorted(_PATH_KEYS)}, got {entry!r}"
            )
        path, method, weight = entry.get("path"), entry.get("method", "GET"), entry.get("weight", 1)
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidArgument(f"{where}.path must start with '/', got {path!r}")
        if not isinstance(method, str) or method.upper() not in _METHODS:
            raise InvalidArgument(f"{where}.method must be one of {list(_METHODS)}, got {method!r}")
        if not isinstance(weight, int) or isinstance(weight, bool) or weight < 1:
            raise InvalidArgument(f"{where}.weight must be a positive integer, got {weight!r}")
        body = entry.get("body")
        if body is not None and not isinstance(body, str | dict | list):
            raise InvalidArgument(
                f"{where}.body must be a string or a JSON object or list, got {body!r}"
            )
        clean: dict[str, Any] = {"path": path, "method": method.upper(), "weight": weight}
        if body is not None:
            clean["body"] = body
        if entry.get("headers") is not None:
            clean["headers"] = _headers(f"{where}.headers", entry["headers"], forbidden)
        paths.append(clean)
    return paths


def _split(users: int, ratio: float) -> tuple[int, int]:
    """(control, experiment) user counts; both groups always get at least one user."""
    experiment = min(users - 1, max(1, round(users * ratio)))
    return users - experiment, experiment


def plan_load(
    run_id: str,
    configuration: Mapping[str, Any] | None,
    host: object,
    users: object,
    spawn_rate: object,
    duration: object,
    experiment_ratio: object,
    paths: object,
    headers: object,
    target_rps: object,
    locustfile: object,
    workers: object,
    master_url: object,
    scope: object,
    header: object,
    header_value: object,
    header_match: object,
) -> LoadPlan:
    """Check every argument of ``start_load``: InvalidArgument (one sentence) on the first bad."""
    clean_host = _url("host", host)
    if not isinstance(users, int) or isinstance(users, bool) or users < 2:
        raise InvalidArgument(
            f"users must be an integer of at least 2 (one control and one experiment user), "
            f"got {users!r}"
        )
    if not _is_number(spawn_rate) or float(spawn_rate) <= 0:
        raise InvalidArgument(
            f"spawn_rate must be a positive number of users/s, got {spawn_rate!r}"
        )
    try:
        duration_ns = bounded_duration("duration", duration, 10**9, _MAX_DURATION_NS)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    if not _is_number(experiment_ratio) or not 0 < float(experiment_ratio) < 1:
        raise InvalidArgument(
            f"experiment_ratio must be a number between 0 and 1 (exclusive), such as 0.5, "
            f"got {experiment_ratio!r}"
        )
    if target_rps is not None and (not _is_number(target_rps) or float(target_rps) <= 0):
        raise InvalidArgument(
            f"target_rps must be a positive number of requests/s, got {target_rps!r}"
        )
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise InvalidArgument(f"workers must be an integer of at least 0, got {workers!r}")
    clean_master = None if master_url is None else _url("master_url", master_url)
    if clean_master is not None and workers:
        raise InvalidArgument(
            f"workers={workers!r} and master_url={master_url!r} exclude each other: either start "
            "local workers or drive an existing master, whose workers are its own"
        )
    lf_path = None
    if locustfile is not None:
        if clean_master is not None:
            raise InvalidArgument(
                f"locustfile={locustfile!r} cannot be used with master_url: the remote master "
                "runs its own locustfile"
            )
        lf_path = Path(locustfile).resolve() if isinstance(locustfile, str) else None
        if lf_path is None or lf_path.suffix != ".py" or not lf_path.is_file():
            raise InvalidArgument(
                f"locustfile must be the path of an existing .py file, got {locustfile!r}"
            )
    if scope not in ("header", "baggage"):
        raise InvalidArgument(f"scope of a load must be 'header' or 'baggage', got {scope!r}")
    made = make_scope(run_id, scope, header, header_value, header_match)
    group_header = setting(configuration, "chaosmesh_group_header", "x-chaos-group")
    if not isinstance(group_header, str) or not _TOKEN.fullmatch(group_header):
        raise InvalidArgument(
            f"chaosmesh_group_header must be an HTTP header name, got {group_header!r}"
        )
    if group_header.lower() == made.header:
        raise InvalidArgument(
            f"chaosmesh_group_header {group_header!r} is the scope header too; choose another"
        )
    # In baggage mode the user's baggage is kept and the run's member added to it.
    forbidden = {group_header.lower()} | ({made.header} if made.mode == "header" else set())
    clean_headers = _headers("headers", headers, forbidden)
    clean_paths = _paths(paths, forbidden)
    scope_value = made.send_value
    if made.mode == "baggage":
        theirs = [v for k, v in clean_headers.items() if k.lower() == "baggage"]
        scope_value = ",".join([*theirs, made.send_value])
    control, experiment = _split(users, float(experiment_ratio))
    return LoadPlan(
        run_id=run_id,
        host=clean_host,
        users=users,
        spawn_rate=float(spawn_rate),
        duration_s=math.ceil(duration_ns / 10**9),
        control=control,
        experiment=experiment,
        paths=clean_paths,
        headers=clean_headers,
        rate_per_user=None if target_rps is None else float(target_rps) / users,
        locustfile=lf_path,
        workers=workers,
        master_url=clean_master,
        group_header=group_header,
        scope_header=made.header,
        scope_value=scope_value,
        header_value=made.send_value,
    )
