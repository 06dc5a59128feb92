"""A rule that fails on a record does not cost the record its verdict (issue #19, item 4).

A custom rule whose condition raises, a contract rule that raises, a model whose feature row or
rule fails: that rule counts as not fired for the record, the other rules still decide, flag and
alert, the failure is counted by rule (`rule_errors.<id>`, CloudWatch RuleErrors) and logged
(`rule_error`, rate-limited per rule), and nothing is dead-lettered. Only a record that cannot be
judged at all still goes to the dead letters.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import redis

from consumer.batch import pipeline as pipeline_module
from consumer.batch.pipeline import BatchPipeline, RateLimit
from consumer.batch.ports import FixedModel, FixedRuleSet
from consumer.infra.metrics import METRICS
from consumer.judging import sequence as judge_module
from consumer.model.rule import ModelRule
from consumer.model.stage import BatchModel
from consumer.records import Transaction, parse_transaction
from consumer.rules import EMPTY_HISTORY, NOT_FLAGGED, RulesConfig
from consumer.rules import engine as engine_module
from consumer.rules import ruleset as ruleset_module
from consumer.rules.amount import high_amount
from consumer.rules.expressions import Expression, compile_expression
from consumer.rules.features import Facts
from consumer.rules.ruleset import CustomRule, RuleSet, judge_with_ruleset
from consumer.settings.config import Settings, StateConfig
from consumer.state.store import AccountStateStore
from consumer.worker.wiring import pipeline_settings
from tests.support.fakes import CollectingAlerts, CollectingBatch, ManualClock

BASE_MS = 1_795_910_400_000
ACCOUNT = "acct-7777-secret"
CARD = "4111111111111111"


class Poisoned(Exception):
    """What the failing rule raises; its text quotes the record, which must never travel."""


def fragile(poison: frozenset[str], fires_above: Decimal = Decimal(100)) -> Expression:
    """A condition that raises on the transactions named in `poison` (as a decimal overflow or a
    bug would) and otherwise fires above an amount."""

    def test(facts: Facts) -> bool:
        if facts.txn.transaction_id in poison:
            raise Poisoned(f"account {facts.txn.account_id} card {CARD}")
        return bool(facts.txn.amount > fires_above)

    return Expression("amount > 100 (fragile)", ("amount",), test)


def custom(rule_id: str, when: str | Expression, severity: str, shadow: bool = False) -> CustomRule:
    expression = compile_expression(when) if isinstance(when, str) else when
    return CustomRule(rule_id, f"{rule_id} rule", severity, expression, shadow)


def body(n: int, amount: str, **extra: Any) -> bytes:
    fields = {
        "transaction_id": f"t-{n}",
        "account_id": f"{ACCOUNT}-{n}",
        "amount": 0,
        "timestamp": BASE_MS - 1000,
        "channel": "online",
        **extra,
    }
    return json.dumps(fields).replace('"amount": 0', f'"amount": {amount}').encode()


def parsed(n: int, amount: str, **extra: Any) -> Transaction:
    txn = parse_transaction(body(n, amount, **extra))
    assert isinstance(txn, Transaction), txn
    return txn


def rules_of(reasons: Any) -> list[str]:
    return [reason.rule for reason in reasons]


# --- the pure core: judge_with_ruleset -----------------------------------------------------------

POISON = frozenset({"t-3", "t-4"})


def fragile_ruleset() -> RuleSet:
    return RuleSet(
        "fragile-1",
        RulesConfig(),
        [
            custom("fragile", fragile(POISON), "high"),
            custom("steady", "amount > 200", "medium"),
            custom("watch", fragile(POISON, Decimal(50)), "low", shadow=True),
            custom("watch_big", "amount > 500", "low", shadow=True),
        ],
    )


def test_a_custom_rule_that_raises_does_not_fire_and_the_others_decide() -> None:
    ruleset = fragile_ruleset()
    # Not poisoned: the fragile rule fires like any other.
    clean = judge_with_ruleset(parsed(2, "300"), EMPTY_HISTORY, ruleset)
    assert rules_of(clean.decision.reasons) == ["fragile", "steady"]
    assert rules_of(clean.shadow) == ["watch"]
    assert clean.rule_errors == ()
    # Poisoned: the fragile live and shadow rules do not fire; steady and watch_big still do.
    verdict = judge_with_ruleset(parsed(3, "600"), EMPTY_HISTORY, ruleset)
    assert rules_of(verdict.decision.reasons) == ["steady"]
    assert verdict.decision.severity == "medium"
    assert rules_of(verdict.shadow) == ["watch_big"]
    assert verdict.rule_errors == (("fragile", "Poisoned"), ("watch", "Poisoned"))
    # The contract rules decide as ever beside a failing custom rule.
    big = judge_with_ruleset(parsed(4, "20000"), EMPTY_HISTORY, ruleset)
    assert rules_of(big.decision.reasons) == ["high_amount", "steady"]
    assert big.decision.severity == "high"
    assert big.rule_errors == (("fragile", "Poisoned"), ("watch", "Poisoned"))


def test_a_failure_on_an_otherwise_quiet_record_is_still_reported() -> None:
    ruleset = fragile_ruleset()
    verdict = judge_with_ruleset(parsed(3, "10"), EMPTY_HISTORY, ruleset)
    assert verdict.decision == NOT_FLAGGED and not verdict.flagged
    assert verdict.rule_errors == (("fragile", "Poisoned"), ("watch", "Poisoned"))
    assert verdict is not ruleset._quiet
    # A quiet record without failures is the shared quiet verdict, as before.
    assert judge_with_ruleset(parsed(1, "10"), EMPTY_HISTORY, ruleset) is ruleset._quiet


def test_no_exception_text_travels_only_the_rule_and_the_exception_type() -> None:
    verdict = judge_with_ruleset(parsed(3, "600"), EMPTY_HISTORY, fragile_ruleset())
    text = repr(verdict.rule_errors)
    assert ACCOUNT not in text and CARD not in text


def test_a_rule_whose_detail_fails_does_not_fire(monkeypatch: pytest.MonkeyPatch) -> None:
    ruleset = RuleSet("detail-1", RulesConfig(), [custom("steady", "amount > 200", "medium")])

    def broken(value: Any) -> str:
        raise MemoryError

    monkeypatch.setattr(ruleset_module, "_shown", broken)
    verdict = judge_with_ruleset(parsed(1, "20000"), EMPTY_HISTORY, ruleset)
    assert rules_of(verdict.decision.reasons) == ["high_amount"]
    assert verdict.custom == ()
    assert verdict.rule_errors == (("steady", "MemoryError"),)


def raising_for(
    poison: frozenset[str], real: Callable[..., str | None]
) -> Callable[..., str | None]:
    """A contract rule function that raises on the poisoned transactions."""

    def rule(txn: Transaction, *args: Any) -> str | None:
        if txn.transaction_id in poison:
            raise ArithmeticError(f"{txn.account_id} {CARD}")
        return real(txn, *args)

    return rule


def test_a_contract_rule_that_raises_leaves_the_others_and_the_custom_rules_to_decide(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ruleset = RuleSet("contract-1", RulesConfig(), [custom("steady", "amount > 200", "medium")])
    monkeypatch.setattr(
        engine_module,
        "high_amount",
        raising_for(frozenset({"t-1"}), high_amount),
    )
    txn = parsed(1, "20000", origin_country="DE", destination_country="FR")
    verdict = judge_with_ruleset(txn, EMPTY_HISTORY, ruleset)
    assert rules_of(verdict.contract.reasons) == ["cross_border"]
    assert rules_of(verdict.decision.reasons) == ["cross_border", "steady"]
    assert verdict.decision.severity == "medium"
    assert verdict.rule_errors == (("high_amount", "ArithmeticError"),)
    # Even with no custom rule at all (the default rule set).
    plain = judge_with_ruleset(txn, EMPTY_HISTORY, RuleSet("plain-1"))
    assert rules_of(plain.decision.reasons) == ["cross_border"]
    assert plain.rule_errors == (("high_amount", "ArithmeticError"),)
    # Another transaction: judged on the fast path, nothing reported.
    other = judge_with_ruleset(parsed(2, "20000"), EMPTY_HISTORY, ruleset)
    assert rules_of(other.decision.reasons) == ["high_amount", "steady"]
    assert other.rule_errors == ()


# --- the rate limit ------------------------------------------------------------------------------


def test_the_rate_limit_lets_one_line_per_key_per_interval_and_counts_the_rest() -> None:
    clock = ManualClock(100.0)
    limit = RateLimit(every_s=60, clock=clock)
    assert limit.allow("a") == 0
    assert limit.allow("a") is None
    assert limit.allow("b") == 0  # keys are independent
    clock.now = 159.9
    assert limit.allow("a") is None
    clock.now = 160.0
    assert limit.allow("a") == 2  # the two held back since the last line
    assert limit.allow("a") is None
    clock.now = 1000.0
    assert limit.allow("a") == 1
    assert limit.allow("b") == 0


def test_the_rate_limit_memory_is_bounded() -> None:
    clock = ManualClock()
    limit = RateLimit(every_s=60, clock=clock, max_keys=3)
    for key in ("a", "b", "c"):
        assert limit.allow(key) == 0
    assert limit.allow("d") == 0  # starts afresh rather than grow
    assert limit.allow("d") is None
    assert len(limit._last) == 1


# --- the pipeline -------------------------------------------------------------------------------


@dataclass
class Record:
    binary_data: bytes
    sequence_number: str
    sub_sequence_number: int = 0
    timestamp_millis: int = BASE_MS

    @property
    def data(self) -> str:
        return self.binary_data.decode()


def record(n: int, amount: str, **extra: Any) -> Record:
    return Record(body(n, amount, **extra), f"{n:056d}")


class LogRecorder:
    """Stands in for the pipeline's structlog logger: keeps (level, event, fields)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Callable[..., None]:
        def emit(event: str, **fields: Any) -> None:
            self.lines.append((level, event, fields))

        return emit

    def events(self, event: str) -> list[dict[str, Any]]:
        return [fields for _, name, fields in self.lines if name == event]


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> LogRecorder:
    recorder = LogRecorder()
    monkeypatch.setattr(pipeline_module, "log", recorder)
    return recorder


