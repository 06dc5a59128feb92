"""The alerts' tap queue, drained while the load test runs rather than once at its end.

moto's SQS checks every message's retention against the queue's attributes, which it recomputes
over the whole queue: a receive costs time in proportion to the queue's length per message, so
a queue left to fill for minutes takes many minutes to drain afterwards (2,000 messages: 107 s
in process). Drained every second, the queue stays short and each receive is cheap. The alert
latency does not depend on when a message is read: it comes from the SNS envelope's Timestamp.
"""

from __future__ import annotations

import threading
from typing import Any

from consumer.readback import drain_queue


class AlertTap(threading.Thread):
    """Receives and deletes the queue's messages every `interval_s` until `stop`."""

    def __init__(self, sqs: Any, queue_url: str, interval_s: float = 1.0) -> None:
        super().__init__(daemon=True, name="alert-tap")
        self._sqs = sqs
        self._queue_url = queue_url
        self._interval_s = interval_s
        self._halt = threading.Event()
        self._messages: list[dict[str, Any]] = []
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self._halt.wait(self._interval_s):
                self._messages += drain_queue(self._sqs, self._queue_url)
        except BaseException as exc:  # handed to stop(): a lost alert must not go unnoticed
            self._error = exc

    def stop(self) -> list[dict[str, Any]]:
        """Every message received, the queue drained one last time; raises what the thread
        failed with."""
        self._halt.set()
        self.join()
        if self._error is not None:
            raise self._error
        return self._messages + drain_queue(self._sqs, self._queue_url)
