"""chaosmesh_istio: header-scoped chaos experiments for Istio service meshes."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
