"""The local mesh's data plane: one process proxying HTTP for every workload of the sample
application and for the ingress gateway, applying the control plane's VirtualServices and
DestinationRules with Istio's semantics and exporting Istio's standard metrics.

Run it as ``python -m chaosmesh_istio.localmesh.dataplane --config FILE``; the file format is
described in :mod:`chaosmesh_istio.localmesh.dataplane.config`.
"""

from __future__ import annotations

__all__: list[str] = []
