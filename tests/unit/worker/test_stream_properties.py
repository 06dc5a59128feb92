"""The streaming consumer against a direct computation over the whole stream, with real Redis.

Two properties from the contract:
- decisions made batch by batch, with state in Redis, equal a naive computation over the whole
  stream (tests/support/oracle.py, written from the contract text alone);
- replaying any suffix (a crash after some batches: the records since the checkpoint come again,
  batched differently) gives identical decisions and leaves identical Redis state.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.batch.pipeline import BatchPipeline
from consumer.reload.rulesets import RuleSetSource
from consumer.rules import state_horizon_s
from consumer.rules.config import RulesConfig
from consumer.rules.ruleset import RuleSet
from consumer.settings.config import Settings, StateConfig
from consumer.state.store import AccountStateStore
from consumer.worker.wiring import pipeline_settings
from tests.support.fakes import CollectingAlerts, CollectingBatch
from tests.support.oracle import reference_decisions

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
BASE_MS = 1_795_500_000_000
CITIES = [None, (52.52, 13.405), (48.8566, 2.3522), (40.7128, -74.006), (52.6, 13.5)]
AMOUNTS = ["1", "4.99", "5.00", "5.01", "999.99", "1000", "5000", "10000", "10000.01"]


@dataclass(frozen=True)
class FakeRecord:
    binary_data: bytes
    sequence_number: str
    sub_sequence_number: int
    timestamp_millis: int


@st.composite
def streams(draw: st.DrawFn) -> list[FakeRecord]:
    count = draw(st.integers(min_value=1, max_value=40))
    records: list[FakeRecord] = []
    ids: list[str] = []
    for n in range(count):
        kind = draw(st.sampled_from(["new"] * 8 + ["dup", "invalid"]))
        if kind == "invalid":
            data = draw(st.sampled_from([b"{bad", b'{"transaction_id":"x","amount":1}']))
        else:
            if kind == "dup" and ids:
                tid = draw(st.sampled_from(ids))
            else:
                tid = f"t{n}"
                ids.append(tid)
            offset_s = draw(st.integers(min_value=0, max_value=900))
            timestamp: Any = BASE_MS + offset_s * 1000
            if draw(st.booleans()):
                timestamp = _iso(timestamp, draw(st.sampled_from([0, 60, -330])))
            txn: dict[str, Any] = {
                "transaction_id": tid,
                "account_id": draw(st.sampled_from(["acct-1", "acct-2", "acct-3"])),
                "timestamp": timestamp,
            }
            amount = draw(st.sampled_from(AMOUNTS))
            balance = draw(st.sampled_from([None, "1000", "1111.11", "20000"]))
            city = draw(st.sampled_from(CITIES))
            device = draw(st.sampled_from([None, "dev-1", "dev-2"]))
            countries = draw(
                st.sampled_from([(None, None), ("DE", "DE"), ("DE", "fr"), ("DE", "es")])
            )
            body = json.dumps(txn)[:-1] + f', "amount": {amount}'
            if balance is not None:
                body += f', "account_balance": {balance}'
            if city is not None:
                body += f', "latitude": {city[0]}, "longitude": {city[1]}'
            if device is not None:
                body += f', "device_id": "{device}"'
            if countries[0] is not None:
                body += (
                    f', "origin_country": "{countries[0]}", "destination_country": "{countries[1]}"'
                )
            data = (body + "}").encode()
        records.append(FakeRecord(data, str(10**20 + n * 7), 0, BASE_MS + n))
    return records


def _iso(epoch_ms: int, offset_min: int) -> str:
    from datetime import UTC, datetime, timedelta, timezone

    zone = timezone(timedelta(minutes=offset_min))
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).astimezone(zone)
    return moment.isoformat(timespec="milliseconds")


def split(records: Sequence[FakeRecord], rng: random.Random) -> list[list[FakeRecord]]:
    batches, start = [], 0
    while start < len(records):
        size = rng.randint(1, 8)
        batches.append(list(records[start : start + size]))
        start += size
    return batches


class Harness:
    def __init__(self, client: redis.Redis, ruleset: RuleSet | None = None) -> None:
        self.settings = Settings(bucket="b", topic_arn="arn:aws:sns:us-east-1:1:t", redis_url="")
        rules = self.settings.rules
        horizon = state_horizon_s(rules) if ruleset is None else ruleset.state_horizon_s
        self.store = AccountStateStore(client, StateConfig(), horizon)
        self.ruleset = ruleset  # None: the built-in rules of the settings

    def run(self, batches: list[list[FakeRecord]]) -> tuple[dict[str, list[str]], list[str]]:
        """Fresh pipeline (a new worker) over the shared Redis: flagged rules by position."""
        flagged, dead = CollectingBatch(), CollectingBatch()
        alerts = CollectingAlerts()
        pipeline = BatchPipeline(
            "shardId-0",
            pipeline_settings(self.settings),
            flagged,  # type: ignore[arg-type]
            dead,  # type: ignore[arg-type]
            alerts,  # type: ignore[arg-type]
            self.store,
            rulesets=None
            if self.ruleset is None
            else RuleSetSource(None, check_every_s=0, fallback=self.ruleset),
        )
        for batch in batches:
            pipeline.process(batch)
        pipeline.settle_in_flight()  # as the checkpoint does
        decided = {
            line["sequence_number"]: sorted(r["rule"] for r in line["reasons"])
            for line in flagged.lines
        }
        return decided, [a.transaction_id for a in alerts.sent]


def redis_state(client: redis.Redis) -> dict[bytes, Any]:
    state: dict[bytes, Any] = {}
    for key in client.keys("*"):
        kind = client.type(key)
        if kind == b"zset":
            state[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == b"hash":
            state[key] = client.hgetall(key)
        else:
            state[key] = client.get(key)
    return state


@PROPERTY_SETTINGS
@given(records=streams(), seed=st.integers(0, 2**16))
def test_streaming_decisions_equal_the_direct_computation(
    redis_conn: redis.Redis, records: list[FakeRecord], seed: int
) -> None:
    redis_conn.flushall()
    decided, _ = Harness(redis_conn).run(split(records, random.Random(seed)))
    expected = {
        position: sorted(rules)
        for position, outcome, rules in reference_decisions(
            [(r.sequence_number, r.binary_data) for r in records], RulesConfig()
        )
        if outcome == "judged" and rules
    }
    assert decided == expected


@PROPERTY_SETTINGS
@given(records=streams(), seed=st.integers(0, 2**16), data=st.data())
def test_replaying_any_suffix_gives_identical_decisions_and_state(
    redis_conn: redis.Redis, records: list[FakeRecord], seed: int, data: st.DataObject
) -> None:
    redis_conn.flushall()
    rng = random.Random(seed)
    harness = Harness(redis_conn)
    first, first_alerts = harness.run(split(records, rng))
    state_after_first = redis_state(redis_conn)

    checkpoint = data.draw(st.integers(min_value=0, max_value=len(records) - 1))
    replayed = records[checkpoint:]
    again, again_alerts = Harness(redis_conn).run(split(replayed, rng))

    replayed_positions = {r.sequence_number for r in replayed}
    assert again == {p: rules for p, rules in first.items() if p in replayed_positions}
    assert redis_state(redis_conn) == state_after_first
    assert again_alerts == []  # already alerted: a replay sends nothing again
    assert len(first_alerts) == len(set(first_alerts))
