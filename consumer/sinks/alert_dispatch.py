"""Alerts off the batch's critical path: published in the background, settled before a checkpoint.

A PublishBatch call to SNS is a network round trip; waiting for it inside every batch would cap a
shard's throughput (measured: docs/benchmarks.md#alert-dispatch) and make every later transaction's
alert wait too. So each batch's alerts (publish, then the alerted marks in Redis) go to one
background thread, in batch order, while the next batch is judged. Nothing is lost by this: the
checkpoint policy settles every job before it checkpoints, so no record is checkpointed before its
alert was accepted, and a crash before that replays the records and sends the alerts again (at least
once).

At most `max_in_flight` batches wait; a further submit waits for the oldest, so a slow SNS slows
the shard instead of growing memory. A job that failed (retries exhausted) raises at the next
submit, poll or settle, and the processor exits as for any other output give-up.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from consumer.sinks.alerts import RejectedAlert

MAX_IN_FLIGHT = 4

AlertJob = Callable[[], list[RejectedAlert]]


class AlertDispatcher:
    """Runs alert jobs one after the other on a background thread and hands back refusals."""

    def __init__(self, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._max_in_flight = max_in_flight
        # One thread: jobs run in submission order, so a FIFO topic keeps each account's order.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alerts")
        self._in_flight: deque[Future[list[RejectedAlert]]] = deque()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def submit(self, job: AlertJob) -> list[RejectedAlert]:
        """Queue a batch's job; returns refusals of jobs that finished meanwhile (or were waited
        for to make room). Raises the error of a failed earlier job."""
        rejected = self.poll()
        while len(self._in_flight) >= self._max_in_flight:
            rejected.extend(self._in_flight.popleft().result())
        self._in_flight.append(self._worker.submit(job))
        return rejected

    def poll(self) -> list[RejectedAlert]:
        """Refusals of the jobs finished so far, oldest first, without waiting."""
        rejected: list[RejectedAlert] = []
        while self._in_flight and self._in_flight[0].done():
            rejected.extend(self._in_flight.popleft().result())
        return rejected

    def settle(self) -> list[RejectedAlert]:
        """Wait for every queued job (before a checkpoint); their refusals, oldest first."""
        rejected: list[RejectedAlert] = []
        while self._in_flight:
            rejected.extend(self._in_flight.popleft().result())
        return rejected

    def discard(self) -> None:
        """Lease lost: forget the queued jobs. One already running finishes; its alerts were
        judged on records the new owner replays, and alerts are at-least-once anyway."""
        for future in self._in_flight:
            future.cancel()
        self._in_flight.clear()
