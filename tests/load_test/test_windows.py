"""load_test.windows: a long run cut into windows, and the drift a soak is judged by."""

from __future__ import annotations

import pytest

from load_test.windows import drift, render_windows, window_rows

T0 = 1_000_000.0


def _process_row(t: float, processors: float, load: float = 1.0) -> dict[str, float]:
    return {"t": t, "processors_rss_mb": processors, "daemon_jvm_rss_mb": 250.0, "load1": load}


def test_latency_counts_in_the_window_its_record_was_put() -> None:
    # A record put at 59.5 s whose alert comes at 61 s belongs to the first window.
    pairs = [(T0 + 10, T0 + 10.2), (T0 + 59.5, T0 + 61.0), (T0 + 70, T0 + 70.3)]
    puts = [T0 + s for s in (10, 59.5, 70, 119)]
    rows = window_rows(T0, pairs, puts, [], 60.0)
    assert [r["alerts"] for r in rows] == [2, 1]
    assert rows[0]["alert_max_s"] == pytest.approx(1.5)
    assert rows[1]["alert_p50_s"] == pytest.approx(0.3)
    assert [r["put_per_s"] for r in rows] == [round(2 / 60, 1), round(2 / 60, 1)]


def test_memory_is_read_at_each_windows_end_with_its_peak_beside() -> None:
    samples = [_process_row(t, mb) for t, mb in ((5, 200), (30, 260), (55, 210), (65, 220))]
    rows = window_rows(T0, [], [T0 + 1, T0 + 100], samples, 60.0)
    assert rows[0]["processors_rss_mb"] == 210
    assert rows[0]["processors_rss_peak_mb"] == 260
    assert rows[1]["processors_rss_mb"] == 220
    assert rows[1]["kinesis_rss_mb"] is None  # not sampled: no value, not zero


def test_sampler_offset_shifts_samples_into_the_runs_windows() -> None:
    # The sampler started 2 s before the run: its t=61 is the run's 59 s.
    rows = window_rows(T0, [], [T0 + 1, T0 + 100], [_process_row(61, 300)], 60.0, -2.0)
    assert rows[0]["processors_rss_mb"] == 300
    assert rows[1]["processors_rss_mb"] is None


def test_drift_compares_the_first_window_after_warmup_with_the_last_full_one() -> None:
    rows = [
        {"put_per_s": 1000.0, "alert_p50_s": 0.5, "alert_p99_s": 2.0, "processors_rss_mb": 150.0},
        {"put_per_s": 1000.0, "alert_p50_s": 0.2, "alert_p99_s": 0.4, "processors_rss_mb": 200.0},
        {"put_per_s": 1000.0, "alert_p50_s": 0.21, "alert_p99_s": 0.45, "processors_rss_mb": 230.0},
        {"put_per_s": 990.0, "alert_p50_s": 0.22, "alert_p99_s": 0.5, "processors_rss_mb": 240.0},
        # the run ended a few seconds into this window: not a trend
        {"put_per_s": 100.0, "alert_p50_s": 0.9, "alert_p99_s": 3.0, "processors_rss_mb": 400.0},
    ]
    moved = drift(rows)
    assert moved["processors_rss_mb"] == pytest.approx(40.0)
    assert moved["alert_p99_s"] == pytest.approx(0.1)
    assert moved["moto_rss_mb"] is None
    assert drift(rows[:2]) == {}


def test_render_shows_a_dash_for_what_was_not_measured() -> None:
    rows = window_rows(T0, [(T0 + 1, T0 + 1.25)], [T0 + 1], [_process_row(10, 180)], 60.0)
    text = render_windows(rows)
    assert "0.250" in text and "180" in text and " - " in text


def test_window_width_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        window_rows(T0, [], [], [], 0.0)
