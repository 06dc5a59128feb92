"""Runs every rule over one transaction and its account history and combines the result."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consumer.config import SEVERITIES, RulesConfig
from consumer.records import Transaction
from consumer.rules.amount import high_amount

_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


@dataclass(frozen=True, slots=True)
class Reason:
    """One rule that fired, and in words why."""

    rule: str
    detail: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one transaction: flagged when at least one rule fired."""

    reasons: tuple[Reason, ...]
    severity: str | None

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)


@dataclass(frozen=True, slots=True)
class History:
    """What the account did before this transaction in the stream (filled by the state store).

    The skeleton's only rule needs no history; the stateful rules read it.
    """

    transactions: Sequence[Transaction] = ()


NOT_FLAGGED = Decision(reasons=(), severity=None)


def severity_at_least(severity: str | None, threshold: str) -> bool:
    """True when `severity` ranks at or above `threshold` (low < medium < high)."""
    return severity is not None and _RANK[severity] >= _RANK[threshold]


def judge(txn: Transaction, history: History, config: RulesConfig) -> Decision:
    """Apply every rule; the severity is the highest of the rules that fired."""
    fired: list[tuple[Reason, str]] = []
    detail = high_amount(txn, config)
    if detail is not None:
        fired.append((Reason("high_amount", detail), config.high_amount_severity))
    if not fired:
        return NOT_FLAGGED
    severity = max((sev for _, sev in fired), key=_RANK.__getitem__)
    return Decision(reasons=tuple(reason for reason, _ in fired), severity=severity)
