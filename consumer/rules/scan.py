"""The one pass over an account's recent history that every windowed rule shares.

`recent` may hold entries whose event time lies outside every window, and in any event-time
order (producers' clocks disagree; the stream order is what "earlier" means), so each entry is
tested against the bounds here. Bounds are exact: `low = t - W` is computed once per call in an
unbounded decimal context, and an entry is within W when `low < t' <= t`.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from consumer.rules.history import HistoryEntry


def scan(
    recent: Sequence[HistoryEntry],
    t: Decimal,
    velocity_low: Decimal,
    card_low: Decimal,
    card_max: Decimal,
    travel: bool,
) -> tuple[int, int, HistoryEntry | None]:
    """(entries within the velocity window, small entries within the card window, the travel
    comparison point).

    A window that is not wanted is passed with `low = t`, which no entry satisfies. The travel
    point, when `travel`, is the located entry with the latest event time strictly before t; among
    several sharing that time, the latest in the stream (greatest position; for equal positions,
    the last in `recent`).
    """
    in_velocity = 0
    small_in_card = 0
    previous: HistoryEntry | None = None
    previous_t = t
    for entry in recent:
        et = entry.event_time
        if et > t:
            continue
        if et > velocity_low:
            in_velocity += 1
        if et > card_low and entry.amount <= card_max:
            small_in_card += 1
        if (
            travel
            and et < t
            and entry.latitude is not None
            and entry.longitude is not None
            and (
                previous is None
                or et > previous_t
                or (et == previous_t and entry.position >= previous.position)
            )
        ):
            previous = entry
            previous_t = et
    return in_velocity, small_in_card, previous
