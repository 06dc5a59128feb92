"""Count-in-a-window rules: velocity and card_testing.

"Within W" of a transaction at t means an event time t' with `t - W < t' <= t` (docs/contract.md
section 2). The counting itself happens in consumer.rules.scan, in the one pass over the history
that all windowed rules share; these functions turn the counts into a verdict. Counts are of the
earlier (in the stream) transactions only: "this one" is added here.
"""

from __future__ import annotations

from consumer.records import Transaction
from consumer.rules.config import RulesConfig


def velocity(earlier_in_window: int, config: RulesConfig) -> str | None:
    """More than max_count transactions of the account within the window, this one included."""
    count = earlier_in_window + 1
    if count > config.velocity_max_count:
        return (
            f"{count} transactions within {config.velocity_window_s} s "
            f"(more than {config.velocity_max_count})"
        )
    return None


def is_small(txn: Transaction, config: RulesConfig) -> bool:
    """card_testing counts only transactions with `amount <= max_amount`, this one among them."""
    return txn.amount <= config.card_testing_max_amount


def card_testing(txn: Transaction, earlier_small_in_window: int, config: RulesConfig) -> str | None:
    """At least min_count small transactions within the window, this (small) one among them."""
    if not is_small(txn, config):
        return None
    count = earlier_small_in_window + 1
    if count >= config.card_testing_min_count:
        return (
            f"{count} transactions <= {config.card_testing_max_amount} within "
            f"{config.card_testing_window_s} s (at least {config.card_testing_min_count})"
        )
    return None
