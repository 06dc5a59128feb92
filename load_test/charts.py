"""Panels the load tests' charts share: the stack's CPU and resident memory by role over time.

Rows are `load_test.run.ProcessSampler` rows (`t` in seconds, `<group>_cpu_pct`,
`<group>_rss_mb`, `load1`); the callers import matplotlib (only when drawing) and pass an axis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

CPU_LINES: tuple[tuple[str, str], ...] = (
    ("kinesis_cpu_pct", "Kinesis stand-in"),
    ("moto_cpu_pct", "moto"),
    ("daemon_jvm_cpu_pct", "daemon JVMs"),
    ("processors_cpu_pct", "processors + alert processes"),
)
MEMORY_LINES: tuple[tuple[str, str], ...] = (
    ("processors_rss_mb", "processors + alert processes"),
    ("daemon_jvm_rss_mb", "daemon JVMs"),
    ("kinesis_rss_mb", "Kinesis stand-in"),
    ("moto_rss_mb", "moto"),
    ("redis_rss_mb", "redis"),
)


def _lines(
    axis: Any,
    rows: Sequence[Mapping[str, float]],
    lines: Sequence[tuple[str, str]],
    offset_s: float,
) -> None:
    times = [row["t"] + offset_s for row in rows]
    for key, label in lines:
        if any(key in row for row in rows):
            axis.plot(times, [row.get(key, float("nan")) for row in rows], label=label)


def cpu_panel(
    axis: Any,
    rows: Sequence[Mapping[str, float]],
    offset_s: float = 0.0,
    legend: str = "upper left",
) -> None:
    """CPU (% of one core) of each stand-in, the daemons and the processors, and the load
    average x 100 dotted: which of them was the limit. `offset_s` moves the sampler's clock
    onto the chart's."""
    _lines(axis, rows, CPU_LINES, offset_s)
    if any("load1" in row for row in rows):
        axis.plot(
            [row["t"] + offset_s for row in rows],
            [100 * row.get("load1", float("nan")) for row in rows],
            ":",
            label="load average x 100",
        )
    axis.set_ylabel("CPU, % of one core")
    axis.legend(loc=legend)


def memory_panel(
    axis: Any,
    rows: Sequence[Mapping[str, float]],
    offset_s: float = 0.0,
    groups: Sequence[str] | None = None,
) -> None:
    """Resident memory (MiB) by role; `groups` (keys of MEMORY_LINES) limits the lines."""
    lines = [(k, label) for k, label in MEMORY_LINES if groups is None or k in groups]
    _lines(axis, rows, lines, offset_s)
    axis.set_ylabel("resident MB")
    axis.legend(loc="upper left")
