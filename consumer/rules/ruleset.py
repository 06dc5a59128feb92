"""A rule set as data: its version, the seven contract rules' parameters, and custom rules.

`judge_with_ruleset` is the entry point a worker or a backtest calls per transaction: the
contract rules are decided by the unchanged `engine.judge` with the rule set's RulesConfig, the
custom rules by their compiled `when` conditions over the same transaction and history. Custom
rules that are `shadow` are evaluated and returned apart, and never flag or alert: a team watches
a rule on live traffic before switching it on. Every decision carries the rule set's version
(`rules_version` in each S3 line and alert).

A rule that raises on a transaction (a bug, an arithmetic limit, MemoryError) counts as not
fired for it, and the decision names it in `rule_errors`; every other rule still decides. The
caller counts and logs them (consumer/batch/pipeline.py, consumer/backtest/run.py).

Pure like the rest of consumer.rules: loading a file is consumer.rules.ruleset_load's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

from consumer.errors import FraudstreamError
from consumer.records import Transaction
from consumer.rules.config import RULE_IDS, SEVERITIES, RulesConfig
from consumer.rules.engine import (
    NOT_FLAGGED,
    Decision,
    Reason,
    RuleErrors,
    judge,
    judge_rule_by_rule,
    state_horizon_s,
)
from consumer.rules.expressions import Expression
from consumer.rules.features import FEATURES, Facts, FeaturePlan
from consumer.rules.history import AccountHistory

_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}

# Ids a custom rule may not take: the contract's, and model_score (consumer/model/rule.py).
RESERVED_IDS: frozenset[str] = frozenset((*RULE_IDS, "model_score"))


class RuleSetError(FraudstreamError, ValueError):
    """A rule set is refused; the message says where (file, line, key) and why, one problem a
    line. `problems` holds them one by one."""

    def __init__(self, problems: Sequence[str], name: str = "rule set") -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        header = f"{name}: refused, {count} problem{'s' if count != 1 else ''}"
        super().__init__("\n".join([header, *(f"- {p}" for p in self.problems)]))


@dataclass(frozen=True, slots=True)
class CustomRule:
    """A rule written as a condition. `shadow` rules never flag; disabled rules never run."""

    id: str
    description: str
    severity: str
    when: Expression
    shadow: bool = False
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class ModelScoreEntry:
    """The rule set's `rules.model_score` entry. A key left out (None) falls back to the worker's
    FRAUD_MODEL_* settings, then to the model's own threshold (consumer/model/stage.py); it only
    acts while a model is loaded, since models and rule sets ship independently."""

    enabled: bool = True
    threshold: float | None = None
    severity: str | None = None
    shadow: bool | None = None


class RuleSetDecision(msgspec.Struct, frozen=True, gc=False):
    """The verdict of a rule set on one transaction."""

    rules_version: str
    # engine.judge with the rule set's RulesConfig: exactly the contract rules' decision.
    contract: Decision
    # Live custom rules that fired, in rule set order.
    custom: tuple[Reason, ...]
    # Shadow rules that fired: to be counted and written apart, never flagged or alerted.
    shadow: tuple[Reason, ...]
    # What flags and alerts: the contract reasons, then the custom ones; the highest severity.
    decision: Decision
    # (rule id, exception type name) of every rule, contract, live or shadow, that raised on
    # this transaction and so did not fire; in evaluation order. Empty almost always.
    rule_errors: RuleErrors = ()

    @property
    def flagged(self) -> bool:
        return self.decision.flagged


class RuleSet:
    """A validated rule set, ready to judge: build it with load_ruleset (from a file) or
    directly (from code and tests)."""

    __slots__ = (
        "_quiet",
        "config",
        "custom",
        "history_needs",
        "live",
        "model",
        "plan",
        "severities",
        "shadow",
        "state_horizon_s",
        "version",
    )

    def __init__(
        self,
        version: str,
        config: RulesConfig | None = None,
        custom: Sequence[CustomRule] = (),
        model: ModelScoreEntry | None = None,
    ) -> None:
        config = config if config is not None else RulesConfig()
        problems: list[str] = []
        if not version:
            problems.append("version: must not be empty")
        seen: set[str] = set()
        for index, rule in enumerate(custom):
            if rule.id in RESERVED_IDS:
                problems.append(f"custom[{index}].id: {rule.id!r} is a built-in rule id")
            elif rule.id in seen:
                problems.append(f"custom[{index}].id: {rule.id!r} is used twice")
            seen.add(rule.id)
            if rule.severity not in SEVERITIES:
                problems.append(
                    f"custom[{index}].severity: {rule.severity!r} is not one of "
                    f"{', '.join(SEVERITIES)}"
                )
        if model is not None:
            if model.threshold is not None and not 0 <= model.threshold <= 100:
                problems.append(
                    f"rules.model_score.threshold: {model.threshold} is not within 0..100"
                )
            if model.severity is not None and model.severity not in SEVERITIES:
                problems.append(
                    f"rules.model_score.severity: {model.severity!r} is not one of "
                    f"{', '.join(SEVERITIES)}"
                )
        if problems:
            raise RuleSetError(problems, f"rule set {version!r}")
        self.version = version
        self.config = config
        self.custom = tuple(custom)
        # None: the rule set says nothing of the model, the FRAUD_MODEL_* settings decide.
        self.model = model
        self.live = tuple(r for r in self.custom if r.enabled and not r.shadow)
        self.shadow = tuple(r for r in self.custom if r.enabled and r.shadow)
        self.severities: dict[str, str] = {
            **config.severities,
            **{rule.id: rule.severity for rule in self.custom},
        }
        running = frozenset(name for rule in (*self.live, *self.shadow) for name in rule.when.names)
        self.plan = FeaturePlan.for_names(running)
        # Disabled rules count too, so that enabling one finds its history already there.
        every = [FEATURES[name] for rule in self.custom for name in rule.when.names]
        longest = max((feature.window_s for feature in every), default=0)
        self.state_horizon_s: Decimal = max(state_horizon_s(config), Decimal(longest))
        self.history_needs: frozenset[str] = frozenset(
            ["countries"] if any(feature.needs_countries for feature in every) else []
        )
        self._quiet = RuleSetDecision(version, NOT_FLAGGED, (), (), NOT_FLAGGED)

    def severity(self, rule: str) -> str:
        return self.severities[rule]

    def __repr__(self) -> str:
        return (
            f"RuleSet(version={self.version!r}, custom={len(self.live)} live, "
            f"{len(self.shadow)} shadow)"
        )


def judge_with_ruleset(
    txn: Transaction,
    history: AccountHistory,
    ruleset: RuleSet,
    contract: Decision | None = None,
) -> RuleSetDecision:
    """Judge `txn` (preceded by `history`, as for engine.judge) with every rule of `ruleset`.

    `contract`, when the caller already has it, is `engine.judge(txn, history, ruleset.config)`
    (a backtest judging two rule sets with equal contract parameters computes it once).

    A rule that raises does not fire, and is named in `rule_errors`: if `engine.judge` raises,
    the contract rules are judged again one by one (engine.judge_rule_by_rule); each custom rule
    is tested on its own. (A try costs nothing in Python 3.11 until something raises.)
    """
    errors: list[tuple[str, str]] | None = None
    if contract is None:
        try:
            contract = judge(txn, history, ruleset.config)
        except Exception:
            contract, contract_errors = judge_rule_by_rule(txn, history, ruleset.config)
            errors = list(contract_errors)
    live = ruleset.live
    shadow = ruleset.shadow
    if not live and not shadow and errors is None:
        if contract is NOT_FLAGGED:
            return ruleset._quiet
        return RuleSetDecision(ruleset.version, contract, (), (), contract)
    facts = Facts(txn, history, ruleset.plan)
    hits, errors = _fired(live, facts, errors)
    shadow_hits, errors = _fired(shadow, facts, errors)
    if hits is None and shadow_hits is None and contract is NOT_FLAGGED and errors is None:
        return ruleset._quiet
    custom = tuple(hits) if hits is not None else ()
    decision = contract
    if custom:
        severities = ruleset.severities
        severity = contract.severity
        for reason in custom:
            candidate = severities[reason.rule]
            if severity is None or _RANK[candidate] > _RANK[severity]:
                severity = candidate
        decision = Decision(reasons=(*contract.reasons, *custom), severity=severity)
    return RuleSetDecision(
        ruleset.version,
        contract,
        custom,
        tuple(shadow_hits) if shadow_hits is not None else (),
        decision,
        tuple(errors) if errors is not None else (),
    )


def _fired(
    rules: tuple[CustomRule, ...], facts: Facts, errors: list[tuple[str, str]] | None
) -> tuple[list[Reason] | None, list[tuple[str, str]] | None]:
    """The reasons of the `rules` that fire on `facts` (None: none fired), each tested on its
    own: one that raises does not fire and is added to `errors` with its id and the exception's
    type (never its text, which may quote values)."""
    hits: list[Reason] | None = None
    for rule in rules:
        try:
            if rule.when.test(facts):
                if hits is None:
                    hits = []
                hits.append(Reason(rule.id, _detail(rule, facts)))
        except Exception as exc:
            if errors is None:
                errors = []
            errors.append((rule.id, type(exc).__name__))
    return hits, errors


def _detail(rule: CustomRule, facts: Facts) -> str:
    """The rule's description and the values its condition read (never an account id: the
    language has no name for it)."""
    values = ", ".join(f"{name}={_shown(FEATURES[name].get(facts))}" for name in rule.when.names)
    return f"{rule.description} ({values})" if values else rule.description


def _shown(value: Any) -> str:
    if value is None:
        return "absent"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.1f}" if value < 1e12 else f"{value:.3g}"
    return str(value)
