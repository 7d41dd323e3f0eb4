"""`make demo`'s program, end to end: what it prints comes from the journal and Prometheus."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaosmesh_istio.demo import run_demo


def test_demo_shows_only_tagged_requests_hurt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    lines: list[str] = []
    code = run_demo(tmp_path / "mesh", lines.append)
    text = "\n".join(lines)
    print(text)
    assert code == 0, text
    tagged = next(line for line in lines if "tagged request " in line and "untagged" not in line)
    untagged = next(line for line in lines if "untagged request" in line)
    assert "degraded page: catalog answered 503" in tagged
    assert "full page" in untagged
    assert "verified by reading back: True" in text
    assert "experiment status: completed, deviated: False" in text
    flag_rows = [
        line.split() for line in lines if line.strip().startswith(("control", "experiment"))
    ]
    assert ["experiment", "503", "FI", "1"] in flag_rows
    assert all(row[2] != "FI" for row in flag_rows if row[0] == "control")
    assert lines[-1] == "local mesh stopped"
