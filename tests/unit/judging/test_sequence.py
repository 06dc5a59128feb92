"""consumer/judging/sequence.py: the per-record sequence and the pure batch judge, over a
HistoryView in memory (no Redis, no sinks)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from consumer.judging import sequence as judge_module
from consumer.judging.sequence import (
    DUPLICATE,
    Decided,
    Judged,
    NotJudged,
    baseline_for,
    judge,
    judge_record,
    judge_transaction,
)
from consumer.model.rule import ModelRule
from consumer.model.stage import BatchModel
from consumer.records import Position, Transaction, parse_transaction
from consumer.rules import EMPTY_HISTORY, RulesConfig
from consumer.rules.expressions import Expression, compile_expression
from consumer.rules.features import Facts
from consumer.rules.ruleset import CustomRule, RuleSet
from tests.support.fakes import MemoryView

BASE_MS = 1_795_910_400_000


def txn(n: int, amount: str = "50", account: str = "acct-1", **extra: Any) -> Transaction:
    fields = {
        "transaction_id": f"t-{n}",
        "account_id": account,
        "amount": 0,
        "timestamp": BASE_MS + n * 1000,
        **extra,
    }
    text = json.dumps(fields).replace('"amount": 0', f'"amount": {amount}')
    parsed = parse_transaction(text.encode())
    assert isinstance(parsed, Transaction), parsed
    return parsed


def view() -> MemoryView:
    return MemoryView({}, {}, set())


def pos(n: int) -> Position:
    return (n, 0)


class Raising(Exception):
    pass


def raising_on(poison: frozenset[str]) -> Expression:
    def test(facts: Facts) -> bool:
        if facts.txn.transaction_id in poison:
            raise Raising
        return True

    return Expression("fragile", ("amount",), test)


def rules(*custom: CustomRule, version: str = "v1") -> RuleSet:
    return RuleSet(version, RulesConfig(), list(custom))


def custom(rule_id: str, when: str | Expression, severity: str = "high") -> CustomRule:
    expression = compile_expression(when) if isinstance(when, str) else when
    return CustomRule(rule_id, rule_id, severity, expression)


class FakeArray(list[float]):
    def tolist(self) -> list[float]:
        return list(self)


class FakeScorer:
    """Scores each row with its transaction's amount in hundreds (row[0]: see `Rows`)."""

    model_version = "fake-1"

    def score_batch(self, rows: list[Any], explain_from: float | None = None) -> Any:
        return FakeArray([float(row[0]) for row in rows]), [()] * len(rows)


class RowsModel(BatchModel):
    """A model whose feature row is (the amount / 100, how many earlier entries it saw)."""

    def row(self, txn: Transaction, history: Any) -> Any:
        if txn.transaction_id.endswith("-bad-row"):
            raise ValueError("no row")
        return (float(txn.amount) / 100, len(history.recent))


def model(threshold: float = 80) -> RowsModel:
    return RowsModel(FakeScorer(), ModelRule(threshold=threshold, severity="high"))  # type: ignore[arg-type]


def test_the_sequence_judges_in_order_each_record_seeing_only_the_earlier_ones() -> None:
    memory = view()
    velocity = rules()  # the contract rules: velocity fires on the 4th within 60 s
    outcomes = [judge_record(memory, txn(n), pos(n), velocity) for n in range(1, 6)]
    assert all(isinstance(o, Judged) for o in outcomes)
    fired = [[r.rule for r in o.verdict.decision.reasons] for o in outcomes]  # type: ignore[union-attr]
    assert fired == [[], [], [], ["velocity"], ["velocity"]]
    assert [p for p, _ in memory.entries["acct-1"]] == [pos(n) for n in range(1, 6)]


