"""The deployment manifests, the image and the CI gate examples, checked offline.

- Every Kubernetes object of ``deploy/*.yaml`` is valid against the official OpenAPI
  schemas that kubernetes-validate bundles, in strict mode (an unknown field fails), for
  the oldest Kubernetes version we support and the newest one it knows.
- The Istio objects (``deploy/telemetry.yaml``, the VirtualServices of the local mesh's
  ``sample.yaml``, and VirtualServices carrying our injected faults) are valid against
  Istio's CRD schemas vendored in ``tests/data/istio-crds.yaml``. Unknown fields fail, as
  they do under ``kubectl apply``'s strict field validation; the CEL rules
  (``x-kubernetes-validations``) are not evaluated.
- The Telemetry's tag expression is evaluated as CEL (cel-python) on sample headers.
- The manifests keep their promises: least-privilege RBAC that matches what each
  CronJob does, Forbid and bounded CronJobs, non-root read-only containers, images pinned
  to the project's version, command lines the CLI accepts, a game-day experiment that
  Chaos Toolkit accepts, a Locust master and worker that ``start_load(master_url=...)``
  drives (run for real on 127.0.0.1), and ``kubectl kustomize`` builds them.
- The Dockerfile and ``.dockerignore`` are linted by parsing them.
- The CI gate examples parse, publish ``junit.xml``, and their exit-code mapping is run
  with a stub ``chaosmesh-istio``.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import celpy
import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import requests
import yaml
from celpy.adapter import json_to_cel
from chaoslib.exceptions import ChaosException
from chaoslib.experiment import ensure_experiment_is_valid
from referencing import Registry, Resource

from chaosmesh_istio import faults, load
from chaosmesh_istio.cli import build_parser
from chaosmesh_istio.metrics import DEFAULT_GROUP_LABEL
from chaosmesh_istio.scoping import make_scope
from chaosmesh_istio.spec import make_fault, make_selection

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
ISTIO_CRDS = Path(__file__).resolve().parent / "data" / "istio-crds.yaml"
SAMPLE = ROOT / "chaosmesh_istio" / "localmesh" / "data" / "sample.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CI_DOC = ROOT / "docs" / "ci-gate.md"
GITHUB = ROOT / "docs" / "ci" / "github-actions.yml"
GITLAB = ROOT / "docs" / "ci" / "gitlab-ci.yml"

#: The oldest Kubernetes we support, and the newest whose schemas the package ships.
K8S_VERSIONS = ("1.29", str(kubernetes_validate.latest_version()))
#: cleanup-all-namespaces.yaml replaces cleanup-cronjob.yaml; it is not applied by default.
ALTERNATIVES = {"cleanup-all-namespaces.yaml"}
#: Exactly what chaosmesh_istio/kube.py calls on VirtualServices (no watch, no create).
RUNNER_VERBS = {"get", "list", "patch"}
WORKLOAD_KINDS = {"CronJob", "Deployment"}

Obj = dict[str, Any]


# -- loading ---------------------------------------------------------------------------


def _documents(path: Path) -> list[Obj]:
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def _manifests() -> list[Path]:
    return sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")


def _ref(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['kind']}/{where}{meta.get('name')}"


@cache
def _objects() -> tuple[tuple[str, str, Obj], ...]:
    """(file name, object reference, object) of every object in deploy/*.yaml."""
    return tuple((p.name, _ref(o), o) for p in _manifests() for o in _documents(p))


def _is_istio(obj: Obj) -> bool:
    return str(obj["apiVersion"]).split("/")[0].endswith(".istio.io")


def _kube_objects() -> list[Any]:
    return [
        pytest.param(obj, version, id=f"{ref}@{version}")
        for _, ref, obj in _objects()
        if not _is_istio(obj)
        for version in K8S_VERSIONS
    ]


def _of_kind(*kinds: str) -> list[Obj]:
    return [obj for _, _, obj in _objects() if obj["kind"] in kinds]


def _named(kind: str, name: str, namespace: str | None = None) -> Obj:
    for obj in _of_kind(kind):
        meta = obj["metadata"]
        if meta["name"] == name and meta.get("namespace") == namespace:
            return obj
    raise AssertionError(f"deploy/ has no {kind} {namespace}/{name}")


def _template(workload: Obj) -> Obj:
    """The pod template of a CronJob or a Deployment."""
    owner = (
        workload["spec"]["jobTemplate"]["spec"]
        if workload["kind"] == "CronJob"
        else workload["spec"]
    )
    template: Obj = owner["template"]
    return template


def _pod_spec(workload: Obj) -> Obj:
    spec: Obj = _template(workload)["spec"]
    return spec


def _pod_labels(workload: Obj) -> dict[str, str]:
    labels: dict[str, str] = _template(workload)["metadata"]["labels"]
    return labels


def _workloads() -> list[Any]:
    return [pytest.param(obj, id=_ref(obj)) for obj in _of_kind(*WORKLOAD_KINDS)]


def _env(container: Obj) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env") or []}


def _project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as stream:
        return str(tomllib.load(stream)["project"]["version"])


# -- Istio CRD schemas -----------------------------------------------------------------

#: ObjectMeta from the Kubernetes definitions that kubernetes-validate ships.
_OBJECT_META = (
    "https://kubernetes.io/api/_definitions.json"
    "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
)


def _json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI v3 structural schema of a CRD as a JSON Schema that refuses unknown fields.

    ``nullable`` becomes a "null" type; an object that neither lists
    ``additionalProperties`` nor preserves unknown fields gets ``additionalProperties:
    false`` (the API server would prune or, with strict field validation, refuse such a
    field); other ``x-kubernetes-*`` extensions are dropped.
    """
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: _json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = _json_schema(value)
        elif key in ("oneOf", "anyOf", "allOf"):
            out[key] = [_json_schema(sub) for sub in value]
        elif not key.startswith("x-kubernetes-") and key not in ("nullable", "description"):
            out[key] = value
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        out.get("type") == "object"
        and "additionalProperties" not in out
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def _kubernetes_definitions() -> Registry:
    """The registry holding kubernetes-validate's strict definitions (for ObjectMeta)."""
    folder = f"v{kubernetes_validate.latest_version()}-local-strict"
    path = resources.files("kubernetes_validate") / "kubernetes-json-schema" / folder
    definitions = json.loads((path / "_definitions.json").read_text(encoding="utf-8"))
    registry: Registry = Resource.from_contents(definitions) @ Registry()
    return registry


@cache
def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) to the JSON Schema of a whole object, from the vendored CRDs."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for crd in _documents(ISTIO_CRDS):
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            api_version = f"{group}/{version['name']}"
            body = _json_schema(version["schema"]["openAPIV3Schema"])
            body["properties"] = {
                "apiVersion": {"const": api_version},
                "kind": {"const": kind},
                "metadata": {"$ref": _OBJECT_META},
                **body["properties"],
            }
            body["required"] = sorted({"apiVersion", "kind", "metadata", *body.get("required", [])})
            body["additionalProperties"] = False
            schemas[(api_version, kind)] = body
    return schemas


def _validate_istio(obj: Obj) -> None:
    schema = _crd_schemas().get((obj.get("apiVersion", ""), obj.get("kind", "")))
    if schema is None:
        raise AssertionError(
            f"no vendored CRD schema for {obj.get('apiVersion')!r} {obj.get('kind')!r}; "
            f"add its CRD to {ISTIO_CRDS.name}"
        )
    validator = jsonschema.Draft202012Validator(schema, registry=_kubernetes_definitions())
    validator.validate(obj)


def _istio_objects() -> list[Any]:
    in_deploy = [pytest.param(obj, id=ref) for _, ref, obj in _objects() if _is_istio(obj)]
    samples = [
        pytest.param(obj, id=f"sample.yaml:{_ref(obj)}")
        for obj in _documents(SAMPLE)
        if obj["kind"] == "VirtualService"
    ]
    return in_deploy + samples


# -- schema validation -----------------------------------------------------------------


@pytest.mark.parametrize(("obj", "version"), _kube_objects())
def test_kubernetes_objects_match_the_official_schemas(obj: Obj, version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


def _readme_objects() -> list[Any]:
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    objects = [doc for block in blocks for doc in yaml.safe_load_all(block) if doc]
    assert objects, "deploy/README.md shows no manifest"
    return [pytest.param(obj, id=f"README.md:{_ref(obj)}") for obj in objects]


@pytest.mark.parametrize("obj", _readme_objects())
def test_manifests_shown_in_the_readme_match_the_official_schemas(obj: Obj) -> None:
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_vendored_crd_schemas_are_json_schemas() -> None:
    assert set(_crd_schemas()) == {
        ("telemetry.istio.io/v1", "Telemetry"),
        ("networking.istio.io/v1", "VirtualService"),
    }
    for schema in _crd_schemas().values():
        jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("obj", _istio_objects())
def test_istio_objects_match_the_vendored_crd_schemas(obj: Obj) -> None:
    _validate_istio(obj)


MARKER = faults.Marker("deploy-1", "sre@host", "2026-01-01T00:00:00Z", "2026-01-01T00:15:00Z")


@pytest.mark.parametrize(
    ("fault", "scope"),
    [
        pytest.param({"abort_status": 503}, {}, id="abort-header-exact"),
        pytest.param(
            {
                "delay": "1500ms",
                "delay_percentage": 50.0,
                "abort_status": 503,
                "abort_percentage": 5,
            },
            {"header_match": "prefix", "header": "x-test"},
            id="delay-and-abort-header-prefix",
        ),
        pytest.param({"abort_grpc_status": "UNAVAILABLE"}, {"header_match": "regex"}, id="grpc"),
        pytest.param({"delay": "2s"}, {"scope": "baggage"}, id="delay-baggage"),
    ],
)
def test_virtual_services_with_our_faults_match_the_crd_schema(
    fault: dict[str, Any], scope: dict[str, Any]
) -> None:
    for vs in (o for o in _documents(SAMPLE) if o["kind"] == "VirtualService"):
        injected = faults.inject(
            vs, make_fault(**fault), make_scope("deploy-1", **scope), make_selection(), MARKER
        )
        assert injected.faulted
        _validate_istio(injected.virtual_service)


def _cronjob_typo(obj: Obj) -> None:
    obj["spec"]["concurencyPolicy"] = obj["spec"].pop("concurrencyPolicy")


def _backoff_as_text(obj: Obj) -> None:
    obj["spec"]["jobTemplate"]["spec"]["backoffLimit"] = "zero"


def _container_typo(obj: Obj) -> None:
    container = _pod_spec(obj)["containers"][0]
    container["imagePullpolicy"] = container.pop("imagePullPolicy")


def _non_root_as_text(obj: Obj) -> None:
    _pod_spec(obj)["securityContext"]["runAsNonRoot"] = "yes"


def _metadata_typo(obj: Obj) -> None:
    obj["metadata"]["label"] = obj["metadata"].pop("labels")


@pytest.mark.parametrize(
    "break_it",
    [_cronjob_typo, _backoff_as_text, _container_typo, _non_root_as_text, _metadata_typo],
)
def test_a_typo_or_a_wrong_type_fails_kubernetes_validation(
    break_it: Callable[[Obj], None],
) -> None:
    broken = copy.deepcopy(_named("CronJob", "chaosmesh-istio-gameday", "chaosmesh-istio"))
    kubernetes_validate.validate(copy.deepcopy(broken), K8S_VERSIONS[0], strict=True)
    break_it(broken)
    for version in K8S_VERSIONS:
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, version, strict=True)


def _telemetry_typo(obj: Obj) -> None:
    override = obj["spec"]["metrics"][0]["overrides"][0]
    override["tagOverride"] = override.pop("tagOverrides")


def _telemetry_bad_mode(obj: Obj) -> None:
    obj["spec"]["metrics"][0]["overrides"][0]["match"]["mode"] = "BOTH"


def _telemetry_bad_metric(obj: Obj) -> None:
    obj["spec"]["metrics"][0]["overrides"][0]["match"]["metric"] = "REQUESTS_TOTAL"


def _telemetry_tag_unknown_field(obj: Obj) -> None:
    obj["spec"]["metrics"][0]["overrides"][0]["tagOverrides"]["chaos_group"]["default"] = "x"


def _telemetry_top_level_typo(obj: Obj) -> None:
    obj["specs"] = obj.pop("spec")


def _telemetry_metadata_typo(obj: Obj) -> None:
    obj["metadata"]["namepsace"] = obj["metadata"].pop("namespace")


@pytest.mark.parametrize(
    "break_it",
    [
        _telemetry_typo,
        _telemetry_bad_mode,
        _telemetry_bad_metric,
        _telemetry_tag_unknown_field,
        _telemetry_top_level_typo,
        _telemetry_metadata_typo,
    ],
)
def test_a_typo_or_a_wrong_value_fails_telemetry_validation(
    break_it: Callable[[Obj], None],
) -> None:
    broken = copy.deepcopy(_named("Telemetry", "chaosmesh-chaos-group", "istio-system"))
    _validate_istio(broken)
    break_it(broken)
    with pytest.raises(jsonschema.ValidationError):
        _validate_istio(broken)


def _vs_route_typo(vs: Obj) -> None:
    vs["spec"]["http"][0]["retry"] = {"attempts": 3}


def _vs_status_as_text(vs: Obj) -> None:
    vs["spec"]["http"][0]["fault"] = {"abort": {"httpStatus": "503"}}


def _vs_two_abort_kinds(vs: Obj) -> None:
    vs["spec"]["http"][0]["fault"] = {"abort": {"httpStatus": 503, "grpcStatus": "UNAVAILABLE"}}


def _vs_header_match_typo(vs: Obj) -> None:
    vs["spec"]["http"][0]["match"] = [{"headers": {"x-chaos-run": {"exakt": "run"}}}]


def _vs_hosts_as_text(vs: Obj) -> None:
    vs["spec"]["hosts"] = "reviews"


@pytest.mark.parametrize(
    "break_it",
    [
        _vs_route_typo,
        _vs_status_as_text,
        _vs_two_abort_kinds,
        _vs_header_match_typo,
        _vs_hosts_as_text,
    ],
)
def test_a_typo_or_a_wrong_type_fails_virtual_service_validation(
    break_it: Callable[[Obj], None],
) -> None:
    broken = next(o for o in _documents(SAMPLE) if o["kind"] == "VirtualService")
    _validate_istio(broken)
    break_it(broken)
    with pytest.raises(jsonschema.ValidationError):
        _validate_istio(broken)


def test_every_manifest_is_in_the_kustomization() -> None:
    kustomization = _documents(DEPLOY / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    assert all((DEPLOY / name).is_file() for name in listed)
    assert listed == {p.name for p in _manifests()} - ALTERNATIVES
    assert kustomization["images"] == [
        {
            "name": "registry.example.com/chaosmesh-istio",
            "newName": "registry.example.com/chaosmesh-istio",
            "newTag": _project_version(),
        }
    ]


@pytest.mark.kubectl
def test_kustomize_builds_the_listed_manifests_and_retargets_the_image(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH")
    # An overlay pointing the image at another registry, as a user's would.
    overlay = {
        "resources": [os.path.relpath(DEPLOY, tmp_path)],
        "images": [
            {
                "name": "registry.example.com/chaosmesh-istio",
                "newName": "ghcr.io/acme/chaosmesh-istio",
                "newTag": "9.9.9",
            }
        ],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay), encoding="utf-8")
    built = subprocess.run(
        [kubectl, "kustomize", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    objects = [doc for doc in yaml.safe_load_all(built) if doc]
    listed = _documents(DEPLOY / "kustomization.yaml")[0]["resources"]
    assert sorted(_ref(o) for o in objects) == sorted(
        _ref(o) for name in listed for o in _documents(DEPLOY / name)
    )
    images = {
        c["image"]
        for o in objects
        if o["kind"] in WORKLOAD_KINDS
        for c in _pod_spec(o)["containers"]
    }
    assert images == {"ghcr.io/acme/chaosmesh-istio:9.9.9"}


# -- RBAC ------------------------------------------------------------------------------


def test_roles_grant_only_get_list_patch_on_virtual_services() -> None:
    roles = _of_kind("Role", "ClusterRole")
    assert roles
    for role in roles:
        assert role["rules"], _ref(role)
        for rule in role["rules"]:
            # One rule, no wildcard, no other resource (secrets included), no other verb.
            assert rule == {
                "apiGroups": ["networking.istio.io"],
                "resources": ["virtualservices"],
                "verbs": ["get", "list", "patch"],
            }, _ref(role)


def _granted(service_account: Obj) -> dict[str | None, set[str]]:
    """Namespace (None: cluster-wide) to the verbs on virtualservices an account has."""
    name = service_account["metadata"]["name"]
    namespace = service_account["metadata"]["namespace"]
    granted: dict[str | None, set[str]] = {}
    for binding in _of_kind("RoleBinding", "ClusterRoleBinding"):
        subjects = binding["subjects"]
        if not any(
            s == {"kind": "ServiceAccount", "name": name, "namespace": namespace} for s in subjects
        ):
            continue
        role_ref = binding["roleRef"]
        where = binding["metadata"].get("namespace")
        role = _named(
            role_ref["kind"], role_ref["name"], where if role_ref["kind"] == "Role" else None
        )
        verbs = {v for rule in role["rules"] for v in rule["verbs"]}
        granted.setdefault(where, set()).update(verbs)
    return granted


def test_bindings_refer_to_roles_and_accounts_that_exist() -> None:
    for binding in _of_kind("RoleBinding", "ClusterRoleBinding"):
        role_ref = binding["roleRef"]
        assert role_ref["apiGroup"] == "rbac.authorization.k8s.io"
        where = binding["metadata"].get("namespace") if role_ref["kind"] == "Role" else None
        _named(role_ref["kind"], role_ref["name"], where)
        for subject in binding["subjects"]:
            _named("ServiceAccount", subject["name"], subject["namespace"])


@pytest.mark.parametrize("workload", _workloads())
def test_every_workload_has_exactly_the_api_access_it_needs(workload: Obj) -> None:
    pod = _pod_spec(workload)
    container = pod["containers"][0]
    args = container.get("args") or []
    if container.get("command"):
        # Locust sends no API requests: no token in the pod at all.
        assert pod["automountServiceAccountToken"] is False
        assert "serviceAccountName" not in pod
        return
    account = _named("ServiceAccount", pod["serviceAccountName"], workload["metadata"]["namespace"])
    granted = _granted(account)
    assert pod["automountServiceAccountToken"] is True
    assert _env(container)["CHAOSTOOLKIT_IN_POD"] == "true"
    if args[0] == "cleanup":
        if "--all-namespaces" in args or "-A" in args:
            assert granted == {None: RUNNER_VERBS}
        else:
            assert granted == {args[args.index("--namespace") + 1]: RUNNER_VERBS}
    else:
        assert args[0] == "run"
        allowed = _env(container)["CHAOSMESH_ALLOWED_NAMESPACES"].split(",")
        assert None not in granted, "the game-day runner needs no cluster-wide rights"
        assert all(granted.get(ns) == RUNNER_VERBS for ns in allowed)
        assert _env(container)["CHAOSMESH_NAMESPACE"] in allowed


# -- workloads -------------------------------------------------------------------------


def _parses(argv: list[str]) -> None:
    """``chaosmesh-istio ARGV`` is a command line the CLI accepts (it exits 64 otherwise)."""
    build_parser().parse_args(argv)


@pytest.mark.parametrize("workload", _workloads())
def test_the_cli_accepts_the_command_line_of_every_workload(workload: Obj) -> None:
    container = _pod_spec(workload)["containers"][0]
    if container.get("command") == ["locust"]:
        return  # checked by running it: test_the_locust_command_lines_...
    assert "command" not in container, "the image's entrypoint is chaosmesh-istio"
    _parses(container["args"])


def _cronjobs() -> list[Any]:
    return [pytest.param(obj, id=_ref(obj)) for obj in _of_kind("CronJob")]


@pytest.mark.parametrize("cronjob", _cronjobs())
def test_cronjobs_run_unattended_and_bounded(cronjob: Obj) -> None:
    spec = cronjob["spec"]
    job = spec["jobTemplate"]["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 < spec["startingDeadlineSeconds"] <= 600
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    assert job["backoffLimit"] == 0
    assert job["activeDeadlineSeconds"] > 0
    assert _pod_spec(cronjob)["restartPolicy"] == "Never"
    # A Job whose Istio sidecar keeps running never completes.
    assert _pod_labels(cronjob)["sidecar.istio.io/inject"] == "false"


@pytest.mark.parametrize("cronjob", _cronjobs())
def test_cleanup_cronjobs_remove_expired_faults_every_five_minutes(cronjob: Obj) -> None:
    args = _pod_spec(cronjob)["containers"][0]["args"]
    if args[0] != "cleanup":
        return
    assert args[:2] == ["cleanup", "--expired"]
    assert ("--namespace" in args) != ("--all-namespaces" in args)
    assert cronjob["spec"]["schedule"] == "*/5 * * * *"
    # Done (or stopped) before the next slot: Forbid would otherwise skip it.
    assert cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] < 300


