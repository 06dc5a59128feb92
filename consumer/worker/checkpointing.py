"""The one place that decides what is safe to checkpoint, and when.

A record may be checkpointed only once everything it produced is durable: its state is in Redis
(saved in the background, consumer/state/writer.py), its alerts were accepted by SNS (published
in the background, see consumer/sinks/alert_dispatch.py) and its S3 lines are in a written object.
`commit()` spells the order out:

  1. settle the state save and the alerts in flight (SNS refusals become dead letters);
  2. flush every S3 buffer (flagged, then dead letters), each retried and verified by the PUT;
  3. checkpoint the last record handed to the sinks;
  4. only then forget the position, so a failed step leaves everything to be redone.

Because a commit always flushes every buffer, and a refused checkpoint ends the work on the shard
(lease gone) or the worker (anything else), at most one written object is ever unconfirmed, and
it starts right after the last checkpoint: the replay rebuilds it under the same key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from amazon_kclpy.kcl import CheckpointError

from consumer.errors import FraudstreamError
from consumer.infra.logs import get_logger
from consumer.infra.metrics import METRICS
from consumer.records import RecordPosition

log = get_logger(__name__)

CHECKPOINT_ATTEMPTS = 5
# The daemon's answers that mean "this worker no longer owns the shard".
LEASE_GONE_ERRORS = frozenset({"ShutdownException"})
# Answers a retry cannot change: the protocol or the lease table is not what we think.
FATAL_ERRORS = frozenset({"InvalidStateException", "IllegalArgumentException"})


class LeaseGone(FraudstreamError, RuntimeError):
    """The KCL refused a checkpoint because this worker no longer holds the lease."""


class CheckpointFailed(FraudstreamError, RuntimeError):
    """A checkpoint could not be taken; the worker must exit and resume from the last one."""


class InFlight(Protocol):
    """Outputs still on their way (the state save, the alerts): settled before a flush; the
    alerts are dropped with the lease."""

    def settle_in_flight(self) -> None: ...
    def discard_in_flight(self) -> None: ...


class BufferedSink(Protocol):
    """A sink that buffers lines until flushed (consumer/sinks/s3_batches.py S3JsonLinesBatch):
    what the policy must make durable before it checkpoints, or forget with the lease."""

    def is_due(self) -> bool: ...
    def flush(self) -> str | None: ...
    def discard(self) -> None: ...


class CheckpointPolicy:
    """Tracks the last processed record and commits by count, bytes or age.

    After the KCL answers that the lease is gone, the policy is spent: it drops its buffers,
    and `lease_gone` tells the processor to do no further work on the shard. Writing on would
    produce objects that no checkpoint confirms, racing the new owner's replay.
    """

    def __init__(
        self,
        sinks: Sequence[BufferedSink],
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        in_flight: InFlight | None = None,
    ) -> None:
        self._sinks = sinks
        self._in_flight = in_flight
        self._max_age_s = max_age_s
        self._clock = clock
        self._sleep = sleep
        self._pending: RecordPosition | None = None
        self._last_commit = clock()
        self.lease_gone = False

    @property
    def pending(self) -> RecordPosition | None:
        """The last record handed to the sinks and not yet checkpointed."""
        return self._pending

    def processed(self, position: RecordPosition | None) -> None:
        """Every output of the records up to `position` has been handed to a sink."""
        if position is not None:
            self._pending = position

    def is_due(self) -> bool:
        """A buffer is full or old, or progress has waited longer than the age limit."""
        if any(sink.is_due() for sink in self._sinks):
            return True
        return self._pending is not None and self._clock() - self._last_commit >= self._max_age_s

    def commit_if_due(self, checkpointer: Any) -> None:
        if self.is_due():
            self.commit(checkpointer)

    def commit(self, checkpointer: Any) -> bool:
        """Flush every sink, then checkpoint the last processed record; False if nothing was."""
        self._flush_all()
        position = self._pending
        if position is not None:
            self._checkpoint(checkpointer, position.sequence_number, position.sub_sequence_number)
            log.info("checkpointed", sequence_number=position.sequence_number)
        self._pending = None
        self._last_commit = self._clock()
        metrics = METRICS.snapshot_and_reset()
        if metrics:
            log.info("metrics", **metrics)
        return position is not None

    def commit_shard_end(self, checkpointer: Any) -> None:
        """At SHARD_END: flush, then the no-argument checkpoint that lets child shards start."""
        self._flush_all()
        self._checkpoint(checkpointer, None, None)
        self._pending = None
        log.info("checkpointed_shard_end")

    def drop(self) -> None:
        """Lease lost: forget buffers and position; the new owner replays from the checkpoint."""
        if self._in_flight is not None:
            self._in_flight.discard_in_flight()
        for sink in self._sinks:
            sink.discard()
        self._pending = None

    def _flush_all(self) -> None:
        if self._in_flight is not None:
            self._in_flight.settle_in_flight()
        for sink in self._sinks:
            sink.flush()

    def _checkpoint(self, checkpointer: Any, sequence: str | None, sub: int | None) -> None:
        for attempt in range(1, CHECKPOINT_ATTEMPTS + 1):
            try:
                checkpointer.checkpoint(sequence, sub)
                METRICS.incr("checkpoints")
                return
            except CheckpointError as exc:
                error = str(getattr(exc, "value", exc))
                if error in LEASE_GONE_ERRORS:
                    # Outputs are idempotent, so the new owner's replay is safe; we stop here.
                    METRICS.incr("checkpoints.lease_gone")
                    self.lease_gone = True
                    self.drop()
                    raise LeaseGone(error) from exc
                if error in FATAL_ERRORS or attempt == CHECKPOINT_ATTEMPTS:
                    METRICS.incr("gave_up.checkpoint")
                    log.error("checkpoint_failed", error=error, attempts=attempt)
                    raise CheckpointFailed(error) from exc
                log.warning("checkpoint_retry", error=error, attempt=attempt)
                self._sleep(min(0.2 * 2**attempt, 5.0))
