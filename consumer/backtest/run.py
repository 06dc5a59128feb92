"""One pass over the records: judge each with the new rule set and the baseline, and count.

Each valid record goes through the stream's own per-record sequence, consumer/judging/sequence.py's
`judge_record` (duplicate check, history, judge, add), over ReplayHistory instead of the state
store: that one definition is what makes a backtest decide as the stream does. Both rule sets
are judged on the same AccountHistory object, built once per record; each record is parsed
once. A record whose judging fails other than by a rule (the stream would dead-letter it as
`internal`) stops the run with its error: that is a bug to see, not a count.

Not applied here: the stream's future-timestamp limit (consumer/batch/timeliness.py), which is
relative to a record's arrival in the stream; the input formats carry no arrival time. A valid
record far in the future is judged and kept in its account's history, where the stream would
have dead-lettered it. What is counted (BacktestResult):
per rule, hits under each rule set; the records one flags and the other does not (with the first
few transaction ids); shadow hits; rule errors (a rule that raised on a record counts as not
fired there, as in the worker, and is counted by rule with the first few transaction ids); and,
for records that carry a label, true and false positives and false negatives per rule and
overall. Two labels, as load_test/synthetic.py writes them: `fraud` (true or false; it wins
when both are there) scores every rule and the overall decision against it; `expected_rules`
(the rules that should fire) scores a contract rule against its own id, and a custom rule and
the overall decision against "it names any rule".

With a model (`model`, the worker's ScoringModel: consumer/model/stage.py BatchModel), each
record's feature row is built in the same `judge_record` call, from the history's long-horizon
profiles (ReplayHistory with profiles, each record's own `fraud` label reaching the merchant
profiles `label_delay_days` after it, as in training), and scored a chunk at a time: the
model's flags (score at or above the new rule set's model_score threshold) and rules OR model
against the labels (`ModelCounts`). Accounts cannot be split across processes then (a
merchant's profile spans accounts): one process.
"""

from __future__ import annotations

import functools
import gc
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

from consumer.backtest.history import VIEW_ENTRIES, ReplayHistory
from consumer.backtest.inputs import BadLine, Item
from consumer.errors import FraudstreamError
from consumer.judging.sequence import Judged, NotJudged, baseline_for, judge_record
from consumer.judging.views import ScoringModel
from consumer.records import InvalidRecord, parse_transaction
from consumer.rules.engine import Reason
from consumer.rules.profile import DAY_S
from consumer.rules.ruleset import RuleSet
from consumer.settings.config import StateConfig

EXAMPLES = 5  # transaction ids kept per difference
LABEL = "expected_rules"  # the rules that should fire (load_test/synthetic.py)
FRAUD = "fraud"  # true or false: whether it is fraud (the generator's realistic mode)
_NOTHING: frozenset[str] = frozenset()
NEW, BASE = 0, 1


@dataclass
class Side:
    """The counts for one rule set."""

    hits: Counter[str] = field(default_factory=Counter)  # live rules
    shadow: Counter[str] = field(default_factory=Counter)
    # rule -> records on which it raised (and so did not fire), with the first few of them
    errors: Counter[str] = field(default_factory=Counter)
    error_examples: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    flagged: int = 0
    true_pos: Counter[str] = field(default_factory=Counter)  # "*" = the overall decision
    false_pos: Counter[str] = field(default_factory=Counter)
    false_neg: Counter[str] = field(default_factory=Counter)


@dataclass
class BacktestResult:
    records: int = 0
    judged: int = 0
    duplicates: int = 0
    invalid: Counter[str] = field(default_factory=Counter)  # reason -> records
    invalid_examples: dict[str, list[int]] = field(default_factory=dict)  # reason -> record no.
    labelled: int = 0
    labelled_fraud: int = 0
    fraud_labelled: int = 0  # of `labelled`, those labelled by FRAUD (the rest by LABEL)
    sides: tuple[Side, Side] = field(default_factory=lambda: (Side(), Side()))
    # rule -> records it fires on under one rule set and not the other ("*": flagged at all)
    only_new: Counter[str] = field(default_factory=Counter)
    only_base: Counter[str] = field(default_factory=Counter)
    # rule -> the first few (record number, transaction id) of those
    examples_new: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    examples_base: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    # Per judged record, when asked for (tests): (line index, transaction id, new rules, base).
    decisions: list[tuple[int, str, tuple[str, ...], tuple[str, ...]]] | None = None
    model: ModelCounts | None = None  # with a model only


