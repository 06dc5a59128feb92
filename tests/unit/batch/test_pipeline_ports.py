"""The pipeline through its ports (consumer/batch/ports.py): an in-memory state store, collecting
sinks, fixed and changing sources and the narrow PipelineSettings drive the real BatchPipeline,
and decide as it does over Redis."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import redis
from hypothesis import given
from hypothesis import strategies as st

from consumer.batch.pipeline import BatchPipeline
from consumer.batch.ports import (
    NO_MODEL,
    FixedModel,
    FixedRuleSet,
    PipelineSettings,
    model_provider,
)
from consumer.infra.metrics import METRICS
from consumer.model.rule import ModelRule
from consumer.model.stage import BatchModel
from consumer.rules import RulesConfig, state_horizon_s
from consumer.rules.ruleset import RuleSet
from consumer.settings.config import RetryConfig, Settings, StateConfig
from consumer.state.store import AccountStateStore
from consumer.worker.wiring import pipeline_settings
from tests.support.fakes import CollectingAlerts, CollectingBatch, MemoryStateStore
from tests.unit.worker.test_stream_properties import (
    PROPERTY_SETTINGS,
    FakeRecord,
    split,
    streams,
)

ARRIVAL_MS = 1_795_910_400_000
NOW = datetime(2026, 11, 29, tzinfo=UTC)


def record(n: int, amount: str = "50", account: str = "acct-1", **extra: Any) -> FakeRecord:
    fields = {
        "transaction_id": f"t-{n}",
        "account_id": account,
        "amount": 0,
        "timestamp": ARRIVAL_MS - 60_000 + n * 1000,
        **extra,
    }
    text = json.dumps(fields).replace('"amount": 0', f'"amount": {amount}')
    return FakeRecord(text.encode(), f"{n:056d}", 0, ARRIVAL_MS)


def raw(n: int, data: bytes) -> FakeRecord:
    return FakeRecord(data, f"{n:056d}", 0, ARRIVAL_MS)


SETTINGS = pipeline_settings(
    Settings(bucket="b", topic_arn="arn:aws:sns:us-east-1:1:t", redis_url="")
)


class Rig:
    """A pipeline over in-memory ports; `run` processes batches and settles, as a checkpoint
    would; the lines and alerts collect across runs."""

    def __init__(
        self,
        store: Any = None,
        settings: PipelineSettings = SETTINGS,
        **ports: Any,
    ) -> None:
        self.store = store if store is not None else MemoryStateStore()
        self.flagged, self.dead = CollectingBatch(), CollectingBatch()
        self.alerts = CollectingAlerts()
        self.pipeline: BatchPipeline[Any] = BatchPipeline(
            "shardId-000000000001",
            settings,
            self.flagged,
            self.dead,
            self.alerts,
            self.store,
            now=lambda: NOW,
            **ports,
        )

    def run(self, *batches: list[FakeRecord]) -> dict[str, float]:
        METRICS.snapshot_and_reset()
        for batch in batches:
            self.pipeline.process(batch)
        self.pipeline.settle_in_flight()
        return METRICS.snapshot_and_reset()

    def flags(self) -> dict[str, list[str]]:
        return {
            line["transaction_id"]: [r["rule"] for r in line["reasons"]]
            for line in self.flagged.lines
        }


def test_in_memory_ports_drive_the_pipeline() -> None:
    rig = Rig()
    counts = rig.run(
        [record(1, "20000"), raw(2, b"{bad"), record(3), record(4)],
        [record(5), raw(6, record(1, "20000").binary_data), record(7)],  # 6: a producer retry
    )
    assert rig.flags() == {"t-1": ["high_amount"], "t-5": ["velocity"], "t-7": ["velocity"]}
    assert [line["error"].split(":")[0] for line in rig.dead.lines] == ["not valid JSON"]
    assert sorted(a.transaction_id for a in rig.alerts.sent) == ["t-1", "t-5", "t-7"]
    assert counts["records.judged"] == 5 and counts["records.duplicate"] == 1
    assert counts["records.flagged"] == 3 and counts["records.invalid"] == 1
    # One load and one save per batch with valid records, one mark per batch with alerts.
    assert (rig.store.loads, rig.store.writes, rig.store.marks) == (2, 2, 2)
    assert [p for p, _ in rig.store.entries["acct-1"]] == [(n, 0) for n in (1, 3, 4, 5, 7)]
    assert rig.store.alerted == {"t-1", "t-5", "t-7"}


def test_a_replay_over_the_saved_state_decides_the_same_and_alerts_nothing_again() -> None:
    first = Rig()
    batches = [[record(1, "20000"), record(2), record(3)], [record(4), record(5, "20000")]]
    first.run(*batches)
    again = Rig(first.store)  # a new worker after a crash, the state already saved
    counts = again.run(batches[0][1:], batches[1])
    assert again.flagged.lines == first.flagged.lines[1:]
    assert again.alerts.sent == []
    assert counts["records.duplicate"] == 0  # a replay, not a producer retry


def test_the_narrow_settings_are_what_the_pipeline_reads() -> None:
    settings = pipeline_settings(
        Settings(
            bucket="b",
            topic_arn="t",
            redis_url="",
            alert_severity="high",
            timestamp_max_ahead_s=30,
            retry=RetryConfig(max_attempts=7),
            rules=RulesConfig(high_amount_threshold=Decimal(100)),
        )
    )
    assert settings == PipelineSettings(
        retry=RetryConfig(max_attempts=7),
        alert_severity="high",
        timestamp_max_ahead_s=30,
        rules=RulesConfig(high_amount_threshold=Decimal(100)),
    )
    rig = Rig(settings=settings)
    ahead = json.dumps(
        {"transaction_id": "t-9", "account_id": "a", "amount": 1, "timestamp": ARRIVAL_MS + 31_000}
    ).encode()
    rig.run([record(1, "150"), record(2), record(3), record(4), raw(9, ahead)])
    # No rule-set source: the contract rules as the settings configure them.
    assert rig.flags() == {"t-1": ["high_amount"], "t-4": ["velocity"]}
    assert {line["rules_version"] for line in rig.flagged.lines} == {
        "builtin-" + rig.flagged.lines[0]["rules_version"].split("-")[1]
    }
    assert [a.transaction_id for a in rig.alerts.sent] == ["t-1"]  # velocity is medium
    assert rig.dead.lines[0]["error"].startswith("timestamp: ")


class Switching:
    """A source whose value changes when the test says so (as a hot reload does)."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.asked = 0

    def current(self) -> Any:
        self.asked += 1
        return self.value


