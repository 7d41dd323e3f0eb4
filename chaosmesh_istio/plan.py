"""The dry run: what a run of an experiment would do, and the exact VirtualService diffs.

Nothing is written: the injections are computed by the actions themselves with
``dry_run=True`` (which reads the VirtualServices and validates every argument), the load
shape by ``start_load``'s own argument checks. Other activities are only described.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

from chaoslib import substitute

from chaosmesh_istio import settings
from chaosmesh_istio.errors import InvalidArgument, NotFound
from chaosmesh_istio.experiment import Experiment, Step, call_arguments
from chaosmesh_istio.load import start_load
from chaosmesh_istio.load_args import plan_load
from chaosmesh_istio.report.environment import redact

__all__ = ["INJECTORS", "load_plan", "print_plan"]

INJECTORS = ("inject_fault", "inject_delay", "inject_abort")
_PHASE_TITLES = {
    "hypothesis": "steady-state hypothesis (checked before and after the method)",
    "method": "method",
    "rollbacks": "rollbacks (run whatever happens)",
}

Out = Callable[[str], None]


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "), default=str)


def _call(step: Step, arguments: Mapping[str, Any]) -> str:
    shown = ", ".join(
        f"{k}={_compact(v)}" for k, v in arguments.items() if k not in ("configuration", "secrets")
    )
    provider = step.provider
    return f"{provider.get('module')}.{provider.get('func')}({shown})"


def load_plan(arguments: Mapping[str, Any], configuration: Mapping[str, Any]) -> dict[str, Any]:
    """The load ``start_load`` would start, from its own validation (nothing starts)."""
    bound = inspect.signature(start_load).bind(**arguments)
    bound.apply_defaults()
    given = {k: v for k, v in bound.arguments.items() if k not in ("configuration", "secrets")}
    plan = plan_load(settings.run_id(configuration), configuration, **given)
    return {
        "host": plan.host,
        "users": plan.users,
        "control_users": plan.control,
        "experiment_users": plan.experiment,
        "spawn_rate": plan.spawn_rate,
        "duration_s": plan.duration_s,
        "target_rps": given.get("target_rps"),
        "paths": [p.get("path") for p in plan.paths],
        "workers": plan.workers,
        "master_url": plan.master_url,
        "scope_header": plan.scope_header,
    }


def _describe_load(shape: Mapping[str, Any]) -> str:
    ratio = shape["experiment_users"] / shape["users"]
    rps = f", target {shape['target_rps']:g} rps in total" if shape["target_rps"] else ""
    where = f" through the master at {shape['master_url']}" if shape["master_url"] else ""
    workers = f" on {shape['workers']} workers" if shape["workers"] else ""
    return (
        f"start Locust against {shape['host']}{where}{workers}: {shape['users']} users "
        f"({shape['control_users']} control, {shape['experiment_users']} experiment: "
        f"ratio {ratio:.2f}), spawn {shape['spawn_rate']:g}/s, for {shape['duration_s']} s"
        f"{rps}, paths {', '.join(str(p) for p in shape['paths'])}"
    )


def _describe_injection(result: Mapping[str, Any]) -> str:
    scope = (
        "every request (unscoped)"
        if result["scope"] == "none"
        else f"requests with {result['header']}: {result['header_value']}"
    )
    skipped = f"; skips {len(result['skipped'])} route(s)" if result["skipped"] else ""
    return (
        f"inject {_compact(result['fault'])} into {', '.join(result['virtual_services'])} "
        f"routes {', '.join(result['routes'])} {result['selection']}, for {scope}, "
        f"expiring {result['expires']}{skipped}"
    )


def _describe_provider(step: Step, configuration: Mapping[str, Any], secrets: Any) -> str:
    provider = dict(substitute(dict(step.provider), configuration, secrets) or {})
    kind = provider.get("type")
    if kind == "http":
        method = str(provider.get("method", "GET")).upper()
        return f"HTTP {method} {provider.get('url')}"
    if kind == "process":
        return f"run {provider.get('path')} {provider.get('arguments') or ''}".rstrip()
    if kind == "python":
        return _call(step, provider.get("arguments") or {})
    return f"a {kind!r} provider"


def _pauses(step: Step, configuration: Mapping[str, Any], secrets: Any) -> str:
    pauses = substitute(dict(step.activity.get("pauses") or {}), configuration, secrets) or {}
    parts = [f"pause {pauses[k]} s {k}" for k in ("before", "after") if pauses.get(k)]
    return f" ({', '.join(parts)})" if parts else ""


def _step_lines(
    step: Step, configuration: Mapping[str, Any], secrets: Mapping[str, Any]
) -> list[str]:
    kind = step.activity.get("type", "?")
    head = f"{kind} {step.name!r}: "
    tolerance = step.activity.get("tolerance")
    tail = f"; tolerance {_compact(tolerance)}" if "tolerance" in step.activity else ""
    tail += " (in the background)" if step.activity.get("background") else ""
    tail += _pauses(step, configuration, secrets)
    if step.is_ours(*INJECTORS):
        func, arguments = call_arguments(step, configuration, secrets)
        result = func(**{**arguments, "dry_run": True})
        diff = str(result.get("diff") or "(no change)").rstrip("\n")
        return [head + _describe_injection(result) + tail, *diff.splitlines()]
    if step.is_ours("start_load"):
        _, arguments = call_arguments(step, configuration, secrets)
        return [head + _describe_load(load_plan(arguments, configuration)) + tail]
    if step.is_ours("remove_faults"):
        _, arguments = call_arguments(step, configuration, secrets)
        target = arguments.get("virtual_service") or arguments.get("label_selector") or "every"
        namespace = arguments.get("namespace", "default")
        return [head + f"remove this run's chaos routes from {target} in {namespace}, "
                "then read back to verify" + tail]  # fmt: skip
    return [head + _describe_provider(step, configuration, secrets) + tail]


def _safeguards(experiment: Experiment, out: Out) -> None:
    controls = experiment.controls()
    if not controls:
        out("safeguards: none declared (run adds the chaosmesh control: faults are removed")
        out("  after the run whatever happens, and the report is written)")
        return
    arguments = dict((controls[0].get("provider") or {}).get("arguments") or {})
    guards = arguments.get("safeguards") or []
    if not guards:
        out("safeguards: none declared (the chaosmesh control still removes every fault)")
        return
    out(f"safeguards (polled every {arguments.get('interval', 1)} s while the method runs):")
    for guard in guards:
        step = Step("safeguards", guard)
        out(f"  {step.name!r}: {_describe_provider(step, {}, {})}; "
            f"tolerance {_compact(guard.get('tolerance'))}")  # fmt: skip


def print_plan(experiment: Experiment, out: Out = print) -> None:
    """Print what a run would do, step by step, with every injection's diff."""
    configuration, secrets = experiment.resolve()
    rid = settings.run_id(configuration)
    shown = ", ".join(f"{k}={_compact(v)}" for k, v in sorted(redact(configuration).items()))
    head = [
        f"dry run of {experiment.title!r} ({experiment.path}): nothing is written",
        f"run id: {rid}",
        f"configuration: {shown or 'none'}",
    ]
    lines = head
    phase = None
    number = 0
    for step in experiment.steps():
        if step.phase != phase:
            phase, number = step.phase, 0
            lines.append(f"{_PHASE_TITLES[phase]}:")
        number += 1
        try:
            first, *rest = _step_lines(step, configuration, secrets)
        except (InvalidArgument, NotFound) as exc:
            raise InvalidArgument(f"activity {step.name!r}: {exc}") from None
        lines.append(f"  {number}. {first}")
        lines += [f"       {line}" for line in rest]
    # Printed once every step could be planned: no half plan before an error.
    for line in lines:
        out(line)
    _safeguards(experiment, out)