@dataclass
class ModelCounts:
    """The model's say over the file: records scored, flagged (score >= threshold), and against
    the labelled records, the model's and rules OR model's true and false positives and false
    negatives (rules: the new rule set's live decision)."""

    version: str
    threshold: float | None
    label_delay_days: int
    scored: int = 0
    flagged: int = 0
    row_errors: int = 0
    true_pos: int = 0
    false_pos: int = 0
    false_neg: int = 0
    either_true_pos: int = 0
    either_false_pos: int = 0
    either_false_neg: int = 0


SCORE_CHUNK = 4096  # rows scored at once: one vectorised call, bounded memory


MAX_REASONS = 1000  # distinct invalid reasons kept; the rest are counted under OTHER_REASON
OTHER_REASON = "(other reasons)"


def _invalid(result: BacktestResult, reason: str, index: int) -> None:
    invalid = result.invalid
    if reason not in invalid and len(invalid) >= MAX_REASONS:
        reason = OTHER_REASON
    invalid[reason] += 1
    kept = result.invalid_examples.setdefault(reason, [])
    if len(kept) < EXAMPLES:
        kept.append(index + 1)


class PartitionError(FraudstreamError, RuntimeError):
    """A partitioned run found a record outside its part: run it with one job."""


def _example(
    examples: dict[str, list[tuple[int, str]]], rule: str, index: int, txn_id: str
) -> None:
    kept = examples.setdefault(rule, [])
    if len(kept) < EXAMPLES:
        kept.append((index, txn_id))


P = ParamSpec("P")
R = TypeVar("R")


def _without_cyclic_gc(run: Callable[P, R]) -> Callable[P, R]:
    """Millions of long-lived objects (histories, seen ids) and no reference cycle made in the
    loop: the cyclic collector would rescan them again and again (up to half the run's time)."""

    @functools.wraps(run)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        collecting = gc.isenabled()
        gc.disable()
        try:
            return run(*args, **kwargs)
        finally:
            if collecting:
                gc.enable()

    return paused


