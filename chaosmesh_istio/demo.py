"""The demo: a header-scoped abort on the local mesh, end to end, explained as it goes.

Starts the local mesh, runs ``experiments/abort-catalog-header-scoped.json`` with
``chaos run``, shows what tagged and untagged requests got and what Prometheus recorded,
then stops the mesh. Everything it prints comes from the run's journal and from
Prometheus, not from expectations.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from chaosmesh_istio import settings
from chaosmesh_istio.errors import ChaosMeshIstioError
from chaosmesh_istio.localmesh.manager import MeshInfo, mesh_down, mesh_up

__all__ = ["EXPERIMENT", "run_demo"]

EXPERIMENT = "abort-catalog-header-scoped.json"
_FLAGS_QUERY = (
    "sum by (chaos_group, response_code, response_flags) "
    '(istio_requests_total{reporter="source", destination_service_name="catalog"})'
)


def _experiments_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "experiments"


def _chaos_run(experiment: Path, journal: Path, env: dict[str, str], workdir: Path) -> int:
    chaos = Path(sys.executable).with_name("chaos")
    argv = [
        str(chaos),
        "--no-version-check",
        "--log-file",
        str(workdir / "chaostoolkit.log"),
        "run",
        "--journal-path",
        str(journal),
        str(experiment),
    ]
    return subprocess.run(argv, env=env, cwd=workdir, check=False).returncode


def _prometheus_rows(url: str, settle: float = 2.5) -> list[tuple[str, str, str, float]]:
    """(group, code, flags, count) from Prometheus, once a scrape after the run landed."""
    time.sleep(settle)
    answer = requests.get(f"{url}/api/v1/query", params={"query": _FLAGS_QUERY}, timeout=5)
    answer.raise_for_status()
    rows = []
    for series in answer.json()["data"]["result"]:
        labels = series["metric"]
        rows.append(
            (
                labels.get("chaos_group", "?"),
                labels.get("response_code", "?"),
                labels.get("response_flags", "?"),
                float(series["value"][1]),
            )
        )
    return sorted(rows)


def _output(journal: dict[str, Any], name: str) -> Any:
    for run in journal.get("run", []):
        if run["activity"]["name"] == name:
            return run.get("output")
    return None


def _describe_page(answer: Any) -> str:
    if not isinstance(answer, dict):
        return f"no answer ({answer!r})"
    body = answer.get("body") or {}
    if isinstance(body, str):
        with contextlib.suppress(ValueError):
            body = json.loads(body)
    if not isinstance(body, dict):
        return f"HTTP {answer.get('status')}, unexpected body {str(body)[:80]!r}"
    if body.get("degraded"):
        cause = body.get("cause") or {}
        return (
            f"HTTP {answer.get('status')}, degraded page: catalog answered "
            f"{cause.get('catalog_status')} ({cause.get('detail', '')[:60]})"
        )
    return f"HTTP {answer.get('status')}, full page (catalog, reviews and ratings answered)"


def run_demo(directory: Path, out: Callable[[str], None] = print) -> int:
    """Run the demo with the mesh in ``directory``; return the experiment's exit code."""
    run_id = settings.run_id()
    reports = _experiments_dir().parent / "reports" / run_id
    reports.mkdir(parents=True, exist_ok=True)
    out(f"1/5 starting the local mesh in {directory} ...")
    started = time.monotonic()
    info: MeshInfo = mesh_up(directory)
    try:
        out(
            f"    up in {time.monotonic() - started:.1f}s: ingress {info.ingress_url}, "
            f"Prometheus {info.prometheus_url}, kubeconfig {info.kubeconfig}"
        )
        env = {
            **os.environ,
            "KUBECONFIG": str(info.kubeconfig),
            "CHAOSMESH_INGRESS_URL": str(info.ingress_url),
            "CHAOSMESH_PROXY_ADMIN_URLS": str(info.admin_url),
            "CHAOSMESH_RUN_ID": run_id,
        }
        journal_path = reports / "journal.json"
        out(f"2/5 chaos run experiments/{EXPERIMENT} (run id {run_id}) ...")
        code = _chaos_run(_experiments_dir() / EXPERIMENT, journal_path, env, reports)
        if not journal_path.exists():
            raise ChaosMeshIstioError(
                f"chaos run exited with code {code} without writing a journal; see "
                f"{reports / 'chaostoolkit.log'}"
            )
        journal = json.loads(journal_path.read_text())
        injected = _output(journal, "abort-tagged-requests-to-catalog") or {}
        out(
            f"3/5 injected a 503 abort into {injected.get('virtual_services')} routes "
            f"{injected.get('routes')}, scoped to header "
            f"{injected.get('header')}: {injected.get('header_value')}"
        )
        out(f"    tagged request   -> {_describe_page(_output(journal, 'tagged-request'))}")
        out(f"    untagged request -> {_describe_page(_output(journal, 'untagged-request'))}")
        rollbacks = journal.get("rollbacks") or [{}]
        removal = rollbacks[0].get("output") or {}
        out(
            f"4/5 rollback removed {removal.get('removed')} "
            f"(verified by reading back: {removal.get('verified')}); "
            f"experiment status: {journal.get('status')}, deviated: {journal.get('deviated')}"
        )
        out("5/5 what the mesh's Prometheus recorded for calls to catalog (reporter=source):")
        assert info.prometheus_url is not None
        out(f"    {'group':<12} {'code':<6} {'flags':<8} requests")
        for group, status, flags, count in _prometheus_rows(info.prometheus_url):
            out(f"    {group:<12} {status:<6} {flags:<8} {count:g}")
        out(f"journal: {journal_path}")
        return code
    finally:
        mesh_down(directory)
        out("local mesh stopped")
