"""The local mesh: a Kubernetes-compatible control plane for Istio networking objects on
127.0.0.1, reached by the rest of the package only over HTTP, as a real cluster would be."""

from __future__ import annotations

__all__: list[str] = []