@_without_cyclic_gc
def run_backtest(
    items: Iterable[tuple[int, Item]],
    new: RuleSet,
    baseline: RuleSet,
    *,
    state: StateConfig | None = None,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 20_000,
    keep_decisions: bool = False,
    owns: Callable[[str], bool] | None = None,
    view_entries: int = VIEW_ENTRIES,
    model: ScoringModel | None = None,
    label_delay_days: int = 7,
) -> BacktestResult:
    """Judge every record of `items` ((record number, record) in stream order) with both rule
    sets; count the outcome. `owns`, for one part of a partitioned run, says whether an account
    belongs to this part (a record routed here for another account is an error: its history
    would be split). `view_entries`: ReplayHistory's cache of built entries (memory for speed)."""
    horizon: Decimal = max(new.state_horizon_s, baseline.state_horizon_s)
    countries = bool(new.history_needs | baseline.history_needs)
    if model is not None:
        horizon = max(horizon, Decimal(DAY_S))  # the model's features read 24 h
        countries = True
    builder = ReplayHistory(
        horizon, state, countries=countries, view_entries=view_entries, profiles=model is not None
    )
    result = BacktestResult(decisions=[] if keep_decisions else None)
    scoring = _Scoring(model, new, label_delay_days) if model is not None else None
    if scoring is not None:
        result.model = scoring.counts
    new_side, base_side = result.sides
    only_new, only_base = result.only_new, result.only_base
    contract_ids = frozenset(new.config.severities) | frozenset(baseline.config.severities)
    decisions = result.decisions
    # Equal contract parameters: the contract rules' verdict is the same, computed once.
    against = baseline_for(baseline, new)
    judged = duplicates = labelled = labelled_fraud = fraud_labelled = 0
    index = -1
    count = 0
    for index, item in items:
        count += 1
        if progress is not None and count % progress_every == 0:
            progress(count)
        if type(item) is BadLine:
            _invalid(result, item.reason, index)
            continue
        txn = parse_transaction(item)  # type: ignore[arg-type]
        if isinstance(txn, InvalidRecord):
            _invalid(result, txn.reason, index)
            continue
        if owns is not None and not owns(txn.account_id):
            raise PartitionError(
                f"record {index + 1}: its account was not where the partitioning put it"
            )
        outcome = judge_record(builder, txn, index, new, model, against)
        if type(outcome) is not Judged:
            if isinstance(outcome, NotJudged):
                raise outcome.error
            duplicates += 1
            continue
        if scoring is not None:
            scoring.add(builder, txn, outcome)
        new_verdict = outcome.verdict
        base_verdict = outcome.baseline
        assert base_verdict is not None  # judged against the baseline
        judged += 1
        if new_verdict.rule_errors or base_verdict.rule_errors:
            for side, verdict in ((new_side, new_verdict), (base_side, base_verdict)):
                for rule, _ in verdict.rule_errors:
                    side.errors[rule] += 1
                    _example(side.error_examples, rule, index, txn.transaction_id)
        raw = txn.raw
        label: Any = raw.get(LABEL)
        is_fraud: Any = raw.get(FRAUD)
        new_reasons = new_verdict.decision.reasons
        base_reasons = base_verdict.decision.reasons
        if decisions is not None:
            decisions.append(
                (
                    index,
                    txn.transaction_id,
                    tuple(r.rule for r in new_reasons),
                    tuple(r.rule for r in base_reasons),
                )
            )
        truth: frozenset[str] | None = None
        if type(is_fraud) is bool:  # fraud or not: what every rule should catch, or none
            truth = contract_ids if is_fraud else _NOTHING
            fraud_labelled += 1
        elif type(label) is list:  # anything else is no label
            truth = frozenset(label)
        if truth is not None:
            labelled += 1
            if truth:
                labelled_fraud += 1
        if (
            not truth
            and not new_reasons
            and not base_reasons
            and not new_verdict.shadow
            and not base_verdict.shadow
        ):
            continue  # clean under both, and not labelled fraud: nothing to count
        new_fired = frozenset(r.rule for r in new_reasons)
        base_fired = frozenset(r.rule for r in base_reasons)
        for reason in new_verdict.shadow:
            new_side.shadow[reason.rule] += 1
        for reason in base_verdict.shadow:
            base_side.shadow[reason.rule] += 1
        txn_id = txn.transaction_id
        new_shadow, base_shadow = new_verdict.shadow, base_verdict.shadow
        for side, fired, other, only, examples, verdict_shadow in (
            (new_side, new_fired, base_fired, only_new, result.examples_new, new_shadow),
            (base_side, base_fired, new_fired, only_base, result.examples_base, base_shadow),
        ):
            if fired:
                side.flagged += 1
                if not other:
                    only["*"] += 1
                    _example(examples, "*", index, txn_id)
            for rule in fired:
                side.hits[rule] += 1
                if rule not in other:
                    only[rule] += 1
                    _example(examples, rule, index, txn_id)
            if truth is not None:
                _tally(side, fired, verdict_shadow, truth, contract_ids)
    if scoring is not None:
        scoring.flush()
    if progress is not None:
        progress(count)
    result.records = count
    result.judged = judged
    result.duplicates = duplicates
    result.labelled = labelled
    result.labelled_fraud = labelled_fraud
    result.fraud_labelled = fraud_labelled
    return result


