"""Backtest and stream give identical decisions for the same records.

The stream side is the real BatchPipeline with the real Redis store (as in
test_stream_properties.py); the backtest side is consumer.backtest over the same bytes in the same
order. Compared per record: the rules that flagged it (none for a clean record); and, through
the per-record sequence both share (consumer/judging/sequence.py), what each record was judged on.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from consumer.backtest.inputs import RecordFile
from consumer.backtest.run import run_backtest
from consumer.judging import sequence as judge_module
from consumer.judging.sequence import Judged
from consumer.records import Transaction, parse_transaction
from consumer.rules import state_horizon_s
from consumer.rules.config import RulesConfig
from consumer.rules.history import AccountHistory
from consumer.rules.ruleset import RuleSet
from consumer.rules.ruleset_load import default_ruleset, load_ruleset
from consumer.settings.config import StateConfig
from consumer.state.store import AccountStateStore
from load_test.labelled import write_labelled
from tests.unit.worker.test_stream_properties import (
    PROPERTY_SETTINGS,
    FakeRecord,
    Harness,
    split,
    streams,
)


def backtest_flags(
    datas: list[bytes], state: StateConfig | None = None, ruleset: RuleSet | None = None
) -> dict[int, list[str]]:
    """Record number -> sorted rules that flagged it, for the flagged ones."""
    ruleset = ruleset or default_ruleset()
    result = run_backtest(
        enumerate(datas), ruleset, default_ruleset(), state=state, keep_decisions=True
    )
    assert result.decisions is not None
    return {index: sorted(new) for index, _, new, _ in result.decisions if new}


def stream_flags(
    client: redis.Redis,
    records: list[FakeRecord],
    batches: list[list[FakeRecord]],
    state: StateConfig | None = None,
    ruleset: RuleSet | None = None,
) -> dict[int, list[str]]:
    harness = Harness(client, ruleset)
    if state is not None:
        harness.store = AccountStateStore(client, state, state_horizon_s(RulesConfig()))
    decided, _ = harness.run(batches)
    index_of = {r.sequence_number: i for i, r in enumerate(records)}
    return {index_of[seq]: rules for seq, rules in decided.items()}


@PROPERTY_SETTINGS
@given(records=streams(), seed=st.integers(0, 2**16))
def test_backtest_decides_as_the_stream_on_generated_streams(
    redis_conn: redis.Redis, records: list[FakeRecord], seed: int
) -> None:
    redis_conn.flushall()
    expected = stream_flags(redis_conn, records, split(records, random.Random(seed)))
    assert backtest_flags([r.binary_data for r in records]) == expected


# Custom rules on every country feature: the first sight of a country, and several countries in
# windows short and long (the generated streams span 15 minutes of event time).
COUNTRY_RULES = b"""
version: countries-1
custom:
  - {id: new_country, description: d, severity: low, when: "new_country"}
  - {id: two_10m, description: d, severity: low, when: "distinct_countries_10m >= 2"}
  - {id: three_24h, description: d, severity: medium, when: "distinct_countries_24h >= 3"}
  - id: fresh_abroad
    description: d
    severity: high
    when: "new_country and destination_country != origin_country and txn_count_1h >= 2"
