"""The one validity check that needs more than the record's bytes: a timestamp far in the future.

The contract's record format (docs/contract.md section 1) does not bound the event time. A
timestamp years ahead is not a payment but a producer's bug (epoch microseconds sent as
milliseconds, a device clock reset to 2099): judged, it would enter the account's history at an
instant no real transaction reaches, register its device as known, and raise the velocity count
of nothing. Such a record is dead-lettered with its reason instead, so it is kept, visible and
replayable once the producer is fixed.

The bound is relative to the record's Kinesis arrival time (`approximateArrivalTimestamp`),
never the wall clock: a replay of the same record after a crash decides the same way. Event
times in the past are accepted: late records and backfills are real.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from consumer.records import Transaction

__all__ = ["MAX_AHEAD_KEY", "too_far_ahead"]

MAX_AHEAD_KEY = "FRAUD_TIMESTAMP_MAX_AHEAD_S"
_SHOWN = 64  # characters of the offending value quoted in the reason


def too_far_ahead(txn: Transaction, arrival_ms: int | None, max_ahead_s: int) -> str | None:
    """The dead-letter reason when `txn`'s timestamp lies more than `max_ahead_s` after the
    record reached the stream; None when it does not (or the arrival time is unknown)."""
    if arrival_ms is None:
        return None
    event_time = txn.event_time
    # Cheap and exact: int vs Decimal compares exactly; the floor keeps the shortcut safe.
    if event_time <= arrival_ms // 1000 + max_ahead_s:
        return None
    if event_time <= Decimal(arrival_ms + max_ahead_s * 1000).scaleb(-3):
        return None
    shown = str(txn.raw.get("timestamp"))
    if len(shown) > _SHOWN:
        shown = shown[:_SHOWN] + "..."
    return (
        f"timestamp: {shown} lies more than {max_ahead_s} s after the record reached the stream"
        f" ({_iso(arrival_ms)}; the limit is {MAX_AHEAD_KEY})"
    )


def _iso(arrival_ms: int) -> str:
    try:
        at = datetime.fromtimestamp(arrival_ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return f"arrival {arrival_ms} ms"
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
