"""The alerts' tap queue, drained while the load test runs rather than once at its end.

moto's SQS checks every message's retention against the queue's attributes, which it recomputes
over the whole queue: a receive costs time in proportion to the queue's length per message, so
a queue left to fill for minutes takes many minutes to drain afterwards (2,000 messages: 107 s
in process), and SNS's deliveries into it slow down too. Drained every second, the queue stays
short. The alert latency does not depend on when a message is read: it comes from the SNS
envelope's Timestamp.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from consumer.infra.readback import drain_queue


class AlertTap(threading.Thread):
    """Receives and deletes the queue's messages every `interval_s` until `stop`.

    A drain that fails (moto busy, a refused delete) is reported on stderr, counted in `errors`
    and tried again at the next tick; what it had received is kept. A message whose delete was
    refused comes back later: messages are told apart by their SNS MessageId.
    """

    def __init__(self, sqs: Any, queue_url: str, interval_s: float = 1.0) -> None:
        super().__init__(daemon=True, name="alert-tap")
        self._sqs = sqs
        self._queue_url = queue_url
        self._interval_s = interval_s
        self._halt = threading.Event()
        self._received: list[dict[str, Any]] = []
        self.errors = 0

    def run(self) -> None:
        while not self._halt.wait(self._interval_s):
            try:
                drain_queue(self._sqs, self._queue_url, into=self._received)
            except Exception as exc:  # the next tick tries again; stop() drains once more
                self.errors += 1
                print(f"alert tap: draining failed, will retry: {exc!r}", file=sys.stderr)

    def stop(self) -> list[dict[str, Any]]:
        """Every message received, the queue drained one last time (an error here raises:
        alerts would be missing from the report), each message once."""
        self._halt.set()
        self.join()
        drain_queue(self._sqs, self._queue_url, into=self._received)
        unique: dict[str, dict[str, Any]] = {}
        for index, message in enumerate(self._received):
            unique.setdefault(str(message.get("MessageId", index)), message)
        return list(unique.values())