class FakeArray(list[float]):
    def tolist(self) -> list[float]:
        return list(self)


class FakeScorer:
    label_delay_days = 7  # the merchant features' delay (features.json)

    def __init__(self, score: float, version: str) -> None:
        self.score, self.model_version = score, version

    def score_batch(self, rows: list[Any], explain_from: float | None = None) -> Any:
        return FakeArray([self.score] * len(rows)), [()] * len(rows)


def fake_model(score: float, version: str) -> BatchModel:
    return BatchModel(FakeScorer(score, version), ModelRule(threshold=80))  # type: ignore[arg-type]


def test_sources_are_asked_once_per_batch_and_judge_the_whole_batch() -> None:
    rulesets = Switching(RuleSet("v1"))
    models = Switching(fake_model(90, "m1"))
    rig = Rig(rulesets=rulesets, model=models)
    rig.run([record(1), record(2, account="b")])
    rulesets.value = RuleSet("v2", RulesConfig(high_amount_threshold=Decimal(10)))
    models.value = None  # the model went away: the next batch is not scored
    rig.run([record(3, account="c")])
    rig.run([])  # an empty batch asks too (a quiet shard picks up new versions)
    assert (rulesets.asked, models.asked) == (3, 3)
    lines = {line["transaction_id"]: line for line in rig.flagged.lines}
    assert [(lines[t]["rules_version"], lines[t].get("model_version")) for t in lines] == [
        ("v1", "m1"),
        ("v1", "m1"),
        ("v2", None),
    ]
    assert [r["rule"] for r in lines["t-3"]["reasons"]] == ["high_amount"]


def test_a_model_is_always_a_source() -> None:
    model = fake_model(90, "m1")
    source = Switching(model)
    assert model_provider(None) is NO_MODEL and NO_MODEL.current() is None
    assert model_provider(source) is source  # type: ignore[comparison-overlap]
    fixed = model_provider(model)
    assert isinstance(fixed, FixedModel) and fixed.current() is model
    # A bare model and the same model as a source give the same lines.
    bare, wrapped = Rig(model=model), Rig(model=FixedModel(model))
    for rig in (bare, wrapped):
        rig.run([record(1), record(2, "20000")])
    assert bare.flagged.lines == wrapped.flagged.lines
    assert [line["model_score"] for line in bare.flagged.lines] == [90.0, 90.0]
    assert FixedRuleSet(RuleSet("r")).current().version == "r"


def test_closing_the_pipeline_closes_the_alert_sink() -> None:
    rig = Rig()
    rig.pipeline.close(0)
    assert rig.alerts.closed


@PROPERTY_SETTINGS
@given(records=streams(), seed=st.integers(0, 2**16))
def test_the_memory_store_decides_as_the_redis_store(
    redis_conn: redis.Redis, records: list[FakeRecord], seed: int
) -> None:
    """The same records, batched the same way, through the same pipeline over the two stores:
    the same flagged lines, dead letters and alerts (the protocol is all the pipeline needs)."""
    redis_conn.flushall()
    batches = split(records, random.Random(seed))
    store = AccountStateStore(redis_conn, StateConfig(), state_horizon_s(RulesConfig()))
    over_redis, in_memory = Rig(store), Rig()
    over_redis.run(*batches)
    in_memory.run(*batches)
    assert in_memory.flagged.lines == over_redis.flagged.lines
    assert in_memory.dead.lines == over_redis.dead.lines
    assert in_memory.alerts.sent == over_redis.alerts.sent
