"""Runs every enabled rule over one transaction and its account history, and combines them.

The rules core is pure: it knows nothing of Redis, boto3 or the KCL, so the same code serves the
stream, an offline backtest and the benchmarks, and it is tested with plain data. It runs once
per record on the hot path (tens of thousands of times a second), so `judge` walks the history
once (consumer.rules.scan) and allocates nothing when no rule fires.

`judge` lets an exception out (a bug, MemoryError); `judge_rule_by_rule` is the slow, careful
path the caller falls back to then: each rule on its own, a rule that raises counting as not
fired, so the others still decide (consumer.rules.ruleset.judge_with_ruleset).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal

import msgspec

from consumer.records import Transaction
from consumer.rules.amount import high_amount, low_balance_high_amount
from consumer.rules.config import SEVERITIES, RulesConfig
from consumer.rules.device import new_device_high_amount
from consumer.rules.exact import EXACT
from consumer.rules.geo import cross_border, impossible_travel, travel_reach_s
from consumer.rules.history import AccountHistory
from consumer.rules.scan import scan
from consumer.rules.velocity import card_testing, is_small, velocity

_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}


class Reason(msgspec.Struct, frozen=True, gc=False):
    """One rule that fired, and in words why (no account ids)."""

    rule: str
    detail: str


class Decision(msgspec.Struct, frozen=True, gc=False):
    """The verdict on one transaction: flagged when at least one rule fired.

    `reasons` are in RULE_IDS order; `severity` is the highest of theirs, None when not flagged.
    """

    reasons: tuple[Reason, ...]
    severity: str | None

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)


NOT_FLAGGED = Decision(reasons=(), severity=None)

# (rule id, exception type name) of each rule that raised on a transaction: never the exception's
# text, which may quote the record.
RuleErrors = tuple[tuple[str, str], ...]


def severity_at_least(severity: str | None, threshold: str) -> bool:
    """True when `severity` ranks at or above `threshold` (low < medium < high)."""
    return severity is not None and _RANK[severity] >= _RANK[threshold]


def state_horizon_s(config: RulesConfig) -> Decimal:
    """The longest event-time span any rule looks back, in seconds.

    An earlier entry with `t' <= t - horizon` cannot change the decision on a transaction at t:
    it is outside both count windows, and for impossible_travel even the antipode would be
    reached at no more than the maximum speed. The travel reach is rounded up to the next whole
    second (strictly above it, a margin against float rounding). The state store keeps this much
    event time per account, plus its own lateness allowance. Disabled rules count too, so that
    enabling one finds its history already there.
    """
    reach = Decimal(math.floor(travel_reach_s(config)) + 1)
    return max(config.velocity_window_s, config.card_testing_window_s, reach)


def judge(txn: Transaction, history: AccountHistory, config: RulesConfig) -> Decision:
    """Apply every enabled rule to `txn`, which `history` (its account, earlier in the stream,
    never `txn` itself) precedes. Reasons come in RULE_IDS order; the severity is the highest of
    the rules that fired, as config.severities ranks them."""
    enabled = config.enabled
    fired: list[Reason] | None = None

    if "high_amount" in enabled:
        detail = high_amount(txn, config)
        if detail is not None:
            fired = [Reason("high_amount", detail)]

    # One pass over the history for velocity, card_testing and impossible_travel.
    t = txn.event_time
    want_velocity = "velocity" in enabled
    want_card = "card_testing" in enabled and is_small(txn, config)
    want_travel = "impossible_travel" in enabled and txn.latitude is not None
    recent = history.recent
    in_velocity = small_in_card = 0
    previous = None
    if recent and (want_velocity or want_card or want_travel):
        in_velocity, small_in_card, previous = scan(
            recent,
            t,
            EXACT.subtract(t, config.velocity_window_s) if want_velocity else t,
            EXACT.subtract(t, config.card_testing_window_s) if want_card else t,
            config.card_testing_max_amount,
            want_travel,
            history.ascending,
        )

    if want_velocity:
        detail = velocity(in_velocity, config)
        if detail is not None:
            fired = _add(fired, "velocity", detail)

    if "cross_border" in enabled:
        detail = cross_border(txn)
        if detail is not None:
            fired = _add(fired, "cross_border", detail)

    if "low_balance_high_amount" in enabled:
        detail = low_balance_high_amount(txn, config)
        if detail is not None:
            fired = _add(fired, "low_balance_high_amount", detail)

    if want_travel and previous is not None:
        detail = impossible_travel(txn, previous, config)
        if detail is not None:
            fired = _add(fired, "impossible_travel", detail)

    if want_card:
        detail = card_testing(txn, small_in_card, config)
        if detail is not None:
            fired = _add(fired, "card_testing", detail)

    if "new_device_high_amount" in enabled:
        detail = new_device_high_amount(txn, history, config)
        if detail is not None:
            fired = _add(fired, "new_device_high_amount", detail)

    if fired is None:
        return NOT_FLAGGED
    return _decision(fired, config)


def _decision(fired: list[Reason] | None, config: RulesConfig) -> Decision:
    """The reasons and their highest severity (NOT_FLAGGED when none fired)."""
    if fired is None:
        return NOT_FLAGGED
    severities = config.severities
    severity = severities[fired[0].rule]
    rank = _RANK[severity]
    for reason in fired:
        candidate = severities[reason.rule]
        if _RANK[candidate] > rank:
            severity = candidate
            rank = _RANK[candidate]
    return Decision(reasons=tuple(fired), severity=severity)


def _add(fired: list[Reason] | None, rule: str, detail: str) -> list[Reason]:
    reason = Reason(rule, detail)
    if fired is None:
        return [reason]
    fired.append(reason)
    return fired


# --- each rule on its own: the fallback when `judge` raised ---------------------------------------


def _velocity_alone(txn: Transaction, history: AccountHistory, config: RulesConfig) -> str | None:
    t = txn.event_time
    count = 0
    if history.recent:
        count, _, _ = scan(
            history.recent,
            t,
            EXACT.subtract(t, config.velocity_window_s),
            t,
            config.card_testing_max_amount,
            False,
            history.ascending,
        )
    return velocity(count, config)


def _card_testing_alone(
    txn: Transaction, history: AccountHistory, config: RulesConfig
) -> str | None:
    if not is_small(txn, config):
        return None
    t = txn.event_time
    small = 0
    if history.recent:
        _, small, _ = scan(
            history.recent,
            t,
            t,
            EXACT.subtract(t, config.card_testing_window_s),
            config.card_testing_max_amount,
            False,
            history.ascending,
        )
    return card_testing(txn, small, config)


def _impossible_travel_alone(
    txn: Transaction, history: AccountHistory, config: RulesConfig
) -> str | None:
    if txn.latitude is None or not history.recent:
        return None
    t = txn.event_time
    _, _, previous = scan(
        history.recent, t, t, t, config.card_testing_max_amount, True, history.ascending
    )
    if previous is None:
        return None
    return impossible_travel(txn, previous, config)


# In RULE_IDS order, the order `judge` gives its reasons in. Lambdas, so that each call reads
# the module's current functions (what `judge` calls).
_ALONE: tuple[tuple[str, Callable[[Transaction, AccountHistory, RulesConfig], str | None]], ...] = (
    ("high_amount", lambda txn, history, config: high_amount(txn, config)),
    ("velocity", lambda txn, history, config: _velocity_alone(txn, history, config)),
    ("cross_border", lambda txn, history, config: cross_border(txn)),
    (
        "low_balance_high_amount",
        lambda txn, history, config: low_balance_high_amount(txn, config),
    ),
    (
        "impossible_travel",
        lambda txn, history, config: _impossible_travel_alone(txn, history, config),
    ),
    ("card_testing", lambda txn, history, config: _card_testing_alone(txn, history, config)),
    (
        "new_device_high_amount",
        lambda txn, history, config: new_device_high_amount(txn, history, config),
    ),
)


def judge_rule_by_rule(
    txn: Transaction, history: AccountHistory, config: RulesConfig
) -> tuple[Decision, RuleErrors]:
    """`judge`, each enabled rule evaluated on its own: a rule that raises does not fire, and is
    named with its exception's type. Where nothing raises, the decision is `judge`'s (a property
    test holds them equal); slower (a history pass per windowed rule), so only the fallback."""
    enabled = config.enabled
    fired: list[Reason] | None = None
    errors: list[tuple[str, str]] = []
    for rule, alone in _ALONE:
        if rule not in enabled:
            continue
        try:
            detail = alone(txn, history, config)
        except Exception as exc:
            errors.append((rule, type(exc).__name__))
            continue
        if detail is not None:
            fired = _add(fired, rule, detail)
    return _decision(fired, config), tuple(errors)
