"""The duplicate window of a backtest: a few bytes an id, not an object each (sizes:
docs/rules-as-data.md#memory).

A day of a busy shard is ~86 M transaction ids inside one 24 h window, too many for a Python object
each. Each id is kept as its 8-byte BLAKE2b digest, twice: in one of 65,536 bytearrays chosen by the
digest's first two bytes (membership: a byte search over ~1,300 digests for a whole day, in C), and
in a first-in-first-out bytearray beside an array of the stream clock at first sight (expiry: the
clock only moves forward, so the ids to forget are always at the front, and each is forgotten at the
first advance of the clock to a whole window or more after its first sight:
`clock - first >= window_s`, in floats).

The price of the digest: two different ids with equal digests make the later a false duplicate (not
judged). With n ids in the window, each new id collides with probability n / 2**64: over a day of a
busy shard, one wrongly skipped record in some thousands of such days (the arithmetic:
docs/rules-as-data.md#memory).
"""

from __future__ import annotations

from array import array
from hashlib import blake2b

_BUCKETS = 1 << 16  # chosen by the first two bytes of a digest
_COMPACT_AFTER = 1 << 20  # forgotten ids at the front before the FIFO is shifted


def digest(transaction_id: str) -> bytes:
    """8 bytes of BLAKE2b over the id's UTF-8 (the same in every process and run)."""
    return blake2b(transaction_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()


def _find(bucket: bytearray, key: bytes) -> int:
    """Where `key` is in `bucket` as a whole 8-byte digest, or -1."""
    at = bucket.find(key)
    while at > 0 and at & 7:  # straddles two digests: look further
        at = bucket.find(key, at + 1)
    return at


class DuplicateWindow:
    """Transaction ids first seen within the last `window_s` of the stream clock."""

    __slots__ = ("_at", "_buckets", "_count", "_head", "_ids", "_window_s")

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._buckets = [bytearray() for _ in range(_BUCKETS)]
        self._ids = bytearray()  # digests in the order first seen, 8 bytes each
        self._at = array("d")  # the clock when each was first seen (never decreasing)
        self._head = 0  # entries before it are forgotten
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def advance(self, clock: float) -> None:
        """The clock moved to `clock`: forget ids first seen a whole window ago or more."""
        at, head, window = self._at, self._head, self._window_s
        end = len(at)
        if head == end or clock - at[head] < window:
            return
        ids, buckets = self._ids, self._buckets
        start = head
        while head < end and clock - at[head] >= window:
            key = bytes(ids[head * 8 : head * 8 + 8])
            bucket = buckets[key[0] << 8 | key[1]]
            place = _find(bucket, key)
            del bucket[place : place + 8]
            head += 1
        self._count -= head - start
        if head >= _COMPACT_AFTER and head * 2 >= end:
            del ids[: head * 8]
            del at[:head]
            head = 0
        self._head = head

    def seen_before(self, transaction_id: str, clock: float) -> bool:
        """True if the id was first seen within the window; else it is remembered at `clock`
        (call `advance(clock)` first). The digest is `digest`'s, inlined (once per record)."""
        key = blake2b(transaction_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        bucket = self._buckets[key[0] << 8 | key[1]]
        if _find(bucket, key) >= 0:
            return True
        bucket += key
        self._ids += key
        self._at.append(clock)
        self._count += 1
        return False
