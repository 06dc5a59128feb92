"""`fraudstream report` as a command: its outputs, progress lines and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumer.cli import main


@pytest.fixture(autouse=True)
def _logging_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command configures logging for its process; here that would point the session's
    loggers at this test's captured stderr."""
    monkeypatch.setattr("consumer.infra.logs.configure_logging", lambda *_, **__: None)


def test_writes_html_json_and_progress_lines(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    html, figures = tmp_path / "r.html", tmp_path / "r.json"
    argv = ["report", "--from", "2026-12-01", "--to", "2026-12-07", "--source", str(tree)]
    assert main([*argv, "--out", str(html), "--json", str(figures)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""  # the report goes to --out; stdout stays clean
    progress = [json.loads(line) for line in captured.err.splitlines() if "report_progress" in line]
    assert progress[-1]["bytes_read"] == progress[-1]["bytes_total"] > 0
    data = json.loads(figures.read_text())
    assert data["headline"]["flagged"]["count"] == 3
    assert 'data-figure="headline.flagged.count">3<' in html.read_text()


def test_markdown_on_stdout(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["report", "--from", "2026-12-01", "--to", "2026-12-07", "--source", str(tree)]
    assert main([*argv, "--format", "md", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# fraudstream report 2026-12-01 to 2026-12-07")
    assert "- flagged: 3" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--from", "2026-12-01", "--to", "2026-12-01", "--source", "/nonexistent/out"],
        ["--from", "2026-12-02", "--to", "2026-12-01", "--source", "."],
        ["--from", "2026-12-01", "--to", "2026-12-01", "--source", ".", "--labels", "/nope"],
    ],
)
def test_unreadable_source_or_bad_options_exit_2(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["report", *argv, "--no-progress"]) == 2


def test_bad_day_exits_2() -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--from", "yesterday", "--to", "2026-12-01"])
    assert exit_.value.code == 2
