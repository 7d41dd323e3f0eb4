"""Scale: inject into and remove from 200 VirtualServices selected by a label.

The 200 objects are created first (not timed); then one `inject_delay(label_selector=...)`
and one `remove_faults(label_selector=...)` are timed, each patch guarded by its object's
resourceVersion and every removal read back. Target: both together in at most 5 s.
The same pair with one patch at a time (`chaosmesh_api_concurrency: 1`) is measured just
before, as the reference for what concurrent patches gain.
"""

from __future__ import annotations

import time

from kubernetes import client, config

from benchmarks.common import Result
from benchmarks.mesh import BenchMesh
from chaosmesh_istio import actions

__all__ = ["run"]

COUNT = 200
GROUP, VERSION, PLURAL = "networking.istio.io", "v1", "virtualservices"
LABEL = "chaosmesh-bench=scale"


def _body(n: int) -> dict[str, object]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VirtualService",
        "metadata": {"name": f"scale-{n:03d}", "labels": {"chaosmesh-bench": "scale"}},
        "spec": {
            "hosts": [f"scale-{n:03d}"],
            "http": [
                {"name": "v2", "match": [{"uri": {"prefix": "/v2"}}],
                 "route": [{"destination": {"host": f"scale-{n:03d}", "subset": "v2"}}]},
                {"name": "default", "route": [{"destination": {"host": f"scale-{n:03d}"}}]},
            ],
        },
    }  # fmt: skip


def run(mesh: BenchMesh) -> list[Result]:
    api = config.new_client_from_config(config_file=str(mesh.info.kubeconfig))  # type: ignore[no-untyped-call]
    objects = client.CustomObjectsApi(api)
    try:
        for n in range(COUNT):
            objects.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, _body(n))
        sequential = _inject_and_remove(mesh.config("bench-scale-1", chaosmesh_api_concurrency=1))
        inject, remove = _inject_and_remove(mesh.config("bench-scale"))
    finally:
        objects.delete_collection_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, label_selector=LABEL
        )
        api.close()
    total = inject + remove
    return [
        Result(
            f"scale: {COUNT} VirtualServices by label",
            f"inject {inject:.2f} s + remove {remove:.2f} s = {total:.2f} s",
            "<= 5 s",
            total <= 5.0,
            f"{2 * COUNT} routes, removals read back; one at a time: {sum(sequential):.2f} s "
            f"({sum(sequential) / total:.1f}x slower)",
        )
    ]


def _inject_and_remove(conf: dict[str, object]) -> tuple[float, float]:
    """Seconds to inject into and then remove from every labelled VirtualService."""
    started = time.perf_counter()
    injected = actions.inject_delay(label_selector=LABEL, delay="1s", configuration=conf)
    middle = time.perf_counter()
    removed = actions.remove_faults(label_selector=LABEL, configuration=conf)
    ended = time.perf_counter()
    if len(injected["virtual_services"]) != COUNT or len(removed["removed"]) != COUNT:
        raise RuntimeError(
            f"expected {COUNT} VirtualServices, injected {len(injected['virtual_services'])}"
            f", removed {len(removed['removed'])}"
        )
    return middle - started, ended - middle
