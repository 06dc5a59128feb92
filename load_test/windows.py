"""A long load test cut into windows: is latency flat, is memory flat?

A soak's question is not the run's percentiles but whether they move: put -> alert latency and
each process group's resident memory per window (`--window` seconds of `load_test.run`), and the
drift from the first window after the warm-up to the last. Memory is read at each window's end
(what the process holds by then), not its peak, so a collection in flight does not pass for
growth; the peak is reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from load_test.report import percentiles

# Groups of `load_test.run.ProcessSampler` rows whose memory a soak follows.
MEMORY_GROUPS: tuple[str, ...] = ("processors", "daemon_jvm", "kinesis", "moto", "redis")


def window_rows(
    started: float,
    alert_pairs: Sequence[tuple[float, float]],
    put_times: Sequence[float],
    process_rows: Sequence[Mapping[str, float]],
    width_s: float,
    sampler_offset_s: float = 0.0,
) -> list[dict[str, Any]]:
    """One row per `width_s` of the run from `started` (epoch seconds): records put per second,
    alerts and their put -> alert percentiles (by the alert's put time, so a slow alert counts
    in the window its record was put), and per memory group the RSS (MiB) at the window's end
    and its peak within it. `process_rows` carry `t` in seconds since the sampler started,
    `sampler_offset_s` after `started`."""
    if width_s <= 0:
        raise ValueError("width_s must be positive")
    latest = max([*put_times, *(put for put, _ in alert_pairs)], default=started)
    count = max(1, math.ceil((latest - started) / width_s))
    puts = [0] * count
    for put in put_times:
        puts[min(count - 1, max(0, int((put - started) // width_s)))] += 1
    latencies: list[list[float]] = [[] for _ in range(count)]
    for put, published in alert_pairs:
        latencies[min(count - 1, max(0, int((put - started) // width_s)))].append(published - put)
    samples: list[list[Mapping[str, float]]] = [[] for _ in range(count)]
    for sample in process_rows:
        index = int((sample["t"] + sampler_offset_s) // width_s)
        if 0 <= index < count:
            samples[index].append(sample)
    rows: list[dict[str, Any]] = []
    for index in range(count):
        row: dict[str, Any] = {
            "start_s": round(index * width_s, 1),
            "put_per_s": round(puts[index] / width_s, 1),
            "alerts": len(latencies[index]),
        }
        latency = percentiles(latencies[index])
        for key in ("p50", "p99", "max"):
            row[f"alert_{key}_s"] = latency.get(key)
        for group in MEMORY_GROUPS:
            values = [s[f"{group}_rss_mb"] for s in samples[index] if f"{group}_rss_mb" in s]
            row[f"{group}_rss_mb"] = values[-1] if values else None
            row[f"{group}_rss_peak_mb"] = max(values) if values else None
        loads = [s["load1"] for s in samples[index] if "load1" in s]
        row["load1_mean"] = round(sum(loads) / len(loads), 2) if loads else None
        rows.append(row)
    return rows


def drift(rows: Sequence[Mapping[str, Any]], warmup_windows: int = 1) -> dict[str, float | None]:
    """Last full window minus the first after `warmup_windows`: p50/p99 latency (s) and each
    group's end-of-window RSS (MiB). The last row is dropped when the run ended inside it (fewer
    records put than the median window), so a part-filled window does not pass for a trend.
    None where either side has no value, or the run has too few windows to compare."""
    full = list(rows)
    if len(full) > 2:
        rates = sorted(row["put_per_s"] for row in full)
        if full[-1]["put_per_s"] < 0.9 * rates[len(rates) // 2]:
            full = full[:-1]
    if len(full) < warmup_windows + 2:
        return {}
    first, last = full[warmup_windows], full[-1]
    keys = ["alert_p50_s", "alert_p99_s", *(f"{g}_rss_mb" for g in MEMORY_GROUPS)]
    out: dict[str, float | None] = {}
    for key in keys:
        a, b = first.get(key), last.get(key)
        out[key] = None if a is None or b is None else round(b - a, 4)
    return out


def render_windows(rows: Sequence[Mapping[str, Any]]) -> str:
    """The windows as a text table: latency, put rate and memory at each window's end."""

    def cell(value: Any, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    header = (
        f"{'from s':>7} {'put/s':>7} {'alerts':>7} {'p50 s':>6} {'p99 s':>6} {'max s':>6} "
        f"{'proc MB':>8} {'jvm MB':>7} {'kin MB':>7} {'moto MB':>8} {'redis MB':>8} {'load':>5}"
    )
    lines = [header]
    for row in rows:
        lines.append(
            f"{row['start_s']:>7.0f} {row['put_per_s']:>7.1f} {row['alerts']:>7d} "
            f"{cell(row['alert_p50_s'], 3):>6} {cell(row['alert_p99_s'], 3):>6} "
            f"{cell(row['alert_max_s'], 3):>6} "
            f"{cell(row['processors_rss_mb'], 0):>8} {cell(row['daemon_jvm_rss_mb'], 0):>7} "
            f"{cell(row['kinesis_rss_mb'], 0):>7} {cell(row['moto_rss_mb'], 0):>8} "
            f"{cell(row['redis_rss_mb'], 0):>8} {cell(row['load1_mean'], 2):>5}"
        )
    return "\n".join(lines)
