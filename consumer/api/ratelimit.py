"""Per-key rate limits: a token bucket per key, in this process.

A bucket holds up to `burst` tokens and gains `rate_per_s` a second; a request takes one or is
refused with how long until one is there (the 429's Retry-After). Per process: with
`--workers N` or several tasks, a key's effective limit is the sum of theirs (docs/api.md says
how to size it); a shared limiter would put a Redis write on every request of an API that
otherwise never writes.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["RateLimiter", "TokenBucket"]


class TokenBucket:
    """`rate_per_s` tokens a second, at most `burst` held; starts full."""

    __slots__ = ("_at", "_clock", "_tokens", "burst", "rate_per_s")

    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not rate_per_s > 0 or burst < 1:
            raise ValueError("a bucket needs rate_per_s > 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self, tokens: float = 1.0) -> float:
        """Take `tokens`: 0.0 when granted, else the seconds until they would be (nothing
        taken). More than `burst` at once is never granted: +inf."""
        if tokens > self.burst:
            return math.inf
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate_per_s)
        self._at = now
        if self._tokens >= tokens:
            self._tokens -= tokens
            return 0.0
        return (tokens - self._tokens) / self.rate_per_s


class RateLimiter:
    """One bucket per key id; a key whose limits changed (a re-read document) gets a new one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def take(self, key_id: str, rate_per_s: float, burst: int, tokens: float = 1.0) -> float:
        """0.0 when the request may go, else the seconds to wait (Retry-After)."""
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None or bucket.rate_per_s != rate_per_s or bucket.burst != burst:
                bucket = self._buckets[key_id] = TokenBucket(rate_per_s, burst, self._clock)
            return bucket.take(tokens)
