"""The one pass over an account's recent history that every windowed rule shares.

`recent` may hold entries whose event time lies outside every window, and in any event-time
order (producers' clocks disagree; the stream order is what "earlier" means), so each entry is
tested against the bounds here. Bounds are exact: `low = t - W` is computed once per call in an
unbounded decimal context, and an entry is within W when `low < t' <= t`.

A history known to be in ascending (event_time, position) order (`AccountHistory.ascending`)
is read from its newest end instead, and the pass stops at the first entry that neither window
holds once the travel point is known: a busy account's hundreds of entries cost the handful its
windows hold. Same answer (a property test holds the two passes equal).
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
    ascending: bool = False,
) -> tuple[int, int, HistoryEntry | None]:
    """(entries within the velocity window, small entries within the card window, the travel
    comparison point).

    A window that is not wanted is passed with `low = t`, which no entry satisfies. The travel
    point, when `travel`, is the located entry with the latest event time strictly before t; among
    several sharing that time, the latest in the stream (greatest position; for equal positions,
    the last in `recent`). `ascending`: `recent` is in ascending (event_time, position) order.
    """
    if ascending:
        return _scan_newest_first(recent, t, velocity_low, card_low, card_max, travel)
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


def _scan_newest_first(
    recent: Sequence[HistoryEntry],
    t: Decimal,
    velocity_low: Decimal,
    card_low: Decimal,
    card_max: Decimal,
    travel: bool,
) -> tuple[int, int, HistoryEntry | None]:
    """`scan` of a history in ascending (event_time, position) order, newest first: the first
    located entry strictly before t is the travel point (nothing older can beat it, and among
    equal times and positions the last in `recent` comes first), and once an entry lies at or
    below both windows' bounds every older one does too."""
    stop = velocity_low if velocity_low < card_low else card_low
    in_velocity = 0
    small_in_card = 0
    previous: HistoryEntry | None = None
    looking = travel
    for entry in reversed(recent):
        et = entry.event_time
        if et > t:
            continue
        if et <= stop:
            if not looking:
                break
        else:
            if et > velocity_low:
                in_velocity += 1
            if et > card_low and entry.amount <= card_max:
                small_in_card += 1
        if looking and et < t and entry.latitude is not None and entry.longitude is not None:
            previous = entry
            looking = False
    return in_velocity, small_in_card, previous
