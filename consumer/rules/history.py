"""What the rules may know about an account: its transactions earlier in the stream.

The state store builds an AccountHistory for each transaction from Redis plus the earlier
records of the same batch, hiding everything that came later in the stream (a replay after a
crash must see exactly what the first pass saw). The rules never see positions beyond their
own transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from itertools import pairwise

import msgspec

from consumer.rules.profile import Profile


class HistoryEntry(msgspec.Struct, frozen=True, gc=False):
    """One earlier transaction of the account, reduced to what the rules read."""

    # Stream position: (sequence number, sub-sequence number), or any pair whose tuple order is
    # stream order (the backtest uses the record's index). Shared with the state store's own key.
    position: tuple[int, int]
    event_time: Decimal  # exact epoch seconds
    amount: Decimal
    latitude: float | None
    longitude: float | None
    # Its destination_country (upper case). Only rule sets with country features read it
    # (RuleSet.history_needs says "countries"); the contract rules never do.
    country: str | None = None


class AccountHistory(msgspec.Struct, frozen=True, gc=False):
    """The account's history as one transaction must see it."""

    # Earlier transactions of the account (strictly before this one in the stream) whose event
    # time lies within the state horizon, in stream order.
    recent: Sequence[HistoryEntry] = ()
    # True when an earlier transaction of the account used this transaction's device_id.
    device_seen_before: bool = False
    # True when the account has at least one earlier transaction in the stream.
    has_earlier: bool = False
    # True when an earlier transaction of the account had this transaction's destination_country
    # (read only by rule sets whose RuleSet.history_needs says "countries").
    country_seen_before: bool = False
    # True only when `recent` is also in ascending (event_time, position) order, as in-order
    # traffic gives it: the windows and the travel point are then read from the newest end,
    # stopping where nothing older can count (consumer.rules.scan). The worker's state store
    # and the backtest's history track it (`in_time_order`); a builder that does not know
    # leaves it False. The decisions are the same either way.
    ascending: bool = False
    # The account's and the merchant's long-horizon profile (consumer/rules/profile.py): per-day
    # totals and the merchant's labels, for the model's features. None where no one keeps them
    # (the rules never read it).
    profile: Profile | None = None


EMPTY_HISTORY = AccountHistory()


def in_time_order(entries: Sequence[HistoryEntry]) -> bool:
    """True when the event times of `entries`, which are in stream (position) order, never
    decrease: what `AccountHistory.ascending` promises."""
    return all(a.event_time <= b.event_time for a, b in pairwise(entries))