@pytest.fixture
def clean_redis(redis_conn: redis.Redis) -> Iterator[redis.Redis]:
    redis_conn.flushall()
    METRICS.snapshot_and_reset()
    yield redis_conn


@dataclass
class Rig:
    pipeline: BatchPipeline
    flagged: CollectingBatch
    dead: CollectingBatch
    shadow: CollectingBatch
    alerts: CollectingAlerts
    clock: ManualClock

    def run(self, *batches: list[Record]) -> dict[str, float]:
        for batch in batches:
            self.pipeline.process(batch)
        self.pipeline.settle_in_flight()
        return METRICS.snapshot_and_reset()


def rig(
    client: redis.Redis, ruleset: RuleSet, model: BatchModel | None = None, every_s: float = 60
) -> Rig:
    settings = Settings(bucket="b", topic_arn="arn:aws:sns:us-east-1:1:t", redis_url="")
    flagged, dead, shadow = CollectingBatch(), CollectingBatch(), CollectingBatch()
    alerts = CollectingAlerts()
    clock = ManualClock(1000.0)
    pipeline = BatchPipeline(
        "shardId-000000000007",
        pipeline_settings(settings),
        flagged,
        dead,
        alerts,
        AccountStateStore(client, StateConfig(), Decimal(90000)),
        rulesets=FixedRuleSet(ruleset),
        shadow=shadow,
        model=FixedModel(model),
        error_log=RateLimit(every_s=every_s, clock=clock),
    )
    return Rig(pipeline, flagged, dead, shadow, alerts, clock)


