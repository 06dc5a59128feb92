"""Rules that look at the transaction's own amount: high_amount and low_balance_high_amount."""

from __future__ import annotations

from consumer.records import Transaction
from consumer.rules.config import RulesConfig
from consumer.rules.exact import EXACT


def high_amount(txn: Transaction, config: RulesConfig) -> str | None:
    """`amount > threshold`, compared as exact decimals (10000.001 > 10000 holds)."""
    threshold = config.high_amount_threshold
    if txn.amount > threshold:
        return f"amount {txn.amount} {txn.currency} > {threshold}"
    return None


def low_balance_high_amount(txn: Transaction, config: RulesConfig) -> str | None:
    """Balance present, `amount >= min_amount` and `amount > ratio * balance`, all exact."""
    balance = txn.account_balance
    if balance is None:
        return None
    amount = txn.amount
    minimum = config.low_balance_min_amount
    if amount < minimum:
        return None
    ratio = config.low_balance_ratio
    if amount > EXACT.multiply(ratio, balance):
        return f"amount {amount} {txn.currency} >= {minimum} and > {ratio} x balance {balance}"
    return None
