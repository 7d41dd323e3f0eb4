"""The report's Environment section: what it records, and that no credential ever shows."""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaosmesh_istio.report.environment import (
    REDACTED,
    collect_environment,
    environment_of,
    redact,
    render_environment_html,
    secret_names,
)
from tests.test_report import NASTY_SCRIPT

TOKEN = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2Vu.sig-Zx81"
PASSWORD = "hunter2-Xq9"
KEY_DATA = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0t"
SECRET_VALUES = (TOKEN, PASSWORD, KEY_DATA, "prom-s3cret-tok")

KUBECONFIG = f"""
apiVersion: v1
kind: Config
current-context: staging
contexts:
- name: staging
  context: {{cluster: staging-cluster, user: sre-bot, namespace: shop}}
- name: prod
  context: {{cluster: prod-cluster, user: prod-admin}}
clusters:
- name: staging-cluster
  cluster:
    server: https://api.staging.example:6443
    certificate-authority-data: Q0EtREFUQQ==
- name: prod-cluster
  cluster: {{server: "https://admin:{PASSWORD}@api.prod.example:6443"}}
users:
- name: sre-bot
  user: {{token: {TOKEN}, client-key-data: {KEY_DATA}}}
- name: prod-admin
  user: {{username: admin, password: {PASSWORD}}}
"""

CONFIGURATION = {
    "prometheus_url": f"http://admin:{PASSWORD}@prometheus.istio-system:9090",
    "chaosmesh_owner": "sre@example",
    "chaosmesh_proxy_admin_urls": ["http://127.0.0.1:15000"],
    "api_token": TOKEN,
    "client-key-data": KEY_DATA,
    "headers": {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"},
    "notes": f"call with -H 'Authorization: Basic {KEY_DATA}' or ?access_token={TOKEN}",
    "from_env": {"type": "env", "key": "PROMETHEUS_URL"},
    "title": NASTY_SCRIPT,
}
SECRETS = {
    "prometheus": {"prometheus_token": "prom-s3cret-tok"},
    "kubernetes": {"KUBERNETES_CONTEXT": "prod"},
}


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{path}")
    monkeypatch.delenv("KUBERNETES_CONTEXT", raising=False)
    return path


def _no_secret_in(text: str) -> None:
    for value in SECRET_VALUES:
        assert value not in text


def test_redact_replaces_sensitive_keys_credentials_in_text_and_url_passwords() -> None:
    clean = redact(CONFIGURATION)
    _no_secret_in(json.dumps(clean))
    assert clean["api_token"] == REDACTED
    assert clean["client-key-data"] == REDACTED
    assert clean["headers"] == {"Authorization": REDACTED, "Accept": "application/json"}
    assert clean["prometheus_url"] == (f"http://admin:{REDACTED}@prometheus.istio-system:9090")
    assert clean["notes"] == (
        f"call with -H 'Authorization: Basic {REDACTED}' or ?access_token={REDACTED}"
    )
    # What is not a credential stays readable, including Chaos Toolkit's env references.
    assert clean["chaosmesh_owner"] == "sre@example"
    assert clean["chaosmesh_proxy_admin_urls"] == ["http://127.0.0.1:15000"]
    assert clean["from_env"] == {"type": "env", "key": "PROMETHEUS_URL"}
    assert redact({"password": None, "n": 3, "ok": True}) == {"password": None, "n": 3, "ok": True}
    assert redact([f"Bearer {TOKEN}"]) == [f"Bearer {REDACTED}"]
    assert redact("https://u:p@ss@host/x") == f"https://u:{REDACTED}@host/x"


@given(st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=12, max_size=40))
def test_no_credential_survives_redaction(secret: str) -> None:
    value = {
        "Authorization": f"Bearer {secret}",
        "cookie": secret,
        "x": [f"Authorization: Bearer {secret}", f"https://user:{secret}@host:8443/path"],
        "y": {"private_key": {"pem": secret}, "z": f"password={secret} and basic {secret}"},
    }
    assert secret not in json.dumps(redact(value))


def test_secret_names_never_values() -> None:
    assert secret_names(SECRETS) == ["kubernetes.KUBERNETES_CONTEXT", "prometheus.prometheus_token"]
    assert secret_names({"prometheus_token": "abc"}) == ["prometheus_token"]
    assert secret_names(None) == []


def test_collect_environment_reads_the_kubeconfig_in_effect(kubeconfig: Path) -> None:
    env = collect_environment(CONFIGURATION, {"prometheus_token": "prom-s3cret-tok"})
    assert env["kubernetes"] == {
        "source": "kubeconfig",
        "kubeconfig": str(kubeconfig),
        "context": "staging",
        "cluster": "staging-cluster",
        "server": "https://api.staging.example:6443",
        "user": "sre-bot",
        "namespace": "shop",
    }
    versions = env["versions"]
    assert versions["chaosmesh-istio"] == metadata.version("chaosmesh-istio")
    assert versions["locust"] == metadata.version("locust")
    assert versions["kubernetes"] == metadata.version("kubernetes")
    assert versions["chaostoolkit-lib"] == metadata.version("chaostoolkit-lib")
    assert versions["python"].endswith(platform.python_version())
    assert versions["platform"] == platform.platform()
    assert env["prometheus_url"] == f"http://admin:{REDACTED}@prometheus.istio-system:9090"
    assert env["configuration"]["chaosmesh_owner"] == "sre@example"
    assert env["secrets"] == ["prometheus_token"]
    _no_secret_in(json.dumps(env))