def test_a_duplicate_is_neither_judged_nor_added(monkeypatch: pytest.MonkeyPatch) -> None:
    memory = view()
    judge_record(memory, txn(1), pos(1), rules())
    calls: list[str] = []
    real = judge_module.judge_transaction

    def spy(one: Transaction, *args: Any) -> Judged:
        calls.append(one.transaction_id)
        return real(one, *args)

    monkeypatch.setattr(judge_module, "judge_transaction", spy)
    assert judge_record(memory, txn(1), pos(2), rules()) is DUPLICATE  # same id, elsewhere
    assert calls == []
    assert [p for p, _ in memory.entries["acct-1"]] == [pos(1)]
    # The same record at the same position is a replay, judged again.
    assert isinstance(judge_record(memory, txn(1), pos(1), rules()), Judged)
    assert calls == ["t-1"]


def test_a_rule_that_raises_does_not_fire_and_the_record_is_still_added() -> None:
    memory = view()
    ruleset = rules(custom("fragile", raising_on(frozenset({"t-1"}))), custom("big", "amount > 10"))
    outcome = judge_record(memory, txn(1), pos(1), ruleset)
    assert isinstance(outcome, Judged)
    assert [r.rule for r in outcome.verdict.decision.reasons] == ["big"]
    assert outcome.verdict.rule_errors == (("fragile", "Raising"),)
    assert memory.entries["acct-1"] == [(pos(1), txn(1))]


def test_a_failing_model_row_leaves_the_verdict_and_the_record_is_added() -> None:
    memory = view()
    outcome = judge_record(
        memory, txn(1, "20000", transaction_id="x-bad-row"), pos(1), rules(), model()
    )
    assert isinstance(outcome, Judged)
    assert outcome.row is None and isinstance(outcome.row_error, ValueError)
    assert [r.rule for r in outcome.verdict.decision.reasons] == ["high_amount"]
    assert len(memory.entries["acct-1"]) == 1


@pytest.mark.parametrize("step", ["history", "add"])
def test_a_record_that_cannot_be_judged_is_not_judged_and_not_added(step: str) -> None:
    class Broken(MemoryView):
        def history(self, one: Transaction, position: Position) -> Any:
            if step == "history":
                raise ZeroDivisionError("history")
            return super().history(one, position)

        def add(self, one: Transaction, position: Position) -> None:
            if step == "add":
                raise ZeroDivisionError("add")
            super().add(one, position)

    memory = Broken({}, {}, set())
    outcome = judge_record(memory, txn(1), pos(1), rules())
    assert isinstance(outcome, NotJudged)
    assert repr(outcome.error) == f"ZeroDivisionError('{step}')"
    assert memory.entries == {}


