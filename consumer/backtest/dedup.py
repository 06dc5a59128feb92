"""The duplicate window of a backtest, in about 90 bytes an id instead of ~150.

A day of a busy shard is ~86 M transaction ids inside one 24 h window. Each id is kept as a
64-bit BLAKE2b digest (an int in a set) and, for expiry, in a first-in-first-out pair of arrays
(digest, stream clock at first sight): the clock only moves forward, so the ids to forget are
always at the front, and each is forgotten exactly when the old dict-of-ids forgot it (same
float comparison, on every advance of the clock).

The price of the digest: two different ids with equal digests make the later a false duplicate
(not judged). With n ids in the window, each new id collides with probability n / 2**64: over a
day of a busy shard (86 M ids, up to 86 M in the window) about 86e6 * 86e6 / 2 / 2**64 = 2e-4,
i.e. one wrongly skipped record in some 5,000 such days; for the 2.5 M-record files of the
benchmarks, about 2e-7. Keeping ids exactly would cost an object per id (~70 bytes more).
"""

from __future__ import annotations

from array import array
from hashlib import blake2b

_COMPACT_AFTER = 1 << 20  # forgotten ids at the front before the arrays are shifted


def digest(transaction_id: str) -> int:
    """64 bits of BLAKE2b over the id's UTF-8 bytes (the same in every process and run)."""
    raw = transaction_id.encode("utf-8", "surrogatepass")
    return int.from_bytes(blake2b(raw, digest_size=8).digest(), "little")


class DuplicateWindow:
    """Transaction ids first seen within the last `window_s` of the stream clock."""

    __slots__ = ("_at", "_head", "_ids", "_seen", "_window_s")

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._seen: set[int] = set()
        self._ids = array("Q")  # digests in the order first seen
        self._at = array("d")  # the clock when each was first seen (never decreasing)
        self._head = 0  # entries before it are forgotten

    def __len__(self) -> int:
        return len(self._seen)

    def advance(self, clock: float) -> None:
        """The clock moved to `clock`: forget ids first seen a whole window ago or more."""
        at, head, window = self._at, self._head, self._window_s
        end = len(at)
        if head == end or clock - at[head] < window:
            return
        ids, seen = self._ids, self._seen
        while head < end and clock - at[head] >= window:
            seen.discard(ids[head])
            head += 1
        if head >= _COMPACT_AFTER and head * 2 >= end:
            del ids[:head]
            del at[:head]
            head = 0
        self._head = head

    def seen_before(self, transaction_id: str, clock: float) -> bool:
        """True if the id was first seen within the window; else it is remembered at `clock`
        (call `advance(clock)` first)."""
        key = digest(transaction_id)
        seen = self._seen
        if key in seen:
            return True
        seen.add(key)
        self._ids.append(key)
        self._at.append(clock)
        return False
