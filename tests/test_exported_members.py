"""Every public name is exported on purpose, and `chaos discover` sees every activity."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import chaosmesh_istio
from chaosmesh_istio import actions, probes


def test_every_module_declares_all_and_exports_what_exists() -> None:
    for found in pkgutil.walk_packages(chaosmesh_istio.__path__, "chaosmesh_istio."):
        if found.name.endswith("__main__"):
            continue
        module = importlib.import_module(found.name)
        assert hasattr(module, "__all__"), f"{found.name} has no __all__"
        for name in module.__all__:
            assert hasattr(module, name), f"{found.name}.__all__ names missing {name!r}"


ACTIONS = {
    "inject_abort",
    "inject_delay",
    "inject_fault",
    "remove_faults",
    "start_load",
    "stop_load",
}
PROBES = {
    "active_fault_count",
    "active_faults",
    "error_rate",
    "fault_fired",
    "fault_injected_requests",
    "latency_quantile",
    "load_latency_quantile",
    "load_request_rate",
    "load_stats",
    "load_success_rate",
    "prometheus_query",
    "request_rate",
    "route_timeout",
    "success_rate",
}


def test_the_activity_lists_are_the_published_ones() -> None:
    # Experiments name these functions: adding, renaming or removing one is deliberate.
    assert set(actions.__all__) == ACTIONS
    assert set(probes.__all__) == PROBES


def test_actions_and_probes_export_exactly_their_activities() -> None:
    for module in (actions, probes):
        defined_here = {
            name
            for name, value in vars(module).items()
            if inspect.isfunction(value)
            and value.__module__ == module.__name__
            and not name.startswith("_")
            and "configuration" in inspect.signature(value).parameters
        }
        assert defined_here <= set(module.__all__), module.__name__
        for name in module.__all__:
            params = list(inspect.signature(getattr(module, name)).parameters)
            assert params[-2:] == ["configuration", "secrets"], f"{module.__name__}.{name}"


def test_discover_lists_every_activity_with_its_documentation() -> None:
    discovery = chaosmesh_istio.discover()
    found = {(a["type"], a["name"]): a for a in discovery["activities"]}
    expected = {("action", n) for n in actions.__all__} | {("probe", n) for n in probes.__all__}
    assert set(found) == expected
    for activity in found.values():
        assert activity["doc"] and len(activity["doc"]) > 40, activity["name"]
        names = [arg["name"] for arg in activity["arguments"]]
        assert names[-2:] == ["configuration", "secrets"], activity["name"]
