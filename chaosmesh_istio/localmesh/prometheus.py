"""The local mesh's Prometheus: the real server (Debian ``prometheus``) scraping the data plane.

Scrapes every second so that experiments of a few seconds have data; ``wait_first_scrape``
returns once a scrape has landed, so probes never start on an empty database.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import requests
import yaml

from chaosmesh_istio.errors import MeshError

__all__ = ["JOB", "command", "find_binary", "wait_first_scrape", "write_config"]

JOB = "chaosmesh-dataplane"


def find_binary() -> str:
    """The prometheus executable, or a MeshError saying how to install it."""
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if found is None:
        raise MeshError(
            "the prometheus server is not installed; run 'make install' or "
            "'apt-get install -y --no-install-recommends prometheus'"
        )
    return found


def write_config(directory: Path, admin_address: str) -> Path:
    """Write prometheus.yml scraping the data plane's admin address every second."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {
                "job_name": JOB,
                "metrics_path": "/stats/prometheus",
                "static_configs": [{"targets": [admin_address]}],
            }
        ],
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def command(directory: Path, port: int) -> list[str]:
    """The command line of a Prometheus bound to 127.0.0.1:port with data under directory."""
    return [
        find_binary(),
        f"--config.file={directory / 'prometheus.yml'}",
        f"--storage.tsdb.path={directory / 'prometheus-data'}",
        "--storage.tsdb.retention.time=2d",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]


def wait_first_scrape(url: str, target: str, timeout: float) -> float:
    """Wait until Prometheus has scraped the data plane at ``target`` once; return the seconds.

    The target (host:port) is part of the query because the database of an earlier run in
    the same directory still holds a successful scrape of the previous data plane.
    """
    started = time.monotonic()
    last = "no answer"
    while time.monotonic() - started < timeout:
        try:
            answer = requests.get(
                f"{url}/api/v1/query",
                params={"query": f'up{{job="{JOB}", instance="{target}"}}'},
                timeout=1,
            )
            result = answer.json().get("data", {}).get("result", [])
            if result and result[0]["value"][1] == "1":
                return time.monotonic() - started
            last = "no successful scrape yet" if answer.ok else answer.text[:200]
        except (requests.RequestException, ValueError) as exc:
            last = type(exc).__name__
        time.sleep(0.1)
    raise MeshError(
        f"Prometheus at {url} did not scrape the data plane within {timeout:.0f}s ({last}); "
        "see prometheus.log in the mesh directory"
    )
