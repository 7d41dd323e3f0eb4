"""An experiment file and its variables, loaded the way ``chaos run`` loads them.

``--var`` and ``--var-file`` values go through chaoslib's own ``convert_vars`` and
``merge_vars``, the configuration through ``load_configuration`` and activity arguments
through ``substitute``, so every command sees what a run would see. Two differences: a
variable that the experiment's configuration does not declare is refused (chaoslib would
silently ignore it, so a typo would run the experiment with its defaults), except the
documented configuration keys of chaosmesh_istio, which are added to the configuration.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from chaoslib import convert_vars, merge_vars, substitute
from chaoslib.caching import cache_activities, clear_cache
from chaoslib.configuration import load_configuration, load_dynamic_configuration
from chaoslib.exceptions import ChaosException
from chaoslib.experiment import ensure_experiment_is_valid
from chaoslib.secret import load_secrets

from chaosmesh_istio.errors import InvalidArgument

__all__ = [
    "CONTROL_MODULE",
    "DOCUMENTED_KEYS",
    "Experiment",
    "Step",
    "call_arguments",
    "load",
]

CONTROL_MODULE = "chaosmesh_istio.controls"
#: Configuration keys read by chaosmesh_istio (README, "Configuration keys"): accepted by
#: ``--var`` even when the experiment does not declare them.
DOCUMENTED_KEYS = (
    "chaosmesh_allowed_namespaces",
    "chaosmesh_api_attempts",
    "chaosmesh_api_concurrency",
    "chaosmesh_api_timeout",
    "chaosmesh_group_header",
    "chaosmesh_group_label",
    "chaosmesh_live_timeout",
    "chaosmesh_owner",
    "chaosmesh_proxy_admin_urls",
    "chaosmesh_reports_dir",
    "chaosmesh_run_id",
    "chaosmesh_sentinel",
    "chaosmesh_sentinel_grace",
    "prometheus_timeout",
    "prometheus_url",
    "prometheus_verify_tls",
)
_PHASES = ("hypothesis", "method", "rollbacks")


@dataclass(frozen=True)
class Step:
    """One activity of the experiment and where it sits: hypothesis, method or rollbacks."""

    phase: str
    activity: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.activity.get("name", "?"))

    @property
    def provider(self) -> Mapping[str, Any]:
        provider = self.activity.get("provider")
        return provider if isinstance(provider, Mapping) else {}

    def is_ours(self, *funcs: str) -> bool:
        """Whether it calls one of these functions of chaosmesh_istio (any, if none given)."""
        provider = self.provider
        module = str(provider.get("module", ""))
        ours = provider.get("type") == "python" and module.startswith("chaosmesh_istio.")
        return ours and (not funcs or provider.get("func") in funcs)


@dataclass
class Experiment:
    """A loaded experiment file with its variables (``config_vars`` are all declared)."""

    path: Path
    document: dict[str, Any]
    config_vars: dict[str, Any]
    secret_vars: dict[str, Any]

    @property
    def title(self) -> str:
        return str(self.document.get("title") or self.path.name)

    def ensure_valid(self) -> None:
        """Chaos Toolkit's own validation: schema, activities' signatures, controls."""
        try:
            cache_activities(self.document)
            ensure_experiment_is_valid(self.document)
        except ChaosException as exc:
            raise InvalidArgument(f"{self.path} is not a valid experiment: {exc}") from None
        finally:
            clear_cache()

    def resolve(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The configuration and secrets a run would get (chaoslib's Runner.configure)."""
        try:
            configuration = load_configuration(
                copy.deepcopy(self.document.get("configuration") or {}),
                dict(self.config_vars),
            )
            secrets = load_secrets(
                copy.deepcopy(self.document.get("secrets") or {}),
                configuration,
                dict(self.secret_vars),
            )
            configuration = load_dynamic_configuration(configuration, secrets)
        except ChaosException as exc:
            raise InvalidArgument(
                f"the configuration of {self.path} cannot be loaded: {exc}"
            ) from None
        return dict(configuration or {}), dict(secrets or {})

    def steps(self) -> Iterator[Step]:
        """Every activity: hypothesis probes, method steps, rollbacks (``ref`` resolved)."""
        named: dict[str, Mapping[str, Any]] = {}
        hypothesis = self.document.get("steady-state-hypothesis") or {}
        sections = {
            "hypothesis": hypothesis.get("probes") or [],
            "method": self.document.get("method") or [],
            "rollbacks": self.document.get("rollbacks") or [],
        }
        for phase in _PHASES:
            for given in sections[phase]:
                if not isinstance(given, Mapping):
                    continue
                activity = named.get(str(given["ref"]), given) if "ref" in given else given
                named.setdefault(str(activity.get("name")), activity)
                yield Step(phase, activity)

    def controls(self) -> list[Mapping[str, Any]]:
        """The experiment's controls that are ours."""
        return [
            c
            for c in self.document.get("controls") or []
            if isinstance(c, Mapping) and (c.get("provider") or {}).get("module") == CONTROL_MODULE
        ]


