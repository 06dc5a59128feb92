"""Judging records, defined once for the stream, the backtest and whatever judges next.

Three layers, each built on the one before:

- `judge_transaction(txn, history, ruleset, model, baseline)`: pure. The rule set's verdict on a
  transaction preceded by `history`, a baseline rule set's on the same history (the backtest's
  comparison), and the model's feature row. Nothing is read or written.
- `judge_record(view, txn, position, ...)`: the per-record sequence over a HistoryView
  (consumer/batch/ports.py): the duplicate check, the history the record sees, the judging above,
  then the record is added for the records after it. The stream's pipeline (over the batch's
  BatchView) and the backtest (over ReplayHistory) both call it; that is why a backtest decides
  as the stream does (tests/unit/backtest/test_backtest_stream.py).
- `judge(batch, view, ruleset, model)`: a validated batch in stream order into outcomes: every
  record through `judge_record`, the model's rows scored in one vectorised call, and the
  model_score rule applied. No I/O, no logs, no metrics: the pipeline routes the outcomes to
  its sinks and reports the errors they carry.

Invariants:

- **Order.** Records are judged in stream order and each is added before the next is judged, so
  a record sees exactly its account's earlier records (the view hides later positions).
- **Duplicates** (a producer retry of a transaction id) are neither judged nor added.
- **A failing rule costs its say, not the verdict.** A rule that raises does not fire
  (`judge_with_ruleset` names it in `rule_errors`). A model failing on a record (its row, or
  its rule) leaves the record its rules' verdict, without a score (`row_error`,
  `apply_error`); a model failing on the whole batch leaves every record unscored
  (`Judgement.score_error`). Only a record whose judging fails otherwise (its history, the
  judge itself, the add) is `NotJudged`: the stream dead-letters it as `internal`, the backtest
  raises its error. A NotJudged record was not added.
- **Baseline reuse.** A baseline rule set with the live one's contract parameters reuses the
  live contract verdict (computed once), unless a contract rule raised under the live one.

Where later features went, each written once:

- Long-horizon profiles (per account, per merchant; consumer/rules/profile.py): part of the
  AccountHistory a view gives a record (`AccountHistory.profile`), updated by `add`; both views
  keep them (the stream's store in Redis, the backtest's ReplayHistory in memory), so the
  stream, training and evaluation compute one feature row.
- Labels fed back: they enter the view's state (the merchants' labels); the records judged
  after them see them through `history`, with no change here.
- A synchronous scoring API (one transaction against the same state, nothing written):
  `judge_transaction(txn, view.history(txn, position), ...)`, the sequence without its writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, TypeVar

import msgspec

from consumer.judging.views import HistoryView, ScoringModel
from consumer.records import Transaction
from consumer.rules.history import AccountHistory
from consumer.rules.ruleset import RuleSet, RuleSetDecision, judge_with_ruleset

if TYPE_CHECKING:
    from consumer.model.features import FeatureRow
    from consumer.model.stage import Scored
    from consumer.rules.engine import Decision

__all__ = [
    "DUPLICATE",
    "Baseline",
    "Decided",
    "Duplicate",
    "Judged",
    "Judgement",
    "NotJudged",
    "Outcome",
    "baseline_for",
    "judge",
    "judge_record",
    "judge_transaction",
]

P = TypeVar("P")


class Duplicate:
    """A producer retry: not judged, not added (the one instance is DUPLICATE)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DUPLICATE"


DUPLICATE: Final = Duplicate()


class NotJudged:
    """A record whose judging failed (not a rule: its history, the judge, the add); it was not
    added to the view. `error` is what was raised."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"NotJudged({self.error!r})"


class Judged(msgspec.Struct, frozen=True):
    """What `judge_transaction` gives: the live verdict, the model's feature row (None without
    a model, or when building it failed: `row_error`), and the baseline's verdict (with one)."""

    verdict: RuleSetDecision
    row: FeatureRow | None = None
    row_error: Exception | None = None
    baseline: RuleSetDecision | None = None


class Baseline(msgspec.Struct, frozen=True):
    """A second rule set judged on the same history; build it with `baseline_for`.
    `shares_contract_with`: the live rule set whose contract verdict it may reuse (equal
    contract parameters), else None."""

    ruleset: RuleSet
    shares_contract_with: RuleSet | None = None


