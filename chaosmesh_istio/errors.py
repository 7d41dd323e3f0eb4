"""Exceptions raised by chaosmesh_istio.

Every error derives from one base class, so callers can catch them all::

    ChaosMeshIstioError (chaoslib ActivityFailed)
    ├── InvalidArgument        bad input: nothing was changed
    ├── TargetError            the target cannot carry the fault as asked
    ├── KubeError              the Kubernetes API answered with an error
    │   ├── ApiUnavailable     connection refused, timeouts, 5xx after retries
    │   ├── NotFound           404
    │   ├── Forbidden          401 / 403
    │   └── ConflictError      409 / 422 after every re-read and re-apply
    ├── RollbackNotVerified    a fault of the run is still there after removal
    ├── MetricsError           Prometheus unreachable, refusing, or answering unusably
    ├── Inconclusive           no data, or the fault never fired: neither pass nor fail
    ├── LoadError              the load generator (Locust) could not start, run or stop
    └── MeshError              the local mesh could not be started, reached or stopped

Messages are one sentence: they name the thing, show the bad value with ``!r`` and say
what to do.
"""

from __future__ import annotations

from chaoslib.exceptions import ActivityFailed

__all__ = [
    "ApiUnavailable",
    "ChaosMeshIstioError",
    "ConflictError",
    "Forbidden",
    "Inconclusive",
    "InvalidArgument",
    "KubeError",
    "LoadError",
    "MeshError",
    "MetricsError",
    "NotFound",
    "RollbackNotVerified",
    "TargetError",
]


class ChaosMeshIstioError(ActivityFailed):  # type: ignore[misc]
    """Base class of every error raised by chaosmesh_istio."""


class InvalidArgument(ChaosMeshIstioError):
    """An argument or configuration value is invalid; nothing was changed."""


class TargetError(ChaosMeshIstioError):
    """The targeted VirtualService cannot carry the requested fault."""


class KubeError(ChaosMeshIstioError):
    """The Kubernetes API refused or failed a request."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ApiUnavailable(KubeError):
    """The API server could not be reached or kept failing after retries."""


class NotFound(KubeError):
    """The object does not exist."""


class Forbidden(KubeError):
    """The credentials are missing or lack the permission."""


class ConflictError(KubeError):
    """Concurrent writers kept changing the object faster than we could patch it."""


class RollbackNotVerified(ChaosMeshIstioError):
    """Reading the VirtualService back still shows routes of the run."""


class MetricsError(ChaosMeshIstioError):
    """Prometheus could not be reached, refused the request or gave an unusable answer."""


class Inconclusive(ChaosMeshIstioError):
    """No data, or the fault never fired: the experiment can neither pass nor fail on it."""


class LoadError(ChaosMeshIstioError):
    """The load generator could not be started, queried or stopped."""


class MeshError(ChaosMeshIstioError):
    """The local mesh could not be started, reached or stopped."""