@pytest.mark.parametrize("workload", _workloads())
def test_containers_run_as_non_root_on_a_read_only_root(workload: Obj) -> None:
    pod = _pod_spec(workload)
    uid = _dockerfile_user()[0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}
        tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
        assert "emptyDir" in volumes[tmp["name"]]
        assert container["workingDir"] == "/tmp"


@pytest.mark.parametrize("workload", _workloads())
def test_images_are_pinned_to_the_project_version(workload: Obj) -> None:
    for container in _pod_spec(workload)["containers"]:
        image = container["image"]
        assert image == f"registry.example.com/chaosmesh-istio:{_project_version()}"
        assert not image.endswith(":latest")
        assert container["imagePullPolicy"] == "IfNotPresent"


def _gameday() -> tuple[Obj, Obj]:
    cronjob = _named("CronJob", "chaosmesh-istio-gameday", "chaosmesh-istio")
    return cronjob, _pod_spec(cronjob)["containers"][0]


def test_gameday_runs_the_experiment_from_the_configmap_and_keeps_reports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cronjob, container = _gameday()
    pod = _pod_spec(cronjob)
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert container["args"][0] == "run"
    experiment_path = Path(container["args"][1])
    assert experiment_path.parent == Path("/experiments") and experiment_path.suffix == ".json"
    config_map_name = volumes[mounts["/experiments"]["name"]]["configMap"]["name"]
    config_map = _named("ConfigMap", config_map_name, "chaosmesh-istio")
    experiment = json.loads(config_map["data"][experiment_path.name])

    claim = volumes[mounts["/reports"]["name"]]["persistentVolumeClaim"]["claimName"]
    _named("PersistentVolumeClaim", claim, "chaosmesh-istio")
    env = _env(container)
    assert env["CHAOSMESH_REPORTS_DIR"] == "/reports"
    assert experiment["configuration"]["chaosmesh_reports_dir"]["key"] == "CHAOSMESH_REPORTS_DIR"

    # Every configuration value the experiment reads from the environment without a
    # default is set by the CronJob; then Chaos Toolkit accepts the experiment (modules,
    # functions and argument names of every activity included).
    needed = {
        value["key"]
        for value in experiment["configuration"].values()
        if isinstance(value, dict) and value.get("type") == "env" and "default" not in value
    }
    assert needed <= set(env)
    for name, value in env.items():
        if name.startswith("CHAOSMESH_"):
            monkeypatch.setenv(name, value)
    ensure_experiment_is_valid(copy.deepcopy(experiment))
    broken = copy.deepcopy(experiment)
    broken["method"][0]["provider"]["arguments"]["master_uri"] = "http://locust-master:8089"
    with pytest.raises(ChaosException):
        ensure_experiment_is_valid(broken)