def baseline_for(baseline: RuleSet, live: RuleSet) -> Baseline:
    """`baseline` to judge beside `live` (the comparison of the parameters is made here, once,
    not per record)."""
    return Baseline(baseline, live if baseline.config == live.config else None)


def judge_transaction(
    txn: Transaction,
    history: AccountHistory,
    ruleset: RuleSet,
    model: ScoringModel | None = None,
    baseline: Baseline | None = None,
) -> Judged:
    """Judge `txn` preceded by `history`: pure, reads and writes nothing else.

    A rule that raises does not fire (named in the verdict's `rule_errors`); a model whose row
    fails leaves `row` None and the error in `row_error`. Anything else raises."""
    verdict = judge_with_ruleset(txn, history, ruleset)
    against = None
    if baseline is not None:
        reuse = baseline.shares_contract_with is ruleset and not verdict.rule_errors
        against = judge_with_ruleset(
            txn, history, baseline.ruleset, verdict.contract if reuse else None
        )
    if model is None:
        return Judged(verdict, None, None, against)
    try:
        row = model.row(txn, history)
    except Exception as exc:
        return Judged(verdict, None, exc, against)
    return Judged(verdict, row, None, against)


def judge_record(
    view: HistoryView[P],
    txn: Transaction,
    position: P,
    ruleset: RuleSet,
    model: ScoringModel | None = None,
    baseline: Baseline | None = None,
) -> Judged | Duplicate | NotJudged:
    """The per-record sequence: duplicate check, history, `judge_transaction`, add.

    DUPLICATE for a producer retry (nothing else done); NotJudged when judging the record
    failed other than by a rule or the model's row (it is then not added); else the Judged."""
    if view.is_duplicate(txn, position):
        return DUPLICATE
    try:
        judged = judge_transaction(txn, view.history(txn, position), ruleset, model, baseline)
        view.add(txn, position)
    except Exception as exc:
        return NotJudged(exc)
    return judged


class Decided(msgspec.Struct, frozen=True):
    """A judged record of a batch: the rules' verdict, the decision that counts (the verdict's,
    with the model_score rule applied when the record was scored), its score, and the model's
    failures on it (the rules' verdict stood)."""

    verdict: RuleSetDecision
    decision: Decision
    score: Scored | None = None
    row_error: Exception | None = None
    apply_error: Exception | None = None


Outcome = Decided | Duplicate | NotJudged


class Judgement(msgspec.Struct):
    """A batch judged: one outcome per record, in the batch's order. `rows`: the feature rows
    the model was given; `score_error`: why scoring them failed (every record then unscored)."""

    outcomes: list[Outcome]
    rows: int = 0
    score_error: Exception | None = None


def judge(
    batch: Sequence[tuple[P, Transaction]],
    view: HistoryView[P],
    ruleset: RuleSet,
    model: ScoringModel | None = None,
) -> Judgement:
    """Judge a validated batch ((position, transaction) in stream order) against `view`: each
    record by `judge_record`, then the model's rows scored at once and its rule applied.

    A batch is judged by one rule set and one model; the model_score rule is the model's under
    the rule set's `model_score` entry. A score that fails for the batch (or gives a score per
    row that is not one per row) leaves the records their rules' verdicts."""
    model_rule = model.rule_for(ruleset.model) if model is not None else None
    judged = [judge_record(view, txn, position, ruleset, model) for position, txn in batch]
    outcomes: list[Outcome] = []
    if model is None:
        for one in judged:
            if isinstance(one, Judged):
                outcomes.append(Decided(one.verdict, one.verdict.decision))
            else:
                outcomes.append(one)
        return Judgement(outcomes)
    rows = [one.row for one in judged if isinstance(one, Judged) and one.row is not None]
    score_error: Exception | None = None
    try:
        scores = model.score(rows, model_rule)
        if len(scores) != len(rows):
            raise ValueError(f"the model gave {len(scores)} scores for {len(rows)} rows")
    except Exception as exc:
        scores, score_error = [], exc
    scored = iter(scores)
    for one in judged:
        if not isinstance(one, Judged):
            outcomes.append(one)
            continue
        score = next(scored, None) if one.row is not None else None
        decision = one.verdict.decision
        apply_error = None
        if score is not None and model_rule is not None:
            try:
                decision = model.apply(decision, score, model_rule)
            except Exception as exc:
                score, apply_error = None, exc
        outcomes.append(Decided(one.verdict, decision, score, one.row_error, apply_error))
    return Judgement(outcomes, len(rows), score_error)
