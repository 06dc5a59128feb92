from pathlib import Path

import pytest

from load_test.report import Report, percentiles, plot, render_text, score_labels, timeline


def test_percentiles_of_a_known_distribution() -> None:
    values = [float(n) for n in range(1, 101)]
    result = percentiles(values)
    assert result["count"] == 100
    assert (result["p50"], result["p95"], result["p99"], result["max"]) == (
        51.0,
        96.0,
        100.0,
        100.0,
    )
    assert percentiles([]) == {}


def test_recall_and_precision_per_rule_and_overall() -> None:
    expected = {
        "a": frozenset({"high_amount"}),
        "b": frozenset({"high_amount", "cross_border"}),
        "c": frozenset(),
        "d": frozenset({"velocity"}),
    }
    found = {"a": frozenset({"high_amount"}), "c": frozenset({"cross_border"})}
    report = Report()
    score_labels(expected, found, report)
    assert report.recall_by_rule["high_amount"] == 0.5  # a found, b missed
    assert report.precision_by_rule["high_amount"] == 1.0
    assert report.precision_by_rule["cross_border"] == 0.0  # c is not labelled cross_border
    assert report.recall_by_rule["velocity"] == 0.0
    assert report.precision_by_rule["velocity"] is None
    assert report.recall == round(1 / 3, 4)  # of a, b, d only a flagged
    assert report.precision == 0.5  # of a, c only a is fraud


def test_timeline_buckets_by_second() -> None:
    points = timeline(100.0, [100.1, 100.5, 101.2], [(100.1, 100.4), (100.5, 101.6)])
    assert [p["t"] for p in points] == [0.0, 1.0]
    assert points[0]["produced_per_s"] == 2 and points[0]["alerts_per_s"] == 1
    assert points[1]["alert_max"] == pytest.approx(1.1)


def test_text_and_chart(tmp_path: Path) -> None:
    report = Report(produced=10, alert_latency_s=percentiles([0.1, 0.2]))
    report.timeline = timeline(0.0, [0.1, 1.1], [(0.1, 0.3)])
    assert "put -> alert" in render_text(report)
    assert "txn -> put" not in render_text(report)  # no producer lag measured: no line
    report.put_lag_s = percentiles([0.01, 0.03, 2.5])
    assert "txn -> put      p50 0.030 s" in render_text(report)
    assert '"put_lag_s"' in report.to_json()
    if plot(report, tmp_path / "chart.png"):
        assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"


def test_chart_with_memory_panel(tmp_path: Path) -> None:
    report = Report(produced=2)
    report.timeline = timeline(0.0, [0.1, 1.1], [(0.1, 0.3)])
    rows = [{"t": 0.0, "processors_rss_mb": 200.0}, {"t": 1.0, "processors_rss_mb": 210.0}]
    two = tmp_path / "two.png"
    three = tmp_path / "three.png"
    if plot(report, two) and plot(report, three, rows, sampler_offset_s=-0.5):
        from PIL import Image

        # the memory panel makes the figure taller
        assert Image.open(three).size[1] > Image.open(two).size[1]
