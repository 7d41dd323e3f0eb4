"""``chaosmesh-istio init``: a ready-to-edit experiment for one existing VirtualService.

The experiment follows the catalog's shape: load in two groups through the entry point,
a header-scoped fault on the VirtualService's HTTP routes, proof that the fault fired,
per-group measurements, a control-group safeguard, and rollbacks. Every value a person
would tune is a configuration key with an environment-variable default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chaosmesh_istio.errors import InvalidArgument, NotFound
from chaosmesh_istio.experiment import CONTROL_MODULE, load
from chaosmesh_istio.kube import check_target, open_virtual_services

__all__ = ["FAULTS", "scaffold", "write_experiment"]

FAULTS = ("delay", "abort")
_ACTIONS = "chaosmesh_istio.actions"
_PROBES = "chaosmesh_istio.probes"


def _env(key: str, default: Any, kind: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"type": "env", "key": key, "default": default}
    if kind is not None:
        found["env_var_type"] = kind
    return found


def _python(
    kind: str, name: str, module: str, func: str, tolerance: Any = None, **arguments: Any
) -> dict[str, Any]:
    activity: dict[str, Any] = {
        "type": kind,
        "name": name,
        "provider": {"type": "python", "module": module, "func": func},
    }
    if arguments:
        activity["provider"]["arguments"] = arguments
    if tolerance is not None:
        activity["tolerance"] = tolerance
    return activity


def _service(vs: dict[str, Any]) -> str:
    """The service the routes send to (the first destination's short name)."""
    for route in (vs.get("spec") or {}).get("http") or []:
        for destination in route.get("route") or []:
            host = (destination.get("destination") or {}).get("host")
            if host:
                return str(host).split(".")[0]
    raise InvalidArgument(
        f"virtual service {vs['metadata'].get('namespace')}/{vs['metadata']['name']} has no "
        "HTTP route with a destination to fault; pick a VirtualService with http routes"
    )


def scaffold(vs: dict[str, Any], fault: str) -> dict[str, Any]:
    """The experiment (a JSON object) for a VirtualService read from the API."""
    if fault not in FAULTS:
        raise InvalidArgument(f"fault must be 'delay' or 'abort', got {fault!r}")
    name = str(vs["metadata"]["name"])
    namespace = str(vs["metadata"].get("namespace", "default"))
    service = _service(vs)
    routes = [r.get("name") for r in (vs.get("spec") or {}).get("http") or []]
    target: dict[str, Any] = {"virtual_service": "${virtual_service}", "namespace": "${namespace}"}
    if routes and all(routes):
        target["routes"] = routes
    if fault == "delay":
        inject = _python(
            "action",
            f"delay-tagged-requests-to-{name}",
            _ACTIONS,
            "inject_delay",
            **target,
            delay="${delay}",
            percentage=100,
            ttl="10m",
        )
        knob = {"delay": _env("CHAOSMESH_DELAY", "1500ms")}
        what = "a ${delay} delay"
    else:
        inject = _python(
            "action",
            f"abort-tagged-requests-to-{name}",
            _ACTIONS,
            "inject_abort",
            **target,
            status="${abort_status}",
            percentage=100,
            ttl="10m",
        )
        knob = {"abort_status": _env("CHAOSMESH_ABORT_STATUS", "503", "int")}
        what = "an HTTP ${abort_status} abort"
    inject["pauses"] = {"after": "${fault_seconds}"}
    window = {"window": "${measure_window}"}
    remove = {"virtual_service": "${virtual_service}", "namespace": "${namespace}"}
    no_chaos_route = _python(
        "probe",
        f"no-chaos-route-on-{name}",
        _PROBES,
        "active_fault_count",
        0,
        virtual_service="${virtual_service}",
        namespace="${namespace}",
    )
    return {
        "version": "1.0.0",
        "title": f"Only tagged requests feel {what} on {name}, and real users do not",
        "description": (
            f"Scaffolded by chaosmesh-istio init for the VirtualService {namespace}/{name}. "
            "Locust sends control users (no chaos header) and experiment users (the run's "
            f"x-chaos-run header) to the entry point; a header-scoped {fault} is injected on "
            f"{name}'s HTTP routes, so only the experiment group is hurt. fault_fired proves "
            "the fault hit tagged traffic; the control group's success rate is a safeguard. "
            "Edit the configuration (or the CHAOSMESH_* variables) to fit your service."
        ),
        "tags": ["istio", fault, "header-scoped", "load", "scaffolded"],
        "configuration": {
            "ingress_url": _env("CHAOSMESH_INGRESS_URL", "http://127.0.0.1:8080"),
            "entry_path": _env("CHAOSMESH_ENTRY_PATH", "/"),
            "prometheus_url": _env("CHAOSMESH_PROMETHEUS_URL", "http://127.0.0.1:9090"),
            "namespace": _env("CHAOSMESH_NAMESPACE", namespace),
            "virtual_service": _env("CHAOSMESH_VIRTUAL_SERVICE", name),
            "service": _env("CHAOSMESH_SERVICE", service),
            "load_users": _env("CHAOSMESH_LOAD_USERS", "10", "int"),
            "load_duration": _env("CHAOSMESH_LOAD_DURATION", "45s"),
            "baseline_seconds": _env("CHAOSMESH_BASELINE_SECONDS", "5", "float"),
            "fault_seconds": _env("CHAOSMESH_FAULT_SECONDS", "20", "float"),
            "measure_window": _env("CHAOSMESH_MEASURE_WINDOW", "15s"),
            **knob,
        },
        "steady-state-hypothesis": {
            "title": f"No chaos route is left on {name} and the entry point answers",
            "probes": [
                no_chaos_route,
                {
                    "type": "probe",
                    "name": "entry-point-answers",
                    "tolerance": 200,
                    "provider": {
                        "type": "http",
                        "url": "${ingress_url}${entry_path}",
                        "headers": {"x-chaos-group": "control"},
                        "timeout": 10,
                    },
                },
            ],
        },
        "method": [
            {
                **_python(
                    "action",
                    "start-load",
                    _ACTIONS,
                    "start_load",
                    host="${ingress_url}",
                    users="${load_users}",
                    spawn_rate=10,
                    duration="${load_duration}",
                    experiment_ratio=0.5,
                    paths=[{"path": "${entry_path}"}],
                ),
                "pauses": {"after": "${baseline_seconds}"},
            },
            inject,
            _python(
                "probe",
                "fault-fired-for-experiment-group",
                _PROBES,
                "fault_fired",
                destination_service="${service}",
                group="experiment",
                window="1m",
                wait="20s",
            ),
            _python(
                "probe",
                "experiment-success-rate",
                _PROBES,
                "load_success_rate",
                group="experiment",
                **window,
            ),
            _python(
                "probe",
                "experiment-p95-latency-ms",
                _PROBES,
                "load_latency_quantile",
                group="experiment",
                quantile=0.95,
                **window,
            ),
            _python(
                "probe",
                "control-success-rate",
                _PROBES,
                "load_success_rate",
                group="control",
                **window,
            ),
            _python(
                "probe",
                "control-p95-latency-ms",
                _PROBES,
                "load_latency_quantile",
                group="control",
                quantile=0.95,
                **window,
            ),
            _python("action", f"remove-the-{fault}", _ACTIONS, "remove_faults", **remove),
            _python("action", "stop-load", _ACTIONS, "stop_load"),
        ],
        "rollbacks": [
            _python(
                "action",
                f"remove-the-{fault}-whatever-happened",
                _ACTIONS,
                "remove_faults",
                **remove,
            ),
            _python("action", "stop-load-whatever-happened", _ACTIONS, "stop_load"),
        ],
        "controls": [
            {
                "name": "chaosmesh",
                "provider": {
                    "type": "python",
                    "module": CONTROL_MODULE,
                    "arguments": {
                        "safeguards": [
                            _python(
                                "probe",
                                "control-group-healthy",
                                _PROBES,
                                "load_success_rate",
                                {"type": "range", "range": [0.95, 1.0]},
                                group="control",
                                window="5s",
                            )
                        ],
                        "interval": 1,
                    },
                },
            }
        ],
    }


def write_experiment(virtual_service: str, namespace: str, out: Path | None, fault: str) -> Path:
    """Read the VirtualService, write its experiment to ``out`` (never over a file), check it."""
    if fault not in FAULTS:
        raise InvalidArgument(f"--fault must be 'delay' or 'abort', got {fault!r}")
    name, ns, _ = check_target(virtual_service, namespace, None, None)
    assert name is not None
    path = out if out is not None else Path(f"{name}-{fault}.json")
    if path.exists():
        raise InvalidArgument(
            f"{str(path)!r} already exists; choose another --out or remove it first"
        )
    try:
        vs = open_virtual_services().get(name, ns)
    except NotFound:
        raise InvalidArgument(
            f"virtual service {ns}/{name} was not found; list them with "
            f"'kubectl get virtualservices -n {ns}'"
        ) from None
    document = scaffold(vs, fault)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("x", encoding="utf-8") as stream:
        stream.write(json.dumps(document, indent=2) + "\n")
    try:
        load(path).ensure_valid()
    except InvalidArgument:
        path.unlink()
        raise
    return path
