"""In-process counters, aggregated per batch and emitted together (never one API call per record).

Each snapshot is written as one structured `metrics` log line (per commit, and per publishing
interval) and handed to every subscriber: consumer/infra/cloudwatch.py adds it up and ships it to
CloudWatch about once a minute.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Mapping

Snapshot = dict[str, float]


class Metrics:
    """Named counters that accumulate between two snapshots."""

    def __init__(self) -> None:
        self._counts: defaultdict[str, float] = defaultdict(float)
        self._lock = threading.Lock()  # alerts are published from a small thread pool
        self._subscribers: list[Callable[[Snapshot], None]] = []

    def incr(self, name: str, value: float = 1) -> None:
        with self._lock:
            self._counts[name] += value

    def incr_many(self, counts: Mapping[str, float]) -> None:
        """Add several counters under one lock: a batch's aggregate (e.g. its score histogram)
        costs one lock, not one per counter."""
        with self._lock:
            for name, value in counts.items():
                self._counts[name] += value

    def observe_ms(self, name: str, millis: float) -> None:
        """A duration: its count, total, minimum and maximum since the last snapshot (to the
        microsecond: a Redis round trip is often well under a millisecond)."""
        millis = round(millis, 3)
        with self._lock:
            first = self._counts[f"{name}.count"] == 0
            self._counts[f"{name}.count"] += 1
            self._counts[f"{name}.total_ms"] = round(self._counts[f"{name}.total_ms"] + millis, 3)
            low = self._counts[f"{name}.min_ms"]
            self._counts[f"{name}.min_ms"] = millis if first else min(low, millis)
            self._counts[f"{name}.max_ms"] = max(self._counts[f"{name}.max_ms"], millis)

    def merge(self, counts: Snapshot) -> None:
        """Add another process's snapshot (consumer/sinks/alert_process.py): counts and totals add
        up, a duration's minimum and maximum combine."""
        with self._lock:
            for name, value in counts.items():
                if name.endswith(".min_ms"):
                    seen = self._counts.get(name[: -len(".min_ms")] + ".count", 0) > 0
                    self._counts[name] = min(self._counts[name], value) if seen else value
                elif name.endswith(".max_ms"):
                    self._counts[name] = max(self._counts[name], value)
            for name, value in counts.items():
                if not name.endswith((".min_ms", ".max_ms")):
                    self._counts[name] += value

    def get(self, name: str) -> float:
        return self._counts.get(name, 0)

    def subscribe(self, subscriber: Callable[[Snapshot], None]) -> None:
        """Call `subscriber` with every non-empty snapshot (from whichever thread takes it)."""
        with self._lock:
            self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Callable[[Snapshot], None]) -> None:
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

    def snapshot_and_reset(self) -> Snapshot:
        with self._lock:
            # Whole numbers stay ints in the log line (the load test and bench sum ints).
            counts: Snapshot = {k: int(v) if v == int(v) else v for k, v in self._counts.items()}
            self._counts.clear()
            subscribers = list(self._subscribers)
        if counts:
            for subscriber in subscribers:
                subscriber(counts)
        return counts


METRICS = Metrics()
