"""`make demo`'s program, end to end: three catalog experiments on a real local mesh."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaosmesh_istio.demo import DEMO, reports_dir, run_demo
from tests.conftest import mesh_processes

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_gets_the_predicted_verdicts_and_leaves_nothing_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CHAOSMESH_SENTINEL", "1")  # as a person running the demo gets
    lines: list[str] = []
    reports = tmp_path / "reports"
    code = run_demo(tmp_path / "mesh", lines.append, reports)
    text = "\n".join(lines)
    print(text)
    assert code == 0, text
    assert mesh_processes(tmp_path / "mesh") == []
    assert "local mesh stopped" in lines

    header = next(i for i, line in enumerate(lines) if line.startswith("experiment "))
    rows = [line.split() for line in lines[header + 1 : header + 1 + len(DEMO)]]
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("service-down.json", "passed", "0", "0"),
        ("slow-network.json", "passed", "0", "0"),
        ("cascading-delays.json", "deviated", "1", "1"),
    ]
    for row in rows:
        run_dir = (Path.cwd() / row[4]).parent
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["exit_code"] == int(row[2])
        assert (run_dir / "junit.xml").is_file()
    assert (reports / "index.html").is_file()
    assert lines[header + 1 + len(DEMO)].startswith("index of every run: ")
    # Each run showed its progress, with load figures, as `chaosmesh-istio run` does.
    assert text.count("] phase: method") == len(DEMO)
    assert "] load (last 5 s) control: " in text
    assert lines[-1].startswith("demo finished as predicted in ")


def test_reports_go_to_the_repository_when_run_from_it(tmp_path: Path) -> None:
    assert reports_dir(ROOT) == ROOT / "reports"
    assert reports_dir(ROOT / "experiments") == ROOT / "reports"
    assert reports_dir(tmp_path) == tmp_path.resolve() / "reports"
