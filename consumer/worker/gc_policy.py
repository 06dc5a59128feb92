"""Full garbage collections on a timer instead of by CPython's growth rule.

A processor keeps up to FRAUD_STATE_CACHE_ACCOUNTS accounts' history in memory (hundreds of
thousands of small objects) and allocates tens of objects per record. CPython runs a full
(generation 2) collection whenever the objects that survived into the old generation have grown by a
quarter, and each one walks every tracked object, the whole cache included: a large share of the
processor's CPU (measured: docs/benchmarks.md#gc-policy).

Our data holds almost no reference cycles: records, decisions and history entries are freed by
reference counting the moment they are dropped, and the young generations still collect the few
short-lived cycles (an exception and its traceback, say). So automatic full collections are
switched off and one runs at most every `every_s` seconds, between batches, which bounds what a
long-lived cycle could hold for a minute instead of letting it grow.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

from consumer.infra.logs import get_logger

log = get_logger(__name__)

FULL_COLLECTION_EVERY_S = 60.0
# A gen-1 collection count no process reaches: CPython never starts a full collection itself.
_NEVER = 2**31 - 1


class FullCollections:
    """Runs a full collection when one is due; `install` switches off the automatic ones."""

    def __init__(
        self,
        every_s: float = FULL_COLLECTION_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        collect: Callable[[], int] = gc.collect,
    ) -> None:
        self._every_s = every_s
        self._clock = clock
        self._collect = collect
        self._last = clock()

    @classmethod
    def install(cls, every_s: float = FULL_COLLECTION_EVERY_S) -> FullCollections:
        """For the processor's own process only (it changes the interpreter's thresholds)."""
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, _NEVER)
        return cls(every_s)

    def tick(self) -> bool:
        """Between batches: a full collection if `every_s` passed since the last; whether it ran."""
        now = self._clock()
        if now - self._last < self._every_s:
            return False
        freed = self._collect()
        self._last = self._clock()
        log.debug("gc_full_collection", freed=freed, ms=round((self._last - now) * 1000, 1))
        return True