def test_telemetry_adds_the_chaos_group_label_from_the_group_header() -> None:
    telemetry = _named("Telemetry", "chaosmesh-chaos-group", "istio-system")
    assert telemetry["apiVersion"] == "telemetry.istio.io/v1"
    assert "selector" not in telemetry["spec"] and "targetRefs" not in telemetry["spec"]
    (metrics,) = telemetry["spec"]["metrics"]
    assert metrics["providers"] == [{"name": "prometheus"}]
    by_metric = {o["match"]["metric"]: o for o in metrics["overrides"]}
    assert {"REQUEST_COUNT", "REQUEST_DURATION"} <= set(by_metric)
    for override in by_metric.values():
        assert override["match"]["mode"] == "CLIENT_AND_SERVER"
        tag = override["tagOverrides"][DEFAULT_GROUP_LABEL]
        assert tag["operation"] == "UPSERT"
        assert (
            tag["value"] == by_metric["REQUEST_COUNT"]["tagOverrides"][DEFAULT_GROUP_LABEL]["value"]
        )


@pytest.mark.parametrize(
    ("headers", "label"),
    [
        ({"x-chaos-group": "control"}, "control"),
        ({"x-chaos-group": "experiment", "x-chaos-run": "run-1"}, "experiment"),
        # The groups of `chaosmesh-istio validate`'s header-propagation preflight.
        ({"x-chaos-group": "preflight-0a1b2c3d"}, "preflight-0a1b2c3d"),
        ({}, "unknown"),
        ({"x-chaos-run": "run-1"}, "unknown"),
        ({"x-chaos-group": "anything-a-client-sends"}, "unknown"),
    ],
)
def test_telemetry_expression_evaluates_the_group_as_cel(
    headers: dict[str, str], label: str
) -> None:
    """Istio evaluates tag values as CEL over Envoy's attributes (header names lowercased)."""
    telemetry = _named("Telemetry", "chaosmesh-chaos-group", "istio-system")
    override = telemetry["spec"]["metrics"][0]["overrides"][0]
    expression = override["tagOverrides"][DEFAULT_GROUP_LABEL]["value"]
    environment = celpy.Environment()
    program = environment.program(environment.compile(expression))
    request = json_to_cel({"headers": headers, "method": "GET"})
    assert program.evaluate({"request": request}) == label


