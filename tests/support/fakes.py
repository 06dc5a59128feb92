"""In-memory stand-ins for the S3 batches and the alert publisher, for pipeline-level tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from consumer.records import RecordPosition
from consumer.sinks.alerts import Alert


class ManualClock:
    """A monotonic clock that moves only when a test sets `now`."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class CollectingBatch:
    """Collects the lines a pipeline hands to an S3 batch."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def add(self, line: bytes, position: RecordPosition) -> None:
        self.lines.append(json.loads(line))


class CollectingAlerts:
    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def publish(self, alerts: Sequence[Alert]) -> list[Any]:
        self.sent.extend(alerts)
        return []
