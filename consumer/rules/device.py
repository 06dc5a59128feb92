"""new_device_high_amount: a large amount from a device the account has not used before."""

from __future__ import annotations

from consumer.records import Transaction
from consumer.rules.config import RulesConfig
from consumer.rules.history import AccountHistory


def new_device_high_amount(
    txn: Transaction, history: AccountHistory, config: RulesConfig
) -> str | None:
    """device_id present, `amount >= min_amount`, the device unseen on the account earlier in the
    stream, and the account has at least one earlier transaction (a first one is not "new")."""
    if txn.device_id is None:
        return None
    minimum = config.new_device_min_amount
    if txn.amount < minimum:
        return None
    if history.device_seen_before or not history.has_earlier:
        return None
    return f"amount {txn.amount} {txn.currency} >= {minimum} from a device new to the account"
