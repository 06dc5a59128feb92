"""In-process counters, aggregated per batch and emitted together (never one API call per record).

For now they are written as one structured `metrics` log line per commit; issue #7 ships the
same snapshot to CloudWatch.
"""

from __future__ import annotations

import threading
from collections import Counter


class Metrics:
    """Named counters that accumulate between two snapshots."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()  # alerts are published from a small thread pool

    def incr(self, name: str, value: int = 1) -> None:
        with self._lock:
            self._counts[name] += value

    def observe_ms(self, name: str, millis: float) -> None:
        """A duration: its count, total and maximum since the last snapshot."""
        self._counts[f"{name}.count"] += 1
        self._counts[f"{name}.total_ms"] += round(millis)
        self._counts[f"{name}.max_ms"] = max(self._counts[f"{name}.max_ms"], round(millis))

    def get(self, name: str) -> int:
        return self._counts[name]

    def snapshot_and_reset(self) -> dict[str, int]:
        with self._lock:
            counts = dict(self._counts)
            self._counts.clear()
        return counts


METRICS = Metrics()