def test_the_context_of_the_secrets_wins_and_its_server_url_is_redacted(
    kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = collect_environment(CONFIGURATION, SECRETS)
    assert env["kubernetes"]["context"] == "prod"
    assert env["kubernetes"]["user"] == "prod-admin"
    assert env["kubernetes"]["server"] == f"https://admin:{REDACTED}@api.prod.example:6443"
    _no_secret_in(json.dumps(env))

    monkeypatch.setenv("KUBERNETES_CONTEXT", "prod")
    assert collect_environment(None, None)["kubernetes"]["cluster"] == "prod-cluster"


def test_in_cluster_environment_and_unreadable_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("CHAOSTOOLKIT_IN_POD", "true")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    kube = collect_environment()["kubernetes"]
    assert (kube["source"], kube["server"]) == ("in-cluster", "https://10.96.0.1:443")

    monkeypatch.delenv("CHAOSTOOLKIT_IN_POD")
    kube = collect_environment(None, {"KUBERNETES_HOST": "https://k8s.internal:6443"})["kubernetes"]
    assert (kube["source"], kube["server"]) == ("environment", "https://k8s.internal:6443")

    broken = tmp_path / "broken"
    broken.write_text("- just\n- a list\n")
    monkeypatch.setenv("KUBECONFIG", str(broken))
    kube = collect_environment()["kubernetes"]
    assert kube["source"] == "kubeconfig"
    assert "is not a kubeconfig" in kube["error"]


def test_collecting_never_imports_locust(kubeconfig: Path) -> None:
    code = (
        "import sys\n"
        "from chaosmesh_istio.report.environment import collect_environment\n"
        "env = collect_environment({'prometheus_url': 'http://p:9090'}, None)\n"
        "assert env['versions']['locust'], env\n"
        "assert 'locust' not in sys.modules and 'gevent' not in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def test_rendered_section_escapes_every_value_and_shows_no_secret(kubeconfig: Path) -> None:
    env = collect_environment({**CONFIGURATION, NASTY_SCRIPT: "key"}, SECRETS)
    page = render_environment_html(env)
    assert page.startswith("<h2>Environment</h2>")
    _no_secret_in(page)
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "prometheus.prometheus_token" in page
    assert "api.prod.example:6443" in page
    assert f"http://admin:{REDACTED}@prometheus.istio-system:9090" in page
    assert re.findall(r"<(\w+)", page).count("script") == 0


def test_render_redacts_even_an_unredacted_environment() -> None:
    leaked: dict[str, Any] = {
        "versions": {"locust": None},
        "kubernetes": {"server": f"https://u:{PASSWORD}@h", "token": TOKEN},
        "prometheus_url": f"http://u:{PASSWORD}@p:9090",
        "configuration": {"password": PASSWORD, "auth": f"Bearer {TOKEN}"},
        "secrets": ["prometheus_token"],
    }
    page = render_environment_html(leaked)
    _no_secret_in(page)
    assert "not installed" in page
    assert "prometheus_token" in page


def test_environment_of_a_journal_recorded_or_derived() -> None:
    recorded = {
        "versions": {"chaosmesh-istio": "0.1.0"},
        "kubernetes": {"context": "staging"},
        "prometheus_url": None,
        "configuration": {"prometheus_password": PASSWORD},
        "secrets": ["prometheus_token"],
    }
    env = environment_of({"chaosmesh": {"environment": recorded}})
    assert env["configuration"] == {"prometheus_password": REDACTED}
    assert env["secrets"] == ["prometheus_token"]
    assert env["kubernetes"] == {"context": "staging"}

    older = {
        "platform": "Linux-6.1-x86_64",
        "chaoslib-version": "1.44.0",
        "experiment": {
            "title": "t",
            "configuration": {"prometheus_url": f"http://u:{PASSWORD}@p:9090", "api_key": TOKEN},
            "secrets": {"prometheus": {"prometheus_token": "prom-s3cret-tok"}},
        },
    }
    env = environment_of(older)
    assert env["versions"] == {"chaostoolkit-lib": "1.44.0", "platform": "Linux-6.1-x86_64"}
    assert env["prometheus_url"] == f"http://u:{REDACTED}@p:9090"
    assert env["configuration"]["api_key"] == REDACTED
    assert env["secrets"] == ["prometheus.prometheus_token"]
    assert "derived from the journal" in env["note"]
    page = render_environment_html(env)
    _no_secret_in(page)
    assert "derived from the journal" in page and "not recorded" in page