def test_locust_master_service_fits_start_load_master_url() -> None:
    service = _named("Service", "locust-master", "chaosmesh-istio")
    ports = {p["port"]: p for p in service["spec"]["ports"]}
    assert set(ports) == {5557, 8089}
    master = _named("Deployment", "locust-master", "chaosmesh-istio")
    worker = _named("Deployment", "locust-worker", "chaosmesh-istio")
    assert service["spec"]["selector"] == master["spec"]["selector"]["matchLabels"]
    assert worker["spec"]["replicas"] == 2
    _, gameday = _gameday()
    assert _env(gameday)["CHAOSMESH_LOCUST_MASTER_URL"] == "http://locust-master:8089"

    master_args, worker_args = _locust_args("locust-master"), _locust_args("locust-worker")
    assert "--master" in master_args and "--worker" in worker_args
    assert _flag(master_args, "--web-port") == "8089"
    assert _flag(master_args, "--master-bind-port") == "5557"
    assert _flag(worker_args, "--master-host") == service["metadata"]["name"]
    assert _flag(worker_args, "--master-port") == "5557"
    # Both run the bundled locustfile that the image links to a fixed path.
    assert _flag(master_args, "--locustfile") == _flag(worker_args, "--locustfile")
    assert _flag(master_args, "--locustfile") == _dockerfile_locustfile()
    # Only the workers send traffic, through their sidecar; the runner reaches the master.
    assert _pod_labels(worker)["sidecar.istio.io/inject"] == "true"
    assert _pod_labels(master)["sidecar.istio.io/inject"] == "false"

    policy = _named("NetworkPolicy", "locust-master", "chaosmesh-istio")
    allowed = {
        rule["ports"][0]["port"]: rule["from"][0]["podSelector"]["matchLabels"]
        for rule in policy["spec"]["ingress"]
    }
    gameday_labels = _pod_labels(_gameday()[0])
    worker_labels = _pod_labels(worker)
    assert allowed[8089].items() <= gameday_labels.items()
    assert allowed[5557].items() <= worker_labels.items()


