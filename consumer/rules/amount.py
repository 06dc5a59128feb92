"""Rules that look at the amount alone."""

from __future__ import annotations

from consumer.config import RulesConfig
from consumer.records import Transaction


def high_amount(txn: Transaction, config: RulesConfig) -> str | None:
    """`amount > threshold`, compared as exact decimals (10000.001 > 10000 holds)."""
    if txn.amount > config.high_amount_threshold:
        return f"amount {txn.amount} {txn.currency} > {config.high_amount_threshold}"
    return None