def call_arguments(
    step: Step, configuration: Mapping[str, Any], secrets: Mapping[str, Any]
) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The Python function of a step and its arguments, substituted as chaoslib does."""
    provider = step.provider
    func: Callable[..., Any] = getattr(
        importlib.import_module(str(provider["module"])), str(provider["func"])
    )
    arguments = dict(substitute(dict(provider.get("arguments") or {}), configuration, secrets))
    parameters = inspect.signature(func).parameters
    if "secrets" in parameters:
        arguments["secrets"] = {
            k: v
            for scope in provider.get("secrets") or []
            for k, v in secrets.get(scope, {}).items()
        }
    if "configuration" in parameters:
        arguments["configuration"] = dict(configuration)
    return func, arguments


def _parse(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"experiment file {str(path)!r} cannot be read: {exc}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            document = yaml.safe_load(text)
        elif path.suffix == ".json":
            document = json.loads(text)
        else:
            raise InvalidArgument(f"experiment file {str(path)!r} must end in .json, .yaml or .yml")
    except (ValueError, yaml.YAMLError) as exc:
        detail = " ".join(str(exc).split())
        raise InvalidArgument(
            f"experiment file {str(path)!r} is not valid {path.suffix[1:].upper()}: {detail}"
        ) from None
    if not isinstance(document, dict):
        raise InvalidArgument(
            f"experiment file {str(path)!r} must hold a JSON/YAML object, got "
            f"{type(document).__name__}"
        )
    return document


def _variables(
    path: Path, var: Sequence[str], var_files: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    for item in var:
        if "=" not in item:
            raise InvalidArgument(f"--var must be KEY=VALUE (or KEY:TYPE=VALUE), got {item!r}")
    for name in var_files:
        if not Path(name).is_file():
            raise InvalidArgument(f"var file {name!r} does not exist")
    try:
        config_vars, secret_vars = merge_vars(convert_vars(list(var)), list(var_files))
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidArgument(f"the variables given for {path} cannot be read: {exc}") from None
    return dict(config_vars), dict(secret_vars)


def load(path: str | Path, var: Sequence[str] = (), var_files: Sequence[str] = ()) -> Experiment:
    """Read an experiment and its variables; refuse variables it does not declare.

    An undeclared documented key (``chaosmesh_run_id``, ``prometheus_url``...) is added to
    the experiment's configuration instead.
    """
    source = Path(path)
    if not source.is_file():
        raise InvalidArgument(f"experiment file {str(source)!r} does not exist")
    document = _parse(source)
    config_vars, secret_vars = _variables(source, var, var_files)
    declared = document.get("configuration")
    if declared is None:
        declared = document["configuration"] = {}
    if not isinstance(declared, dict):
        raise InvalidArgument(f"the configuration of {str(source)!r} must be an object")
    unknown = sorted(k for k in config_vars if k not in declared and k not in DOCUMENTED_KEYS)
    if unknown:
        names = " and ".join(repr(k) for k in unknown)
        keys = ", ".join(sorted(declared)) or "none"
        raise InvalidArgument(
            f"unknown variable {names}: {source.name} declares the configuration keys {keys} "
            "(besides the documented chaosmesh_* and prometheus_* keys); check the spelling or "
            "declare it in the experiment's configuration"
        )
    for key in config_vars:
        declared.setdefault(key, config_vars[key])
    return Experiment(source, document, config_vars, secret_vars)
