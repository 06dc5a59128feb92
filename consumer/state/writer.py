"""A batch's state save off the critical path: sent in the background, waited for before the
next batch reads state, before its alerts are marked, and before any checkpoint.

Saving a batch's history is one pipelined Redis round trip in which Redis runs the save script for
every account of the batch: a large share of a batch's time, spent waiting (measured:
docs/benchmarks.md#state-writer). Sent from a background thread, that wait overlaps the end of the
batch, the status line to the daemon and the decoding of the next batch (both threads share the GIL,
but the wait on the socket releases it).

Nothing is weakened: at most one save is in flight; the next batch's load is told about it and
waits for it when it reads an account the save writes (a record always sees its predecessors'
state; usually the cache holds those accounts and nothing waits), the alerted marks wait for it
(they update the keys it creates), and the checkpoint policy settles it before any flush, so no
record is checkpointed before its state is in Redis. A save that gave up (retries exhausted)
raises at the next wait (at the latest when the next batch submits its own save, before that
batch publishes anything), and the processor exits as for any other give-up.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from consumer.state.store import PreparedSave, SaveInFlight


class StateWriter:
    """Runs one save at a time on a background thread."""

    def __init__(self) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state-save")
        self._pending: tuple[Future[int], PreparedSave] | None = None

    def submit(self, save: Callable[[], int], prepared: PreparedSave) -> Future[int]:
        """Start `save` (which writes `prepared`) once the previous one is done; its future
        (alert marks wait on it)."""
        self.wait()
        future = self._worker.submit(save)
        self._pending = (future, prepared)
        return future

    def in_flight(self) -> SaveInFlight | None:
        """The save still being written, for the next load; None once it is written (a save
        that gave up raises here)."""
        if self._pending is None:
            return None
        future, prepared = self._pending
        if future.done():
            self.wait()
            return None
        return SaveInFlight(prepared, self.wait)

    def wait(self) -> None:
        """Until the save in flight is written; raises its error if it gave up."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending[0].result()
