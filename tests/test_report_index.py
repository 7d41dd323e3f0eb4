"""The game-day history (index.html), run comparisons (compare.html) and their CLI modes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from chaosmesh_istio.cli import main
from chaosmesh_istio.report import write_report
from chaosmesh_istio.report.compare import compare_runs, write_comparison
from chaosmesh_istio.report.index import write_index
from tests.test_report import NASTY_IMG, NASTY_SCRIPT, _groups, _iso, _journal

DELAY = {"delay": {"fixedDelay": "2s", "percentage": {"value": 100.0}}}
ABORT = {"abort": {"httpStatus": 503, "percentage": {"value": 100.0}}}


def _run(
    reports: Path,
    name: str,
    *,
    start: float,
    fault: dict[str, Any] = DELAY,
    exp_p50: float = 2050,
    exp_errors: int = 0,
    after_met: bool = True,
    title: str = "reviews under a fault",
) -> dict[str, Any]:
    """Write a run's report into reports/<name>; return its journal."""
    journal = _journal(fault, _groups(exp_p50, exp_errors), after_met=after_met)
    journal["chaosmesh"]["run_id"] = name
    journal["start"] = _iso(start)
    journal["experiment"]["title"] = title
    write_report(journal, reports / name)
    return journal


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    """Four runs over a game-day, one with a hostile title, a broken one and a stray dir."""
    root = tmp_path / "reports"
    _run(root, "run-1-no-timeout", start=0, after_met=False)
    _run(root, "run-3-abort", start=7200, fault=ABORT, exp_p50=5, exp_errors=600)
    _run(root, "run-2-timeout-added", start=3600, exp_p50=30)
    _run(root, 'odd dir&<"x">', start=-3600, title=NASTY_SCRIPT + NASTY_IMG)
    (root / "run-0-broken").mkdir()
    (root / "run-0-broken" / "summary.json").write_text("{not json")
    (root / "load-only").mkdir()
    (root / "load-only" / "timeseries.jsonl").write_text("")
    return root


def _assert_self_contained(page: str) -> None:
    assert "<script" not in page and "<img" not in page
    assert NASTY_SCRIPT not in page and NASTY_IMG not in page
    assert not re.search(r"https?://", page)


def test_index_lists_runs_newest_first_with_verdict_findings_and_figures(reports: Path) -> None:
    path = write_index(reports)
    assert path == reports / "index.html"
    page = path.read_text()
    _assert_self_contained(page)

    hrefs = re.findall(r'<a href="([^"]*)"', page)
    assert hrefs == [
        "run-3-abort/report.html",
        "run-2-timeout-added/report.html",
        "run-1-no-timeout/report.html",
        "odd%20dir%26%3C%22x%22%3E/report.html",
    ]
    for href in hrefs[:3]:
        assert (reports / href).is_file()
    assert "4 runs, newest first" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x" in page

    rows = {
        rid: row
        for row in re.findall(r"<tr>.*?</tr>", page)
        for rid in ("run-1-no-timeout", "run-2-timeout-added", "run-3-abort")
        if f">{rid}</a>" in row
    }
    assert "background:#b35c00" in rows["run-1-no-timeout"]
    assert ">deviated</span> (exit code 1)" in rows["run-1-no-timeout"]
    assert '1 (<span class="sev-high">high</span>)' in rows["run-1-no-timeout"]
    assert "<td>3075 ms</td><td>45 ms</td>" in rows["run-1-no-timeout"]  # p95 = 1.5 x p50
    assert ">passed</span> (exit code 0)" in rows["run-2-timeout-added"]
    assert "background:#1b7f3b" in rows["run-2-timeout-added"]
    assert "<td>100.00%</td><td>0.00%</td>" in rows["run-3-abort"]
    assert _iso(7200) in rows["run-3-abort"]

    assert "run-0-broken: summary.json could not be read" in page
    assert "load-only" not in page


def test_index_of_an_empty_directory(tmp_path: Path) -> None:
    page = write_index(tmp_path).read_text()
    assert "0 runs" in page and "No runs yet" in page


def test_compare_runs_deltas_and_findings_that_moved(reports: Path) -> None:
    before = json.loads((reports / "run-1-no-timeout" / "summary.json").read_text())
    after = json.loads((reports / "run-2-timeout-added" / "summary.json").read_text())
    diff = compare_runs(before, after)

    assert diff["same_experiment"] and diff["warning"] is None
    assert diff["verdict_changed"]
    assert (diff["a"]["verdict"], diff["b"]["verdict"]) == ("deviated", "passed")
    assert diff["groups"]["experiment"]["p50"] == {"a": 2050.0, "b": 30.0, "delta": -2020.0}
    assert diff["groups"]["experiment"]["p95"]["delta"] == pytest.approx(-3030.0)
    assert diff["groups"]["control"]["p50"]["delta"] == 0.0
    assert list(diff["groups"]) == ["control", "experiment", "all"]
    moved = diff["findings"]
    assert [f["key"] for f in moved["disappeared"]] == ["caller-no-timeout"]
    assert [f["key"] for f in moved["appeared"]] == ["caller-timeout-works"]
    assert moved["persisted"] == []

    same = compare_runs(before, before)
    assert [f["key"] for f in same["findings"]["persisted"]] == ["caller-no-timeout"]
    assert same["findings"]["persisted"][0]["severity_a"] == "high"
    assert not same["verdict_changed"]

    other = json.loads((reports / 'odd dir&<"x">' / "summary.json").read_text())
    assert "different experiments" in compare_runs(before, other)["warning"]
    assert compare_runs({}, {"groups": {"all": {"p95": 3}}})["groups"] == {
        "all": {"p95": {"a": None, "b": 3.0, "delta": None}}
    }


