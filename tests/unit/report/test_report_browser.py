"""The report as a person sees it: `fraudstream report` writes the HTML of a small output tree,
Debian's Chromium (headless, installed by scripts/setup.sh) draws it; the screenshot is not
blank, every chart drew data marks, and every number on the page is the JSON's.

The page's convention (consumer/report/render.py): a headline number is an element
`data-figure="<dotted path into the JSON>"` whose text is the JSON value as `json.dumps` writes
it; a chart is an inline `<svg data-chart="<name>">` with a rect, path, circle or polyline per data
point. `--dump-dom` gives the DOM after load, as the browser parsed it.

FRAUD_REPORT_SCREENSHOT=<path> also copies the screenshot there (how
docs/images/report-example.png was made).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.unit.report.analytics_sample import DAYS, write_sample

CHROMIUM = shutil.which("chromium")
MARKS = {"rect", "path", "circle", "polyline", "line"}


class Page(HTMLParser):
    """The `[data-figure]` texts and, per `svg[data-chart]`, its data marks."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[tuple[str, str]] = []
        self.charts: dict[str, int] = {}
        self._figure: str | None = None
        self._text: list[str] = []
        self._chart: str | None = None
        self._frame_lines = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("data-figure") is not None:
            self._figure = attributes["data-figure"]
            self._text = []
        if tag == "svg" and attributes.get("data-chart") is not None:
            self._chart = str(attributes["data-chart"])
            assert self._chart not in self.charts, f"two charts named {self._chart}"
            self.charts[self._chart] = 0
            self._frame_lines = 0
        elif self._chart is not None and tag in MARKS:
            # The frame's axis is one <line>; data marks are the rest.
            if tag == "line" and self._frame_lines == 0:
                self._frame_lines = 1
            else:
                self.charts[self._chart] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._chart = None
        if self._figure is not None and tag in ("span", "div", "td"):
            self.figures.append((self._figure, "".join(self._text)))
            self._figure = None

    def handle_data(self, data: str) -> None:
        if self._figure is not None:
            self._text.append(data)


def at(data: Any, path: str) -> Any:
    for part in path.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM, "chromium is not installed: run scripts/setup.sh"
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # as root in CI; the page is our own file, no network
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--allow-file-access-from-files",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """`fraudstream report` over the sample tree: the HTML file and the JSON figures."""
    tmp = tmp_path_factory.mktemp("report")
    write_sample(tmp / "outputs")
    html, figures = tmp / "report.html", tmp / "report.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "consumer.cli",
            "report",
            "--from",
            DAYS[0],
            "--to",
            DAYS[1],
            "--source",
            str(tmp / "outputs"),
            "--out",
            str(html),
            "--json",
            str(figures),
            "--no-progress",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return html, json.loads(figures.read_text())


def test_the_browser_draws_the_report(report: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    html, _ = report
    shot = tmp_path / "report.png"
    chromium("--window-size=1200,2400", f"--screenshot={shot}", html.as_uri())
    assert shot.is_file() and shot.stat().st_size > 0
    with Image.open(shot) as image:
        assert image.size == (1200, 2400)
        grey = list(image.convert("L").tobytes())
    # A blank page is one colour; text, tiles and bars make the pixels vary.
    assert statistics.pvariance(grey) > 100, "the screenshot is blank"
    dark = sum(1 for value in grey if value < 128) / len(grey)
    assert 0.005 < dark < 0.5, dark
    target = os.environ.get("FRAUD_REPORT_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)


def test_every_chart_drew_its_data_and_every_number_is_the_jsons(
    report: tuple[Path, dict[str, Any]],
) -> None:
    html, figures = report
    dom = chromium("--dump-dom", html.as_uri()).stdout
    assert "<svg" in dom
    page = Page()
    page.feed(dom)
    expected_charts = {
        "by_rule",
        "by_severity",
        "by_merchant_category",
        "by_channel",
        "by_hour",
        "precision_rules",
        "precision_shadow",
        "alert_rate",
        "psi",
    }
    assert expected_charts <= set(page.charts), set(page.charts)
    empty = sorted(name for name, marks in page.charts.items() if marks == 0)
    assert not empty, f"charts without data marks: {empty}"
    assert len(page.figures) >= 10
    paths = [path for path, _ in page.figures]
    for headline in ("headline.judged.count", "headline.flagged.count", "headline.fraud.rate"):
        assert headline in paths
    wrong = [
        (path, text, at(figures, path))
        for path, text in page.figures
        if text != json.dumps(at(figures, path))
    ]
    assert not wrong, wrong[:5]
    # The figures are this tree's, not zeros that would match anything.
    assert figures["headline"]["judged"]["count"] == 24
    assert figures["headline"]["flagged"]["count"] > 0
