"""``chaosmesh-istio validate``: can this experiment run here? Nothing is written.

Four checks, in order, each printed as one line (``ok``, ``FAILED: reason`` or
``skipped: reason``):

1. the experiment: Chaos Toolkit's schema, then our activities' arguments (the
   injections computed with ``dry_run=True``, the load with ``start_load``'s checks);
2. the targets: every VirtualService the injections name exists and can carry the fault;
3. the permissions: SelfSubjectAccessReviews for get and patch (and list when a selector
   or a whole namespace is targeted) on virtualservices.networking.istio.io in each
   target namespace, with the credentials the actions use;
4. header propagation (see ``propagation``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chaosmesh_istio.errors import ChaosMeshIstioError, InvalidArgument, KubeError, TargetError
from chaosmesh_istio.experiment import Experiment, Step, call_arguments
from chaosmesh_istio.kube import GROUP, PLURAL, open_virtual_services
from chaosmesh_istio.plan import INJECTORS, load_plan
from chaosmesh_istio.propagation import check_propagation

__all__ = ["Check", "Targets", "check_permissions", "validate"]

Out = Callable[[str], None]


@dataclass(frozen=True)
class Check:
    """The outcome of one check: ``ok`` True, False (failed) or None (skipped)."""

    name: str
    ok: bool | None
    detail: str

    def line(self) -> str:
        state = "ok" if self.ok else "FAILED" if self.ok is False else "skipped"
        return f"{self.name}: {state}{': ' if self.detail else ''}{self.detail}"


@dataclass
class Targets:
    """What the injections would touch, as computed by the actions' dry runs."""

    injections: list[tuple[Step, dict[str, Any]]] = field(default_factory=list)
    errors: list[tuple[Step, ChaosMeshIstioError]] = field(default_factory=list)
    namespaces: dict[str, set[str]] = field(default_factory=dict)

    def need(self, namespace: str, *verbs: str) -> None:
        self.namespaces.setdefault(namespace, set()).update(verbs)


def _check_arguments(
    experiment: Experiment, configuration: Mapping[str, Any], secrets: Mapping[str, Any]
) -> tuple[str, Targets]:
    """Validate our activities' arguments; the dry runs also read the targets."""
    targets = Targets()
    counted = {"injection": 0, "load": 0, "removal": 0}
    for step in experiment.steps():
        if not step.is_ours():
            continue
        try:
            func, arguments = call_arguments(step, configuration, secrets)
            if step.is_ours(*INJECTORS):
                counted["injection"] += 1
                namespace = str(arguments.get("namespace", "default"))
                targets.need(namespace, "get", "patch")
                if arguments.get("virtual_service") is None:
                    targets.need(namespace, "list")
                try:
                    targets.injections.append((step, func(**{**arguments, "dry_run": True})))
                except (KubeError, TargetError) as exc:
                    targets.errors.append((step, exc))
            elif step.is_ours("start_load"):
                counted["load"] += 1
                load_plan(arguments, configuration)
            elif step.is_ours("remove_faults"):
                counted["removal"] += 1
                namespace = str(arguments.get("namespace", "default"))
                targets.need(namespace, "get", "patch")
                if arguments.get("virtual_service") is None:
                    targets.need(namespace, "list")
        except (InvalidArgument, TypeError) as exc:
            raise InvalidArgument(f"activity {step.name!r}: {exc}") from None
    summary = ", ".join(f"{n} {what}{'' if n == 1 else 's'}" for what, n in counted.items())
    return summary, targets


def _check_targets(targets: Targets) -> Check:
    name = "targets"
    if targets.errors:
        step, exc = targets.errors[0]
        return Check(name, False, f"activity {step.name!r}: {exc}")
    if not targets.injections:
        return Check(name, None, "the experiment injects no fault")
    found = []
    for _, result in targets.injections:
        found += [
            f"{vs} ({sum(1 for f in result['faulted'] if f['virtual_service'] == vs)} route(s))"
            for vs in result["virtual_services"]
        ]
    return Check(name, True, "found " + ", ".join(dict.fromkeys(found)))


def check_permissions(
    namespaces: Mapping[str, set[str]],
    configuration: Mapping[str, Any],
    secrets: Mapping[str, Any],
) -> Check:
    """SelfSubjectAccessReviews for each namespace and verb, with the actions' credentials."""
    name = "permissions"
    if not namespaces:
        return Check(name, None, "the experiment touches no VirtualService")
    vs = open_virtual_services(configuration, secrets)
    api = client.AuthorizationV1Api(vs.api)
    denied, granted = [], []
    for namespace, verbs in sorted(namespaces.items()):
        for verb in sorted(verbs):
            body = client.V1SelfSubjectAccessReview(
                spec=client.V1SelfSubjectAccessReviewSpec(
                    resource_attributes=client.V1ResourceAttributes(
                        group=GROUP, resource=PLURAL, verb=verb, namespace=namespace
                    )
                )
            )
            where = f"{verb} {PLURAL}.{GROUP} in namespace {namespace!r}"
            try:
                answer = api.create_self_subject_access_review(body, _request_timeout=vs.timeout)
            except ApiException as exc:
                return Check(
                    name, False, f"the API server refused to review {where} (HTTP {exc.status})"
                )
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                return Check(
                    name,
                    False,
                    f"the Kubernetes API at {vs.api.configuration.host} is unreachable "
                    f"({type(exc).__name__}); check the kubeconfig and that the API server is up",
                )
            status = answer.status
            if status is not None and status.allowed:
                granted.append(f"{verb} in {namespace}")
            else:
                reason = (status.reason if status is not None else None) or "no reason given"
                denied.append(f"{where} is not allowed ({reason})")
    if denied:
        return Check(name, False, "; ".join(denied))
    return Check(name, True, f"allowed to {', '.join(granted)}")


def validate(experiment: Experiment, out: Out = print, timeout: float = 15.0) -> list[Check]:
    """Run the checks in order, printing each; the checks that cannot run are skipped."""
    checks: list[Check] = []

    def report(check: Check) -> None:
        checks.append(check)
        out(check.line())

    try:
        experiment.ensure_valid()
        configuration, secrets = experiment.resolve()
        summary, targets = _check_arguments(experiment, configuration, secrets)
    except InvalidArgument as exc:
        report(Check("experiment", False, str(exc)))
        for later in ("targets", "permissions", "header propagation"):
            report(Check(later, None, "the experiment is not valid"))
        return checks
    report(Check("experiment", True, f"Chaos Toolkit schema and arguments ({summary})"))
    report(_check_targets(targets))
    try:
        report(check_permissions(targets.namespaces, configuration, secrets))
    except KubeError as exc:
        report(Check("permissions", False, str(exc)))
    if not targets.injections:
        reason = "no target was found" if targets.errors else "the experiment injects no fault"
        report(Check("header propagation", None, reason))
        return checks
    ok, detail = check_propagation(
        experiment, configuration, secrets, [r for _, r in targets.injections], timeout
    )
    report(Check("header propagation", ok, detail))
    return checks