def _locust_args(deployment: str) -> list[str]:
    pod = _pod_spec(_named("Deployment", deployment, "chaosmesh-istio"))
    args: list[str] = pod["containers"][0]["args"]
    return args


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Upstream(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("x-chaos-group", ""))
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def upstream() -> Iterator[str]:
    _Upstream.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _wait(what: str, ready: Callable[[], bool], procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        dead = [p.args for p in procs if p.poll() is not None]
        assert not dead, f"{dead} exited while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_the_locust_command_lines_of_the_manifest_run_a_two_group_load(
    upstream: str, tmp_path: Path
) -> None:
    """The master and worker of locust.yaml, as they are but on 127.0.0.1, driven by start_load."""
    bundled = str(Path(load.__file__).parent / "locustfiles" / "locustfile.py")
    web, bind = _free_port(), _free_port()
    master_args, worker_args = _locust_args("locust-master"), _locust_args("locust-worker")
    swap = {
        _dockerfile_locustfile(): bundled,
        "8089": str(web),
        "5557": str(bind),
        "locust-master": "127.0.0.1",
    }
    master_cmd = [swap.get(a, a) for a in master_args]
    master_cmd += ["--web-host", "127.0.0.1", "--master-bind-host", "127.0.0.1"]
    worker_cmd = [swap.get(a, a) for a in worker_args]
    procs: list[subprocess.Popen[bytes]] = []
    config = {"chaosmesh_run_id": "deploy-locust", "chaosmesh_reports_dir": str(tmp_path)}
    url = f"http://127.0.0.1:{web}"
    try:
        for name, args in (("master", master_cmd), ("worker", worker_cmd)):
            with (tmp_path / f"{name}.log").open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "locust", *args],
                        stdout=log,
                        stderr=log,
                        cwd=tmp_path,
                    )
                )

        def worker_connected() -> bool:
            try:
                stats = requests.get(f"{url}/stats/requests", timeout=2).json()
            except (requests.RequestException, ValueError):
                return False
            return len(stats.get("workers") or []) == 1

        _wait("the worker to connect to the master", worker_connected, procs)
        load.start_load(upstream, users=4, duration="3s", master_url=url, configuration=config)
        time.sleep(4)
        groups = load.stop_load(configuration=config)["groups"]
        assert groups["control"]["requests"] > 0 and groups["experiment"]["requests"] > 0
        assert {"control", "experiment"} <= set(_Upstream.seen)
    finally:
        load.stop_load(configuration=config)
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- Dockerfile and .dockerignore ------------------------------------------------------


