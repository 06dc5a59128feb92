"""Alert sinks for the alert process's tests, built in the child process by a picklable factory.

The child cannot share a fake with the test, so what it publishes is appended to a file the test
reads; each behaviour the parent must survive (refusals, give-ups, a crash, a hang, stray output
on stdout) is one flag.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from consumer.infra.metrics import METRICS
from consumer.infra.retry import PartialFailure, call_with_retries
from consumer.settings.config import RetryConfig
from consumer.sinks.alerts import Alert, RejectedAlert

FAST_RETRY = RetryConfig(max_attempts=2, max_wait_s=0.01)


@dataclass
class FileSink:
    """Appends each published batch's transaction ids (one JSON list a line) to `path`."""

    path: Path
    refuse: frozenset[str] = frozenset()
    behaviour: str = "ok"  # ok | give_up | crash | hang | noisy | raise

    def publish(self, alerts: Sequence[Alert]) -> list[RejectedAlert]:
        if self.behaviour == "crash":
            os._exit(9)
        if self.behaviour == "hang":
            time.sleep(3600)
        if self.behaviour == "raise":
            raise ValueError("a bug in the sink")
        if self.behaviour == "give_up":
            call_with_retries("sns_alerts", _always_fails, FAST_RETRY)
        if self.behaviour == "noisy":
            print("noise from print")
            sys.stdout.flush()
            os.write(1, b"noise on fd 1\n")
        accepted = [a.transaction_id for a in alerts if a.transaction_id not in self.refuse]
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"pid": os.getpid(), "ids": accepted}) + "\n")
        METRICS.incr("alerts.sent", len(accepted))
        METRICS.observe_ms("sns.publish", 2.0)
        return [
            RejectedAlert(a, "InvalidParameter", "refused for the test")
            for a in alerts
            if a.transaction_id in self.refuse
        ]


def _always_fails() -> None:
    raise PartialFailure("2 alerts failed: InternalError")


def file_sink(path: str, refuse: tuple[str, ...] = (), behaviour: str = "ok") -> FileSink:
    if behaviour == "cannot_start":
        raise RuntimeError("no SNS endpoint for the test")
    if behaviour == "dies_at_start":
        os._exit(7)
    return FileSink(Path(path), frozenset(refuse), behaviour)