def test_a_baseline_is_judged_on_the_same_history_reusing_an_equal_contract(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    new = rules(custom("big", "amount > 100"), version="new")
    same = rules(version="base")
    other = RuleSet("stricter", RulesConfig(high_amount_threshold=Decimal(50)))
    given: list[object] = []
    real = judge_module.judge_with_ruleset

    def spy(one: Transaction, history: Any, ruleset: RuleSet, contract: Any = None) -> Any:
        given.append(contract)
        return real(one, history, ruleset, contract)

    monkeypatch.setattr(judge_module, "judge_with_ruleset", spy)
    outcome = judge_transaction(txn(1, "200"), EMPTY_HISTORY, new, None, baseline_for(same, new))
    assert given[1] is outcome.verdict.contract  # equal parameters: computed once
    assert [r.rule for r in outcome.verdict.decision.reasons] == ["big"]
    assert outcome.baseline is not None and outcome.baseline.decision.reasons == ()
    given.clear()
    outcome = judge_transaction(txn(1, "200"), EMPTY_HISTORY, new, None, baseline_for(other, new))
    assert given == [None, None]
    assert outcome.baseline is not None
    assert [r.rule for r in outcome.baseline.decision.reasons] == ["high_amount"]
    # A baseline built against another live rule set does not reuse this one's verdict.
    given.clear()
    judge_transaction(txn(1, "200"), EMPTY_HISTORY, new, None, baseline_for(same, same))
    assert given == [None, None]


def sequence(records: list[tuple[int, Transaction]]) -> list[tuple[Position, Transaction]]:
    return [(pos(n), one) for n, one in records]


def test_judge_gives_one_outcome_per_record_in_order() -> None:
    memory = view()
    batch = sequence([(1, txn(1, "20000")), (2, txn(2)), (3, txn(1, "20000"))])
    judgement = judge(batch, memory, rules())
    first, second, third = judgement.outcomes
    assert isinstance(first, Decided) and isinstance(second, Decided)
    assert [r.rule for r in first.decision.reasons] == ["high_amount"]
    assert second.decision.reasons == () and second.score is None
    assert third is DUPLICATE
    assert judgement.rows == 0 and judgement.score_error is None


def test_judge_scores_the_rows_at_once_and_applies_the_model_rule() -> None:
    memory = view()
    batch = sequence(
        [(1, txn(1, "9000")), (2, txn(2, "5000")), (3, txn(3, "9500", transaction_id="c-bad-row"))]
    )
    judgement = judge(batch, memory, rules(), model(threshold=80))
    first, second, third = judgement.outcomes
    assert isinstance(first, Decided) and isinstance(second, Decided) and isinstance(third, Decided)
    assert first.score is not None and first.score.score == 90.0
    assert [r.rule for r in first.decision.reasons] == ["model_score"]
    assert second.score is not None and second.decision.reasons == ()  # 50 < 80
    assert third.score is None and isinstance(third.row_error, ValueError)
    assert judgement.rows == 2


def test_a_rule_set_switching_the_model_rule_off_keeps_the_score_without_flagging() -> None:
    from consumer.rules.ruleset import ModelScoreEntry

    off = RuleSet("off", RulesConfig(), model=ModelScoreEntry(enabled=False))
    judgement = judge(sequence([(1, txn(1, "9000"))]), view(), off, model())
    [only] = judgement.outcomes
    assert isinstance(only, Decided)
    assert only.score is not None and only.decision.reasons == ()


def test_a_failing_batch_score_leaves_every_record_its_rules_verdict() -> None:
    class Broken(FakeScorer):
        def score_batch(self, rows: list[Any], explain_from: float | None = None) -> Any:
            raise RuntimeError("bad model file")

    class Short(FakeScorer):
        def score_batch(self, rows: list[Any], explain_from: float | None = None) -> Any:
            return FakeArray([99.0]), [()]

    for scorer in (Broken(), Short()):
        broken = RowsModel(scorer, ModelRule(threshold=80))  # type: ignore[arg-type]
        batch = sequence([(1, txn(1, "20000")), (2, txn(2, "9000"))])
        judgement = judge(batch, view(), rules(), broken)
        assert judgement.score_error is not None and judgement.rows == 2
        decided = [o for o in judgement.outcomes if isinstance(o, Decided)]
        assert [[r.rule for r in o.decision.reasons] for o in decided] == [["high_amount"], []]
        assert all(o.score is None for o in decided)


def test_a_failing_model_rule_leaves_that_record_its_rules_verdict() -> None:
    class Fragile(RowsModel):
        def apply(self, decision: Any, scored: Any, rule: Any = None) -> Any:
            if decision.reasons:
                raise OverflowError
            return super().apply(decision, scored, rule)

    fragile = Fragile(FakeScorer(), ModelRule(threshold=80))  # type: ignore[arg-type]
    batch = sequence([(1, txn(1, "20000")), (2, txn(2, "9000"))])
    first, second = judge(batch, view(), rules(), fragile).outcomes
    assert isinstance(first, Decided) and isinstance(second, Decided)
    assert isinstance(first.apply_error, OverflowError) and first.score is None
    assert [r.rule for r in first.decision.reasons] == ["high_amount"]
    assert [r.rule for r in second.decision.reasons] == ["model_score"]