def test_write_comparison_links_both_reports_and_escapes(reports: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "cmp.html"
    path = write_comparison(reports / "run-1-no-timeout", reports / 'odd dir&<"x">', out)
    assert path == out
    page = out.read_text()
    _assert_self_contained(page)
    assert re.findall(r'<a href="([^"]*)"', page) == [
        "../reports/run-1-no-timeout/report.html",
        "../reports/odd%20dir%26%3C%22x%22%3E/report.html",
    ]
    assert "Warning: these runs are of different experiments" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "caller-no-timeout" not in page  # findings are shown by title
    assert "The caller has no timeout" in page and "persists" in page

    fixed = reports / "run-2-timeout-added"
    text = write_comparison(reports / "run-1-no-timeout", fixed, out).read_text()
    assert "Warning" not in text
    assert '<td class="ok">-2020 ms</td>' in text
    assert "appeared in B" in text and "disappeared in B" in text
    assert ">deviated</span>" in text and ">passed</span>" in text


def test_cli_index_and_compare(
    reports: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (reports / "index.html").unlink(missing_ok=True)
    assert main(["report", "--index", str(reports)]) == 0
    assert capsys.readouterr().out == f"index: {reports / 'index.html'}\n"
    assert main(["report", "--index", "--reports-dir", str(reports)]) == 0
    assert capsys.readouterr().out == f"index: {reports / 'index.html'}\n"
    assert "run-3-abort/report.html" in (reports / "index.html").read_text()

    args = ["report", "--compare", "run-1-no-timeout", "run-2-timeout-added"]
    assert main([*args, "--reports-dir", str(reports)]) == 0
    assert capsys.readouterr().out == f"compare: {reports / 'compare.html'}\n"
    assert "-2020 ms" in (reports / "compare.html").read_text()

    out = tmp_path / "c.html"
    run_dir = str(reports / "run-3-abort")
    assert main(["report", "--compare", run_dir, "run-2-timeout-added", "--out", str(out),
                 "--reports-dir", str(reports)]) == 0  # fmt: skip
    text = out.read_text()
    assert '<td class="ok">-100.00 pp</td>' in text  # experiment error rate 100% -> 0%
    assert '<td class="bad">+25 ms</td>' in text  # experiment p50 5 -> 30 ms


def test_cli_report_journal_refreshes_the_index(
    reports: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = _run(tmp_path / "scratch", "run-4-new", start=9000)
    journal_path = tmp_path / "journal.json"
    journal_path.write_text(json.dumps(journal))
    assert main(["report", str(journal_path), "--reports-dir", str(reports)]) == 0
    printed = capsys.readouterr().out
    assert f"html: {reports / 'run-4-new' / 'report.html'}" in printed
    assert f"index: {reports / 'index.html'}" in printed
    hrefs = re.findall(r'<a href="([^"]*)"', (reports / "index.html").read_text())
    assert hrefs[0] == "run-4-new/report.html"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report"], "give exactly one of JOURNAL, --index or --compare"),
        (["report", "j.json", "--index"], "(got JOURNAL and --index)"),
        (["report", "--index", "--compare", "a", "b"], "(got --index and --compare)"),
        (["report", "--index", "{tmp}/nowhere"], "reports directory '{tmp}/nowhere' does not"),
        (["report", "--index", "{reports}", "--out", "x"], "--out does not apply to --index"),
        (["report", "--compare", "run-1-no-timeout", "run-9"], "run 'run-9' is neither a"),
        (["report", "--compare", "run-1-no-timeout", "load-only"], "has no summary.json"),
        (["report", "--compare", "run-0-broken", "run-1-no-timeout"], "no readable summary.json"),
    ],
)
def test_cli_bad_input_is_one_sentence_and_exit_64(
    reports: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    before = sorted(p.name for p in reports.iterdir())
    argv = [a.format(tmp=tmp_path, reports=reports) for a in argv]
    assert main([*argv, "--reports-dir", str(reports)]) == 64
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message.format(tmp=tmp_path) in captured.err
    assert captured.err.count("\n") == 1
    assert sorted(p.name for p in reports.iterdir()) == before
