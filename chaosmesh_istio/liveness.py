"""Is a fault live on the data plane yet, or gone? Asked of the proxies' admin endpoints.

Istio pushes configuration to the sidecars asynchronously (debounced: 100 ms to seconds),
so a VirtualService write is not a fault in effect. Envoy's admin ``/config_dump`` lists
the routes a proxy applies by name, and every chaos route carries the run's marker name
(``chaos-<run>-<n>``): the fault is live once each configured proxy shows every marker, and
gone once none does. The local mesh's data plane answers ``/config_dump`` the same way.

Configuration (optional):

- ``chaosmesh_proxy_admin_urls``: admin base URLs of the callers' proxies (a list or a
  comma-separated string; e.g. ``kubectl port-forward pod/frontend-... 15000`` gives
  ``http://127.0.0.1:15000``); the environment variable ``CHAOSMESH_PROXY_ADMIN_URLS`` is
  used when the configuration does not say. Without any, nothing is checked and the
  result says so: the experiment should then pause before measuring.
- ``chaosmesh_live_timeout``: seconds to wait for the proxies (default 10).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import requests

from chaosmesh_istio import settings
from chaosmesh_istio.errors import InvalidArgument, MeshError
from chaosmesh_istio.settings import Configuration

__all__ = ["LiveCheck", "live_check", "wait_gone", "wait_live"]

logger = logging.getLogger("chaostoolkit").getChild("chaosmesh_istio.liveness")

_POLL_SECONDS = 0.05
_DEFAULT_TIMEOUT = 10.0


class LiveCheck:
    """Validated settings of the check: the proxies' admin URLs and the timeout."""

    def __init__(self, urls: Sequence[str], timeout: float) -> None:
        self.urls = list(urls)
        self.timeout = timeout


def live_check(configuration: Configuration = None) -> LiveCheck:
    """Read and validate the settings; raises InvalidArgument before anything is written."""
    raw = settings.setting(configuration, "chaosmesh_proxy_admin_urls")
    if raw is None:
        raw = os.environ.get("CHAOSMESH_PROXY_ADMIN_URLS", "")
    if isinstance(raw, str):
        urls = [u.strip() for u in raw.split(",") if u.strip()]
    elif isinstance(raw, list) and all(isinstance(u, str) for u in raw):
        urls = [u.strip() for u in raw if u.strip()]
    else:
        raise InvalidArgument(
            f"chaosmesh_proxy_admin_urls must be a list of URLs or a comma-separated "
            f"string, got {raw!r}"
        )
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidArgument(
                f"proxy admin URL {url!r} is not an http(s) URL; give e.g. http://127.0.0.1:15000"
            )
    timeout = settings.setting(configuration, "chaosmesh_live_timeout", _DEFAULT_TIMEOUT)
    if isinstance(timeout, str):
        with contextlib.suppress(ValueError):
            timeout = float(timeout)  # --var gives strings
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise InvalidArgument(
            f"chaosmesh_live_timeout must be a positive number of seconds, got {timeout!r}"
        )
    return LiveCheck([u.rstrip("/") for u in urls], float(timeout))


def wait_live(names: Sequence[str], check: LiveCheck) -> dict[str, Any]:
    """Wait until every proxy applies every route in `names`; raises MeshError on timeout."""
    return _wait(names, check, present=True)


def wait_gone(names: Sequence[str], check: LiveCheck) -> dict[str, Any]:
    """Wait until no proxy applies any route in `names`; raises MeshError on timeout."""
    return _wait(names, check, present=False)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _wait(names: Sequence[str], check: LiveCheck, present: bool) -> dict[str, Any]:
    state = "live" if present else "gone"
    if not check.urls or not names:
        return {"checked": False, state: None, "at": _now(), "method": "none", "proxies": 0}
    started = time.monotonic()
    deadline = started + check.timeout
    pending = list(check.urls)
    with requests.Session() as session:
        while True:
            pending = [u for u in pending if not _settled(session, u, names, present)]
            if not pending:
                seconds = time.monotonic() - started
                logger.info(
                    "routes %s %s on %d proxies after %.3f s",
                    list(names), state, len(check.urls), seconds,
                )  # fmt: skip
                return {
                    "checked": True,
                    state: True,
                    "at": _now(),
                    "seconds": round(seconds, 4),
                    "method": "config_dump",
                    "proxies": len(check.urls),
                }
            if time.monotonic() >= deadline:
                break
            time.sleep(_POLL_SECONDS)
    doing = "not yet applying" if present else "still applying"
    raise MeshError(
        f"proxies {pending!r} were {doing} routes {list(names)!r} after {check.timeout:g} s; "
        "check that chaosmesh_proxy_admin_urls names the callers' proxies and that the "
        "control plane pushes configuration"
    )


def _settled(session: requests.Session, url: str, names: Sequence[str], present: bool) -> bool:
    try:
        answer = session.get(f"{url}/config_dump", timeout=2)
        answer.raise_for_status()
    except requests.RequestException as exc:
        logger.debug("proxy admin %s not answering: %s", url, exc)
        return False
    text = answer.text
    shown = [f'"{name}"' in text for name in names]
    return all(shown) if present else not any(shown)
