"""The environment a run ran in: versions, Kubernetes target, Prometheus, configuration.

A report is handed to people who were not there, so it says which tools, which cluster and
which settings produced it, and never what the credentials were: every value goes through
`redact`, and secrets are listed by name only. Collecting reads the kubeconfig file and
nothing else (no network); it never raises, because it runs after every experiment.
"""

from __future__ import annotations

import html
import json
import os
import platform
import re
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from chaosmesh_istio.settings import Configuration, Secrets, setting

__all__ = [
    "REDACTED",
    "collect_environment",
    "environment_of",
    "redact",
    "render_environment_html",
    "secret_names",
]

REDACTED = "***redacted***"
# Distribution names, looked up with importlib.metadata: importing locust would monkey-patch.
_DISTRIBUTIONS = (
    "chaosmesh-istio",
    "chaostoolkit",
    "chaostoolkit-lib",
    "chaostoolkit-kubernetes",
    "kubernetes",
    "locust",
)
_SENSITIVE_KEY = re.compile(
    r"token|passw(?:or)?d|secret|authori[sz]ation|auth|api_?key|bearer|cookie|credential"
    r"|private|key_?data|(?:client|ssh|signing|access|encryption|tls)_?key|session"
)
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic|Token)(\s+)[^\s\"',;]+", re.IGNORECASE)
_NAMED_CREDENTIAL = re.compile(
    r"\b([\w-]*(?:token|passw(?:or)?d|secret|api[-_]?key|apikey|authorization)[\w-]*)"
    r"(\s*[:=]\s*)(?!\*\*\*redacted|(?:Bearer|Basic|Token)\s)[^\s&\"',;]+",
    re.IGNORECASE,
)
# Greedy up to the last "@" of the authority: an unencoded "@" may sit in the password.
_URL_PASSWORD = re.compile(r"([a-z][a-z0-9+.-]*://[^/\s:@]*):[^/\s]*@", re.IGNORECASE)


def _sensitive(key: object) -> bool:
    normalized = re.sub(r"[^a-z0-9]+", "_", str(key).lower())
    return bool(_SENSITIVE_KEY.search(normalized))


def _redact_text(text: str) -> str:
    text = _URL_PASSWORD.sub(rf"\1:{REDACTED}@", text)
    text = _AUTH_SCHEME.sub(rf"\1\2{REDACTED}", text)
    return _NAMED_CREDENTIAL.sub(rf"\1\2{REDACTED}", text)


def redact(value: Any) -> Any:
    """A copy of a JSON-like value with credentials replaced by ``***redacted***``.

    Values under keys whose name looks sensitive (token, password, secret, authorization,
    api key, cookie, credential, private key material...) are replaced whole; in strings,
    ``Bearer``/``Basic`` credentials, ``password=...``-style pairs and the password of a
    ``user:password@`` URL are replaced. Anything that is not JSON becomes redacted text.
    """
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED if _sensitive(k) and v is not None else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return _redact_text(str(value))


def secret_names(secrets: Any) -> list[str]:
    """The names of the secrets, never their values (``scope.name`` for scoped secrets)."""
    if not isinstance(secrets, Mapping):
        return []
    names: list[str] = []
    for key, value in secrets.items():
        if isinstance(value, Mapping) and value and all(isinstance(k, str) for k in value):
            names.extend(f"{key}.{inner}" for inner in value)
        else:
            names.append(str(key))
    return sorted(_redact_text(n) for n in names)


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {d: _version(d) for d in _DISTRIBUTIONS}
    found["python"] = f"{platform.python_implementation()} {platform.python_version()}"
    found["platform"] = platform.platform()
    return found


def _lookup(secrets: Secrets, key: str) -> str | None:
    """A secret (top level or in any scope), else the environment variable; as kube.py."""
    if isinstance(secrets, Mapping):
        if secrets.get(key) is not None:
            return str(secrets[key])
        for scoped in secrets.values():
            if isinstance(scoped, Mapping) and scoped.get(key) is not None:
                return str(scoped[key])
    return os.environ.get(key)


def _named(entries: Any, name: Any) -> Mapping[str, Any]:
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            return entry
    return {}


def _kubeconfig(paths: list[Path], context: str | None) -> dict[str, Any]:
    """Context, cluster, server and user name, merged over the files as kubectl does."""
    merged: dict[str, list[Any]] = {"contexts": [], "clusters": [], "users": []}
    current: Any = None
    for path in paths:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, Mapping):
            raise ValueError(f"{str(path)!r} is not a kubeconfig (not a YAML mapping)")
        current = current or loaded.get("current-context")
        for kind, entries in merged.items():
            entries.extend(loaded.get(kind) or [])
    name = context or current
    entry = _named(merged["contexts"], name).get("context") or {}
    cluster = _named(merged["clusters"], entry.get("cluster")).get("cluster") or {}
    return {
        "context": name,
        "cluster": entry.get("cluster"),
        "server": cluster.get("server"),
        "user": entry.get("user"),
        "namespace": entry.get("namespace"),
    }