@cache
def _dockerfile() -> tuple[tuple[str, str], ...]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, rest = (pending + stripped).partition(" ")
        pending = ""
        instructions.append((keyword.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends with a continuation line"
    return tuple(instructions)


def _instructions(keyword: str) -> list[str]:
    return [rest for kind, rest in _dockerfile() if kind == keyword]


def _dockerfile_user() -> tuple[int, int]:
    user, _, group = _instructions("USER")[-1].partition(":")
    return int(user), int(group or user)


def _dockerfile_locustfile() -> str:
    links = [
        str(m) for run in _instructions("RUN") for m in re.findall(r"(/\S+/locustfile\.py)", run)
    ]
    assert links, "the Dockerfile links no locustfile"
    return links[-1]


def test_dockerfile_base_image_is_pinned() -> None:
    (base,) = _instructions("FROM")
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", base), base
    assert not _instructions("ADD"), "COPY only: ADD fetches URLs and unpacks archives"


def test_dockerfile_installs_the_package_and_runs_it_as_a_non_root_user() -> None:
    runs = _instructions("RUN")
    assert any(re.search(r"pip install (--\S+ )*\.(\s|$)", run) for run in runs)
    assert _instructions("ENTRYPOINT") == ['["chaosmesh-istio"]']
    kinds = [kind for kind, _ in _dockerfile()]
    assert kinds.index("USER") > max(i for i, kind in enumerate(kinds) if kind == "RUN")
    uid, gid = _dockerfile_user()
    assert uid != 0 and gid != 0
    assert any(f"useradd --system --uid {uid}" in run for run in runs)


def test_dockerfile_copies_experiments_and_makes_reports_writable() -> None:
    assert "experiments /experiments" in _instructions("COPY")
    uid, gid = _dockerfile_user()
    assert any(
        "mkdir -p /reports" in run and f"chown {uid}:{gid} /reports" in run
        for run in _instructions("RUN")
    )
    assert "CHAOSMESH_REPORTS_DIR=/reports" in _instructions("ENV")
    # No copy of the sources may shadow the installed package, and the locustfile link
    # must point into the installed package: it is checked after the sources are gone.
    assert _instructions("WORKDIR")[-1] != "/src"
    (install,) = (run for run in _instructions("RUN") if "pip install" in run)
    link = _dockerfile_locustfile()
    assert install.index("rm -rf /src") < install.index(f"test -f {link}")


def _docker_glob(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def _docker_ignored(path: str) -> bool:
    """Whether docker leaves ``path`` out of the build context (the last match wins)."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = _docker_glob(pattern.lstrip("!").rstrip("/"))
        if any(glob.fullmatch(c) for c in candidates):
            ignored = not negated
    return ignored


def test_the_build_context_holds_what_the_dockerfile_copies_and_nothing_else() -> None:
    copied = [
        src
        for args in _instructions("COPY")
        for src in args.split()[:-1]
        if not src.startswith("--")
    ]
    assert copied
    for source in copied:
        files = (
            [source]
            if (ROOT / source).is_file()
            else [str(p.relative_to(ROOT)) for p in (ROOT / source).rglob("*") if p.is_file()]
        )
        kept = [f for f in files if not _docker_ignored(f)]
        assert kept, f"{source} is left out of the build context"
        assert all("__pycache__" not in f for f in kept)
    for package_file in (ROOT / "chaosmesh_istio").rglob("*"):
        relative = str(package_file.relative_to(ROOT))
        if package_file.is_file() and "__pycache__" not in relative:
            assert not _docker_ignored(relative), relative
    for unwanted in (
        ".venv/bin/python",
        ".git/config",
        "reports/index.html",
        "tests/conftest.py",
        "deploy/rbac.yaml",
        "kubeconfig",
    ):
        assert _docker_ignored(unwanted), unwanted


# -- CI gate examples ------------------------------------------------------------------


def test_ci_gate_doc_shows_the_example_files_as_they_are() -> None:
    doc = CI_DOC.read_text(encoding="utf-8")
    for example in (GITHUB, GITLAB):
        assert example.read_text(encoding="utf-8").strip() in doc, example.name


def _github() -> Obj:
    with GITHUB.open(encoding="utf-8") as stream:
        workflow: Any = yaml.safe_load(stream)
    # YAML 1.1 reads the key "on" as true.
    triggers = workflow.get("on", workflow.get(True))
    assert isinstance(triggers, dict) and triggers["workflow_dispatch"]["inputs"]["experiment"]
    typed: Obj = workflow
    return typed


def _github_steps() -> list[Obj]:
    (job,) = _github()["jobs"].values()
    steps: list[Obj] = job["steps"]
    return steps


def _gitlab_job() -> Obj:
    pipeline = _documents(GITLAB)[0]
    job: Obj = pipeline["resilience-gate"]
    assert job["stage"] in pipeline["stages"]
    return job


def test_github_workflow_validates_runs_and_publishes_the_report() -> None:
    steps = _github_steps()
    runs = [str(step.get("run", "")) for step in steps]
    validate = next(i for i, run in enumerate(runs) if "chaosmesh-istio validate" in run)
    chaos = next(i for i, step in enumerate(steps) if step.get("id") == "chaos")
    assert validate < chaos and "chaosmesh-istio run" in runs[chaos]
    _parses(shlex.split(runs[validate].replace('"$EXPERIMENT"', "experiment.json"))[1:])
    after = steps[chaos + 1 :]
    pager = next(s for s in after if "steps.chaos.outputs.code == '6'" in str(s.get("if", "")))
    assert "PAGER_WEBHOOK_URL" in pager["run"]
    upload = next(s for s in after if str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"
    assert "reports/${{ env.CHAOSMESH_RUN_ID }}/" in upload["with"]["path"]
    junit = next(s for s in after if "junit" in str(s.get("uses", "")))
    assert junit["if"] == "always()"
    assert junit["with"]["report_paths"].endswith("/junit.xml")
    assert _github()["concurrency"]["cancel-in-progress"] is False


def test_gitlab_job_validates_runs_and_publishes_the_report() -> None:
    job = _gitlab_job()
    assert "chaosmesh-istio validate" in job["script"][0]
    assert "chaosmesh-istio run" in job["script"][1]
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["reports"]["junit"].endswith("/junit.xml")
    assert "reports/" in job["artifacts"]["paths"]
    assert job["allow_failure"] == {"exit_codes": [2]}
    assert job["resource_group"] and job["interruptible"] is False
    assert ":" in job["image"] and not job["image"].endswith(":latest")


_STUB = """#!/bin/sh
echo "$(basename "$0") $*" >> "$STUB_LOG"
if [ "$(basename "$0")" = chaosmesh-istio ] && [ "$1" = run ]; then exit "$STUB_CODE"; fi
exit 0
"""


def _run_gate(script: str, code: int, tmp_path: Path, allow_skipped: bool) -> tuple[int, str]:
    """Run a gate script with stub commands; its exit status and the commands it called.

    Every ``chaosmesh-istio`` command line it called must be one the CLI accepts.
    """
    stubs = tmp_path / "bin"
    stubs.mkdir(exist_ok=True)
    for name in ("chaosmesh-istio", "python", "curl"):
        (stubs / name).write_text(_STUB, encoding="utf-8")
        (stubs / name).chmod(0o755)
    log = tmp_path / f"calls-{code}-{allow_skipped}.log"
    log.write_text("", encoding="utf-8")
    (tmp_path / "script.sh").write_text(script, encoding="utf-8")
    env = {
        "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}",
        "STUB_LOG": str(log),
        "STUB_CODE": str(code),
        "EXPERIMENT": "experiments/header-scoped-abort.json",
        "CHAOSMESH_RUN_ID": "ci-42-1",
        "CHAOSMESH_NAMESPACE": "staging",
        "CHAOS_GATE_ALLOW_SKIPPED": "true" if allow_skipped else "false",
        "GITHUB_OUTPUT": str(tmp_path / "github-output"),
        "PAGER_WEBHOOK_URL": "http://pager.invalid/hook",
        "CI_JOB_URL": "http://gitlab.invalid/job/1",
    }
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(tmp_path / "script.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    calls = log.read_text(encoding="utf-8")
    for line in calls.splitlines():
        if line.startswith("chaosmesh-istio "):
            _parses(shlex.split(line)[1:])
    return done.returncode, calls


#: chaosmesh-istio run's exit code, and whether the gate passes.
GATE = [(0, True), (1, False), (2, False), (3, False), (4, False), (5, False), (6, False),
        (64, False), (130, False), (143, False)]  # fmt: skip


@pytest.mark.parametrize(("code", "passes"), GATE)
def test_github_gate_maps_exit_codes(code: int, passes: bool, tmp_path: Path) -> None:
    script = next(s for s in _github_steps() if s.get("id") == "chaos")["run"]
    status, calls = _run_gate(script, code, tmp_path, allow_skipped=False)
    assert (status == 0) is passes and status in (0, 1)
    assert (tmp_path / "github-output").read_text(encoding="utf-8") == f"code={code}\n"
    cleaned = "chaosmesh-istio cleanup --run-id ci-42-1 --namespace staging" in calls
    assert cleaned is (code == 6)
    if code == 2:
        assert _run_gate(script, code, tmp_path, allow_skipped=True)[0] == 0


@pytest.mark.parametrize(("code", "passes"), GATE)
def test_gitlab_gate_maps_exit_codes(code: int, passes: bool, tmp_path: Path) -> None:
    script = "\n".join(_gitlab_job()["script"])
    status, calls = _run_gate(script, code, tmp_path, allow_skipped=False)
    assert (status == 0) is passes and status in (0, 1)
    assert calls.startswith("chaosmesh-istio validate experiments/header-scoped-abort.json\n")
    cleaned = "chaosmesh-istio cleanup --run-id ci-42-1 --namespace staging" in calls
    assert cleaned is (code == 6)
    assert ("python -c" in calls) is (code == 6)
    if code == 2:
        # The only exit 2, which allow_failure turns into a warning.
        assert _run_gate(script, code, tmp_path, allow_skipped=True)[0] == 2