def flagged_rules(batch: CollectingBatch) -> dict[str, list[str]]:
    return {line["transaction_id"]: [r["rule"] for r in line["reasons"]] for line in batch.lines}


def test_the_stream_judges_alerts_and_counts_despite_a_failing_custom_rule(
    clean_redis: redis.Redis, logs: LogRecorder
) -> None:
    poison = frozenset(f"t-{n}" for n in range(10, 20))
    ruleset = RuleSet(
        "fragile-2",
        RulesConfig(),
        [
            custom("fragile", fragile(poison), "high"),
            custom("steady", "amount > 200", "medium"),
            custom("watch", fragile(poison, Decimal(50)), "low", shadow=True),
        ],
    )
    stream = rig(clean_redis, ruleset)
    counts = stream.run(
        [
            record(1, "50"),  # nothing fires
            record(2, "150"),  # fragile (high)
            record(10, "600"),  # fragile raises; steady (medium) still flags and alerts
            record(11, "20000"),  # fragile raises; high_amount and steady
            record(12, "10"),  # fragile raises on a record nothing else flags
        ]
    )
    assert stream.dead.lines == []
    assert flagged_rules(stream.flagged) == {
        "t-2": ["fragile"],
        "t-10": ["steady"],
        "t-11": ["high_amount", "steady"],
    }
    assert sorted(alert.transaction_id for alert in stream.alerts.sent) == ["t-10", "t-11", "t-2"]
    assert counts["records.judged"] == 5 and counts["records.flagged"] == 3
    assert counts["rule_errors.fragile"] == 3 and counts["rule_errors.watch"] == 3
    assert counts["flagged.rule.steady"] == 2
    assert "records.internal_error" not in counts and "records.invalid" not in counts
    assert [line["transaction_id"] for line in stream.shadow.lines] == ["t-2"]

    # One line per rule for the first failure; the two after it are held back and counted.
    lines = logs.events("rule_error")
    assert [(f["rule"], f["error"], f["suppressed"]) for f in lines] == [
        ("fragile", "Poisoned", 0),
        ("watch", "Poisoned", 0),
    ]
    assert lines[0]["sequence_number"] == f"{10:056d}"
    assert lines[0]["shard_id"] == "shardId-000000000007"
    assert lines[0]["rules_version"] == "fragile-2"
    assert all(level == "warning" for level, event, _ in logs.lines if event == "rule_error")
    text = json.dumps(lines)
    assert ACCOUNT not in text and CARD not in text
    assert logs.events("record_not_judged") == []

    # Within the interval: counted, not logged. After it: one line saying how many were held.
    stream.clock.now += 30
    counts = stream.run([record(13, "700")])
    assert counts["rule_errors.fragile"] == 1
    assert len(logs.events("rule_error")) == 2
    stream.clock.now += 31
    counts = stream.run([record(14, "800"), record(15, "900")])
    assert counts["rule_errors.fragile"] == 2
    latest = logs.events("rule_error")[2:]
    assert [(f["rule"], f["suppressed"], f["sequence_number"]) for f in latest] == [
        ("fragile", 3, f"{14:056d}"),  # t-11, t-12, t-13 held back
        ("watch", 3, f"{14:056d}"),
    ]
    assert flagged_rules(stream.flagged)["t-15"] == ["steady"]
    assert stream.dead.lines == []