"""


def country_ruleset() -> RuleSet:
    ruleset = load_ruleset(COUNTRY_RULES, "yaml", name="countries.yaml")
    assert ruleset.history_needs == frozenset({"countries"})
    return ruleset


@PROPERTY_SETTINGS
@given(records=streams(), seed=st.integers(0, 2**16))
def test_backtest_decides_as_the_stream_with_country_features(
    redis_conn: redis.Redis, records: list[FakeRecord], seed: int
) -> None:
    redis_conn.flushall()
    ruleset = country_ruleset()
    expected = stream_flags(redis_conn, records, split(records, random.Random(seed)), None, ruleset)
    assert backtest_flags([r.binary_data for r in records], ruleset=ruleset) == expected


@PROPERTY_SETTINGS
@given(records=streams(), seed=st.integers(0, 2**16), data=st.data())
def test_a_replay_after_a_partial_run_decides_as_the_backtest_with_country_features(
    redis_conn: redis.Redis, records: list[FakeRecord], seed: int, data: st.DataObject
) -> None:
    # A worker judged (and saved) the stream, then a crash: everything after the last checkpoint
    # comes again to a fresh worker, with Redis holding its effects. The replay decides as the
    # first pass, so as the backtest.
    redis_conn.flushall()
    ruleset, rng = country_ruleset(), random.Random(seed)
    datas = [r.binary_data for r in records]
    stream_flags(redis_conn, records, split(records, rng), None, ruleset)
    checkpoint = data.draw(st.integers(min_value=0, max_value=len(records) - 1))
    replayed = stream_flags(redis_conn, records, split(records[checkpoint:], rng), None, ruleset)
    expected = {i: rules for i, rules in backtest_flags(datas, ruleset=ruleset).items()}
    assert replayed == {i: rules for i, rules in expected.items() if i >= checkpoint}


@PROPERTY_SETTINGS
@given(records=streams())
def test_backtest_caps_histories_as_the_store_does(
    redis_conn: redis.Redis, records: list[FakeRecord]
) -> None:
    # At most 3 entries per account: velocity and card_testing then depend on which entries the
    # cap keeps (the newest by event time). One record per batch, as the store trims at each save.
    redis_conn.flushall()
    state = StateConfig(max_entries=3)
    expected = stream_flags(redis_conn, records, [[r] for r in records], state)
    assert backtest_flags([r.binary_data for r in records], state) == expected


def test_backtest_decides_as_the_stream_on_a_generated_file(
    redis_conn: redis.Redis, tmp_path: Path
) -> None:
    redis_conn.flushall()
    path = tmp_path / "records.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        write_labelled(
            handle,
            3000,
            rate=50.0,
            accounts=40,  # few accounts at 50 records/s: velocity fires on ordinary traffic too
            fraud_ratio=0.2,
            invalid_ratio=0.03,
            seed=21,
            start=datetime(2026, 11, 24, tzinfo=UTC),
        )
    with RecordFile(path) as source:
        datas = [item for _, item in source.items()]
    assert all(isinstance(d, bytes) for d in datas)
    records = [
        FakeRecord(data, str(10**20 + n * 7), 0, 1_795_500_000_000 + n)  # type: ignore[arg-type]
        for n, data in enumerate(datas)
    ]
    expected = stream_flags(redis_conn, records, split(records, random.Random(5)))
    decided = backtest_flags(datas)  # type: ignore[arg-type]
    assert decided == expected
    assert len(decided) > 300  # the file exercises the rules, not only clean records
    # The same file under rules on the country features.
    redis_conn.flushall()
    ruleset = country_ruleset()
    expected = stream_flags(redis_conn, records, split(records, random.Random(6)), None, ruleset)
    decided = backtest_flags(datas, ruleset=ruleset)  # type: ignore[arg-type]
    assert decided == expected
    fired = {rule for rules in decided.values() for rule in rules}
    assert {"new_country", "two_10m", "fresh_abroad"} <= fired  # (one foreign country each)


Seen = tuple[str, tuple[str, ...], bool, bool, bool, tuple[tuple[Decimal, Decimal], ...]]


def judged_through_the_shared_sequence(
    monkeypatch: pytest.MonkeyPatch, run: Callable[[], object]
) -> list[Seen]:
    """What `run` judged through consumer/judging/sequence.py, in order: per transaction, the rules
    that fired and what its history held (flags, and the earlier entries' time and amount)."""
    seen: list[Seen] = []
    real = judge_module.judge_transaction

    def spy(txn: Transaction, history: AccountHistory, *args: Any) -> Judged:
        judged = real(txn, history, *args)
        seen.append(
            (
                txn.transaction_id,
                tuple(r.rule for r in judged.verdict.decision.reasons),
                history.device_seen_before,
                history.has_earlier,
                history.country_seen_before,
                tuple((e.event_time, e.amount) for e in history.recent),
            )
        )
        return judged

    with monkeypatch.context() as patch:
        patch.setattr(judge_module, "judge_transaction", spy)
        run()
    return seen


@PROPERTY_SETTINGS
@given(records=streams(), seed=st.integers(0, 2**16))
def test_stream_and_backtest_judge_every_record_through_one_sequence_alike(
    redis_conn: redis.Redis, records: list[FakeRecord], seed: int
) -> None:
    """Both judge each valid, non-duplicate record once, through `judge_record`, in stream
    order, on the same history, to the same verdict: the pipeline over the Redis store's view,
    the backtest over ReplayHistory."""
    redis_conn.flushall()
    ruleset = country_ruleset()
    monkeypatch = pytest.MonkeyPatch()
    batches = split(records, random.Random(seed))
    stream = judged_through_the_shared_sequence(
        monkeypatch, lambda: stream_flags(redis_conn, records, batches, None, ruleset)
    )
    backtest = judged_through_the_shared_sequence(
        monkeypatch, lambda: backtest_flags([r.binary_data for r in records], ruleset=ruleset)
    )
    assert backtest == stream
    valid = {
        txn.transaction_id
        for txn in (parse_transaction(r.binary_data) for r in records)
        if isinstance(txn, Transaction)
    }
    assert sorted(seen[0] for seen in stream) == sorted(valid)  # once each; duplicates not