class _Scoring:
    """The model's rows of a backtest, scored a chunk at a time, counted into ModelCounts."""

    def __init__(self, model: ScoringModel, new: RuleSet, label_delay_days: int) -> None:
        self._model = model
        rule = model.rule_for(new.model)
        self.counts = ModelCounts(
            model.model_version, None if rule is None else rule.threshold, label_delay_days
        )
        self._delay = Decimal(label_delay_days * DAY_S)
        # (row, fraud label or None, whether the new rule set flagged it)
        self._pending: list[tuple[Any, bool | None, bool]] = []

    def add(self, history: ReplayHistory, txn: Any, judged: Judged) -> None:
        fraud = txn.raw.get(FRAUD)
        label = fraud if type(fraud) is bool else None
        if label:  # known the delay after the transaction: the records judged from then see it
            history.apply_fraud(txn, txn.event_time + self._delay)
        if judged.row is None:
            self.counts.row_errors += 1
            return
        self._pending.append((judged.row, label, bool(judged.verdict.decision.reasons)))
        if len(self._pending) >= SCORE_CHUNK:
            self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        scored = self._model.score([row for row, _, _ in pending])
        counts = self.counts
        threshold = counts.threshold
        counts.scored += len(scored)
        for (_, label, ruled), one in zip(pending, scored, strict=True):
            hit = threshold is not None and one.score >= threshold
            counts.flagged += hit
            if label is None:
                continue
            either = hit or ruled
            if label:
                counts.true_pos += hit
                counts.false_neg += not hit
                counts.either_true_pos += either
                counts.either_false_neg += not either
            else:
                counts.false_pos += hit
                counts.either_false_pos += either


def _tally(
    side: Side,
    fired: frozenset[str],
    shadow: tuple[Reason, ...],
    truth: frozenset[str],
    contract_ids: frozenset[str],
) -> None:
    """True/false positives and false negatives of one labelled record, per rule (shadow rules
    too: watching them is what they are for) and overall (live rules only)."""
    fraud = bool(truth)
    for rule in (*fired, *(reason.rule for reason in shadow)):
        positive = rule in truth if rule in contract_ids else fraud
        if positive:
            side.true_pos[rule] += 1
        else:
            side.false_pos[rule] += 1
    for rule in truth - fired:  # a custom rule's misses: labelled_fraud - its true positives
        side.false_neg[rule] += 1
    if fraud:
        if fired:
            side.true_pos["*"] += 1
        else:
            side.false_neg["*"] += 1
    elif fired:
        side.false_pos["*"] += 1


def merge(parts: Iterable[BacktestResult]) -> BacktestResult:
    """One result from the results of disjoint parts (accounts split by hash): sums, and the
    first examples in file order."""
    out = BacktestResult()
    decisions: list[tuple[int, str, tuple[str, ...], tuple[str, ...]]] = []
    any_decisions = False
    for part in parts:
        out.records += part.records
        out.judged += part.judged
        out.duplicates += part.duplicates
        out.labelled += part.labelled
        out.labelled_fraud += part.labelled_fraud
        out.fraud_labelled += part.fraud_labelled
        out.invalid.update(part.invalid)
        for reason, numbers in part.invalid_examples.items():
            out.invalid_examples[reason] = sorted(
                [*out.invalid_examples.get(reason, []), *numbers]
            )[:EXAMPLES]
        for mine, theirs in zip(out.sides, part.sides, strict=True):
            for name in ("hits", "shadow", "errors", "true_pos", "false_pos", "false_neg"):
                getattr(mine, name).update(getattr(theirs, name))
            mine.flagged += theirs.flagged
            for rule, kept in theirs.error_examples.items():
                mine.error_examples[rule] = sorted([*mine.error_examples.get(rule, []), *kept])[
                    :EXAMPLES
                ]
        out.only_new.update(part.only_new)
        out.only_base.update(part.only_base)
        for mine_examples, their_examples in (
            (out.examples_new, part.examples_new),
            (out.examples_base, part.examples_base),
        ):
            for rule, kept in their_examples.items():
                mine_examples[rule] = sorted([*mine_examples.get(rule, []), *kept])[:EXAMPLES]
        if part.decisions is not None:
            any_decisions = True
            decisions += part.decisions
    if any_decisions:
        out.decisions = sorted(decisions)
    return out