def test_the_stream_judges_and_alerts_despite_a_failing_contract_rule(
    clean_redis: redis.Redis, logs: LogRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        engine_module,
        "high_amount",
        raising_for(frozenset({"t-1", "t-2"}), high_amount),
    )
    stream = rig(clean_redis, RuleSet("contract-2"))
    counts = stream.run(
        [
            # high_amount raises; cross_border (low) still flags it, not alerted (< medium)
            record(1, "20000", origin_country="DE", destination_country="FR"),
            # high_amount raises; low_balance_high_amount (high) flags and alerts
            record(2, "20000", account_balance=100),
            record(3, "20000"),  # judged on the fast path: high_amount
        ]
    )
    assert stream.dead.lines == []
    assert flagged_rules(stream.flagged) == {
        "t-1": ["cross_border"],
        "t-2": ["low_balance_high_amount"],
        "t-3": ["high_amount"],
    }
    assert sorted(alert.transaction_id for alert in stream.alerts.sent) == ["t-2", "t-3"]
    assert counts["rule_errors.high_amount"] == 2
    assert "records.internal_error" not in counts
    assert [(f["rule"], f["error"], f["suppressed"]) for f in logs.events("rule_error")] == [
        ("high_amount", "ArithmeticError", 0)
    ]


def test_a_record_that_cannot_be_judged_at_all_is_still_dead_lettered(
    clean_redis: redis.Redis, logs: LogRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def impossible(*args: Any) -> Any:
        raise RuntimeError("no judging today")

    monkeypatch.setattr(judge_module, "judge_with_ruleset", impossible)
    stream = rig(clean_redis, RuleSet("any-1"))
    counts = stream.run([record(1, "20000")])
    assert [line["error"].split(":")[0] for line in stream.dead.lines] == ["internal"]
    assert counts["records.internal_error"] == 1
    assert stream.flagged.lines == []


def test_a_record_that_could_not_be_judged_enters_no_state(
    clean_redis: redis.Redis, logs: LogRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dead-lettered as `internal`, it was not seen: a later copy of the same transaction (a
    producer retry, or the dead letter driven again after the fix) is judged, not dropped as a
    duplicate, in the same batch or in a later one."""
    real = judge_module.judge_with_ruleset
    failing = {"on": True}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if failing["on"]:
            failing["on"] = False
            raise RuntimeError("no judging today")
        return real(*args, **kwargs)

    monkeypatch.setattr(judge_module, "judge_with_ruleset", flaky)
    stream = rig(clean_redis, RuleSet("any-1"))
    retry = Record(body(1, "20000"), f"{101:056d}")  # t-1 again, at another position
    counts = stream.run([record(1, "20000"), retry])
    assert [line["error"].split(":")[0] for line in stream.dead.lines] == ["internal"]
    assert "records.duplicate" not in counts or counts["records.duplicate"] == 0
    assert [line["transaction_id"] for line in stream.flagged.lines] == ["t-1"]
    # And across batches: the first copy failed, the copy in the next batch is judged.
    failing["on"] = True
    stream.run([record(2, "20000")], [Record(body(2, "20000"), f"{102:056d}")])
    assert [line["transaction_id"] for line in stream.flagged.lines] == ["t-1", "t-2"]


# --- the model ----------------------------------------------------------------------------------


class FakeArray(list[float]):
    def tolist(self) -> list[float]:
        return list(self)


class FakeScorer:
    """Scores every row 90 (the rule's threshold is 80): the model fires on every record."""

    model_version = "fake-model-1"
    label_delay_days = 7  # the merchant features' delay (features.json)

    def score_batch(self, rows: list[Any], explain_from: float | None = None) -> Any:
        return FakeArray([90.0] * len(rows)), [()] * len(rows)


def test_a_model_failing_on_a_record_leaves_it_its_rules_verdict(
    clean_redis: redis.Redis, logs: LogRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = BatchModel(FakeScorer(), ModelRule(threshold=80, severity="high"))  # type: ignore[arg-type]
    real_row, real_apply = model.row, model.apply

    def row(txn: Transaction, history: Any) -> Any:
        if txn.transaction_id == "t-2":
            raise ValueError(f"{txn.account_id} {CARD}")
        return real_row(txn, history)

    def apply(decision: Any, scored: Any, rule: Any = None) -> Any:
        if decision.reasons and decision.reasons[0].rule == "high_amount":
            raise OverflowError
        return real_apply(decision, scored, rule)

    monkeypatch.setattr(model, "row", row)
    monkeypatch.setattr(model, "apply", apply)
    stream = rig(clean_redis, RuleSet("model-1"), model=model)
    counts = stream.run(
        [
            record(1, "50"),  # scored: the model flags it
            record(2, "20000"),  # its row fails: high_amount alone, no score
            record(3, "30000"),  # the model rule fails: high_amount alone, no score
        ]
    )
    assert stream.dead.lines == []
    lines = {line["transaction_id"]: line for line in stream.flagged.lines}
    assert [r["rule"] for r in lines["t-1"]["reasons"]] == ["model_score"]
    assert lines["t-1"]["model_score"] == 90.0
    for txn_id in ("t-2", "t-3"):
        assert [r["rule"] for r in lines[txn_id]["reasons"]] == ["high_amount"]
        assert "model_score" not in lines[txn_id] and "model_version" not in lines[txn_id]
    assert sorted(alert.transaction_id for alert in stream.alerts.sent) == ["t-1", "t-2", "t-3"]
    assert counts["rule_errors.model_score"] == 2
    assert "records.internal_error" not in counts
    errors = logs.events("rule_error")
    assert [(f["rule"], f["error"], f["stage"], f["suppressed"]) for f in errors] == [
        ("model_score", "ValueError", "row", 0)
    ]
    assert errors[0]["model_version"] == "fake-model-1"
    assert CARD not in json.dumps(errors) and ACCOUNT not in json.dumps(errors)


def test_a_model_failing_on_the_whole_batch_is_counted_per_record_and_logged_once(
    clean_redis: redis.Redis, logs: LogRecorder
) -> None:
    class BrokenScorer(FakeScorer):
        def score_batch(self, rows: list[Any], explain_from: float | None = None) -> Any:
            raise RuntimeError("the model file went bad")

    model = BatchModel(BrokenScorer(), ModelRule(threshold=80))  # type: ignore[arg-type]
    stream = rig(clean_redis, RuleSet("model-2"), model=model)
    counts = stream.run([record(1, "20000"), record(2, "50")], [record(3, "20000")])
    assert flagged_rules(stream.flagged) == {"t-1": ["high_amount"], "t-3": ["high_amount"]}
    assert stream.dead.lines == []
    assert counts["rule_errors.model_score"] == 3  # records left without a score
    assert counts["records.internal_error"] == 2  # per batch, as before
    assert [f["suppressed"] for f in logs.events("model_score_failed")] == [0]
