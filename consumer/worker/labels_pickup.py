"""The label pickup's thread in each processor process (docs/labels.md).

A background thread, not a step of the batch: reading a label file must never delay a shard's
records or its checkpoints, and a label file is not part of any shard. Every processor runs
one; the claim in Redis (consumer/labels/pickup.py) lets one of them apply each file. The
first poll comes after a random part of the interval, so the fleet's processors, started
together, do not list the bucket together. A failed poll (S3 or Redis away, anything
unexpected) is logged and counted (`labels.pickup_failures`) and the next one waits longer,
doubling up to BACKOFF_MAX_S; the thread never stops the processor, and it dies with it
(daemon thread: a file cut short is applied again by the next claim, idempotently).
"""

from __future__ import annotations

import os
import random
import socket
import threading
from collections.abc import Callable
from typing import Any

from consumer.infra.logs import get_logger
from consumer.infra.metrics import METRICS
from consumer.labels.pickup import LabelPickup
from consumer.settings.config import Settings

log = get_logger(__name__)

BACKOFF_MAX_S = 600.0


class LabelPickupThread:
    """Calls `pickup.poll_once` every `interval_s`, backing off after failures."""

    def __init__(
        self,
        make_pickup: Callable[[], LabelPickup],
        interval_s: float,
        first_wait_s: float | None = None,
    ) -> None:
        self._make_pickup = make_pickup
        self._pickup: LabelPickup | None = None
        self._interval_s = interval_s
        self._first_wait_s = random.uniform(0, interval_s) if first_wait_s is None else first_wait_s
        self._stop = threading.Event()
        self.failures = 0
        self.polls = 0
        self._thread = threading.Thread(target=self._run, name="labels-pickup", daemon=True)

    def start(self) -> LabelPickupThread:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def next_wait_s(self) -> float:
        """The interval, doubled per consecutive failure, at most BACKOFF_MAX_S."""
        if not self.failures:
            return self._interval_s
        return float(min(self._interval_s * 2 ** min(self.failures, 16), BACKOFF_MAX_S))

    def poll(self) -> None:
        """One poll; never raises."""
        try:
            if self._pickup is None:
                self._pickup = self._make_pickup()
            self._pickup.poll_once()
            self.failures = 0
        except Exception as exc:  # nothing may stop the processor
            self.failures += 1
            METRICS.incr("labels.pickup_failures")
            log.warning(
                "labels_pickup_failed",
                error=repr(exc)[:500],
                failures=self.failures,
                retry_in_s=self.next_wait_s(),
            )
        finally:
            self.polls += 1

    def _run(self) -> None:
        wait = self._first_wait_s
        while not self._stop.wait(wait):
            self.poll()
            wait = self.next_wait_s()


def start_label_pickup(settings: Settings) -> LabelPickupThread | None:
    """The processor's pickup thread, or None when FRAUD_LABELS_POLL_S is 0."""
    if settings.labels_poll_s <= 0:
        return None

    def make() -> LabelPickup:
        # Imported here: the wiring's clients, built on the thread's first poll, not at start.
        from consumer.infra.aws_clients import aws_client
        from consumer.worker.wiring import redis_client

        return _pickup(settings, aws_client("s3", settings.region), redis_client(settings))

    return LabelPickupThread(make, settings.labels_poll_s).start()


def _pickup(settings: Settings, s3: Any, redis: Any) -> LabelPickup:
    return LabelPickup(
        s3,
        redis,
        settings.bucket,
        settings.prefix,
        settings.labels_prefix,
        owner=f"{socket.gethostname()}:{os.getpid()}",
    )
