"""The pure rules core: judge(transaction, history, config) -> Decision.

It knows nothing of Redis, boto3 or the KCL, so the same code serves the stream, an offline
backtest and the benchmarks, and it is tested exhaustively with plain data. One module per rule
family: amount (high_amount, low_balance_high_amount), velocity (velocity, card_testing), geo
(cross_border, impossible_travel), device (new_device_high_amount); scan walks the history once
for the windowed ones.
"""

from consumer.rules.config import RULE_IDS, SEVERITIES, RulesConfig
from consumer.rules.engine import (
    NOT_FLAGGED,
    Decision,
    Reason,
    judge,
    severity_at_least,
    state_horizon_s,
)
from consumer.rules.history import EMPTY_HISTORY, AccountHistory, HistoryEntry

__all__ = [
    "EMPTY_HISTORY",
    "NOT_FLAGGED",
    "RULE_IDS",
    "SEVERITIES",
    "AccountHistory",
    "Decision",
    "HistoryEntry",
    "Reason",
    "RulesConfig",
    "judge",
    "severity_at_least",
    "state_horizon_s",
]