def _kubernetes(secrets: Secrets) -> dict[str, Any]:
    """Where the Kubernetes credentials come from, in kube.api_client's order."""
    raw = os.environ.get("KUBECONFIG", "~/.kube/config")
    paths = [Path(p).expanduser() for p in raw.split(os.pathsep) if p]
    existing = [p for p in paths if p.exists()]
    if existing:
        shown = os.pathsep.join(str(p) for p in existing)
        found: dict[str, Any] = {"source": "kubeconfig", "kubeconfig": shown}
        try:
            found.update(_kubeconfig(existing, _lookup(secrets, "KUBERNETES_CONTEXT")))
        except (OSError, ValueError, yaml.YAMLError) as exc:
            found["error"] = f"could not read the kubeconfig: {exc}"
        return found
    if os.environ.get("CHAOSTOOLKIT_IN_POD") == "true":
        host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        return {
            "source": "in-cluster",
            "server": server if host else None,
            "user": "the pod's service account",
        }
    return {
        "source": "environment",
        "server": _lookup(secrets, "KUBERNETES_HOST") or "http://localhost",
        "user": _lookup(secrets, "KUBERNETES_USERNAME"),
    }


def collect_environment(
    configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """The environment of a run, redacted: versions, Kubernetes target, Prometheus URL,
    configuration (sensitive values redacted) and the names of the secrets."""
    try:
        kubernetes = _kubernetes(secrets)
    except Exception as exc:  # a report section must never fail the run it describes
        kubernetes = {"error": f"could not tell the Kubernetes target: {exc}"}
    return _sanitized(
        {
            "versions": _versions(),
            "kubernetes": kubernetes,
            "prometheus_url": setting(configuration, "prometheus_url"),
            "configuration": dict(configuration or {}),
            "secrets": secret_names(secrets),
        }
    )


def _sanitized(env: Mapping[str, Any]) -> dict[str, Any]:
    # The names list sits under a key that looks sensitive; it holds names, never values.
    names = env.get("secrets")
    clean: dict[str, Any] = redact({k: v for k, v in env.items() if k != "secrets"})
    clean["secrets"] = sorted(_redact_text(str(n)) for n in names or [])
    return clean


def environment_of(journal: Mapping[str, Any]) -> dict[str, Any]:
    """The environment recorded in the journal by the control, redacted again; for older
    journals without one, what the journal itself tells (platform, chaoslib, configuration)."""
    recorded = (journal.get("chaosmesh") or {}).get("environment")
    if isinstance(recorded, Mapping):
        return _sanitized(recorded)
    experiment = journal.get("experiment") or {}
    configuration = experiment.get("configuration")
    configuration = configuration if isinstance(configuration, Mapping) else {}
    return _sanitized(
        {
            "versions": {
                "chaostoolkit-lib": journal.get("chaoslib-version"),
                "platform": journal.get("platform"),
            },
            "kubernetes": {},
            "prometheus_url": configuration.get("prometheus_url"),
            "configuration": configuration,
            "secrets": secret_names(experiment.get("secrets")),
            "note": "recorded before environments were; derived from the journal",
        }
    )


def _h(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return html.escape(str(text), quote=True)


def render_environment_html(env: Mapping[str, Any]) -> str:
    """The report's Environment section: one table, every value escaped (and redacted)."""
    env = _sanitized(env)
    rows: list[tuple[str, Any]] = []
    for name, version in (env.get("versions") or {}).items():
        rows.append((name, version if version is not None else "not installed"))
    kubernetes = env.get("kubernetes") or {}
    if not kubernetes:
        rows.append(("Kubernetes", "not recorded"))
    labels = {
        "source": "Kubernetes credentials from",
        "context": "Kubernetes context",
        "server": "API server",
        "namespace": "context namespace",
        "error": "Kubernetes",
    }
    for key, value in kubernetes.items():
        if value is not None:
            rows.append((labels.get(key, key), value))
    rows.append(("Prometheus URL", env.get("prometheus_url") or "not configured"))
    configuration = env.get("configuration") or {}
    rows.extend((f"configuration: {k}", v) for k, v in sorted(configuration.items()))
    secrets = env.get("secrets") or []
    rows.append(("secrets (names only)", ", ".join(secrets) if secrets else "none"))
    body = "".join(f"<tr><th>{_h(k)}</th><td>{_h(v)}</td></tr>" for k, v in rows)
    note = f"<p>{_h(env['note'])}</p>" if env.get("note") else ""
    return f"<h2>Environment</h2>{note}<table>{body}</table>"
