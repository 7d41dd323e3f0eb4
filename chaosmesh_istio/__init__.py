"""chaosmesh_istio: header-scoped chaos experiments for Istio service meshes.

A Chaos Toolkit extension: ``chaos discover chaosmesh-istio`` lists its activities.
"""

from __future__ import annotations

from typing import Any

__all__ = ["__version__", "discover"]

__version__ = "0.1.0"


def discover(discover_system: bool = True) -> dict[str, Any]:
    """Describe the actions and probes this extension offers, for ``chaos discover``."""
    # chaoslib is imported here so that the local mesh's processes, which import this
    # package, do not pay for it.
    from chaoslib.discovery.discover import (  # noqa: PLC0415
        discover_actions,
        discover_probes,
        initialize_discovery_result,
    )

    discovery: dict[str, Any] = initialize_discovery_result("chaosmesh-istio", __version__, "istio")
    discovery["activities"].extend(discover_actions("chaosmesh_istio.actions"))
    discovery["activities"].extend(discover_probes("chaosmesh_istio.probes"))
    return discovery
