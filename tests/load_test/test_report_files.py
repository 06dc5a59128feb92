"""load_test.report_files: the names and contents of the files every load test leaves in --out."""

from __future__ import annotations

import calendar
import json
from pathlib import Path

from load_test.report_files import report_line, write_report

# 2026-01-02T03:04:05Z: the stamp is the run's start in UTC, whatever the machine's zone.
STARTED = float(calendar.timegm((2026, 1, 2, 3, 4, 5, 0, 0, 0)))
DOCUMENT = {"zeta": 1, "alpha": {"b": 2, "a": [1, 2]}}


def test_writes_the_report_and_the_chart_named_after_the_start(tmp_path: Path) -> None:
    drawn: list[Path] = []

    def draw(path: Path) -> bool:
        drawn.append(path)
        path.write_bytes(b"\x89PNG")
        return True

    report, chart = write_report(tmp_path, "load", STARTED, DOCUMENT, draw)

    assert report == tmp_path / "load-20260102T030405.json"
    assert chart == tmp_path / "load-20260102T030405.png"
    assert drawn == [chart]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "load-20260102T030405.json",
        "load-20260102T030405.png",
    ]
    text = report.read_text()
    assert json.loads(text) == DOCUMENT
    # Indented with sorted keys, as the tests wrote it before: reports of two runs diff cleanly.
    assert text == json.dumps(DOCUMENT, indent=2, sort_keys=True)
    assert text.index('"alpha"') < text.index('"zeta"')
    assert text.index('"a"') < text.index('"b"')
    assert report_line(report, chart) == f"report: {report}, chart: {chart}"


def test_no_chart_when_draw_declines(tmp_path: Path) -> None:
    report, chart = write_report(tmp_path, "catchup", STARTED, DOCUMENT, lambda path: False)

    assert chart is None
    assert [p.name for p in tmp_path.iterdir()] == ["catchup-20260102T030405.json"]
    assert json.loads(report.read_text()) == DOCUMENT
    assert report_line(report, chart) == f"report: {report}"


def test_creates_the_missing_directory(tmp_path: Path) -> None:
    out = tmp_path / "reports" / "today"

    report, _ = write_report(out, "scaleout", STARTED, DOCUMENT, lambda path: False)

    assert out.is_dir()
    assert report == out / "scaleout-20260102T030405.json"
    assert report.is_file()
