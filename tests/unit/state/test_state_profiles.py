"""Long-horizon profiles in Redis (consumer/state/store.py, consumer/state/profiles.py) on a real
redis-server: every feature row equals the offline history's (consumer/backtest/history.py, the
reference), replays count nothing twice, shards add up, and the cluster path writes the same.

The data: the simulator's world (load_test/simulator.py: 150 customers, 300 terminals, 40 days),
its frauds fed back as labels known 7 days after each transaction, to both sides, each given only
the labels of transactions it already processed (as consumer/model/evaluate.py does).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache
from itertools import cycle
from typing import Any, cast

import pytest
import redis
from redis.cluster import RedisCluster

from consumer.backtest.history import ReplayHistory
from consumer.judging.sequence import Judged, judge_record
from consumer.judging.views import ScoringModel
from consumer.model.features import FEATURE_NAMES, MODEL_HORIZON_S, FeatureRow, features_for
from consumer.records import Position, Transaction, parse_transaction
from consumer.rules.history import AccountHistory
from consumer.rules.profile import MERCHANT_DAYS, LabelMark, day_of
from consumer.rules.ruleset import RuleSet
from consumer.settings.config import StateConfig
from consumer.state.profiles import merchant_labels_key
from consumer.state.store import AccountStateStore, SaveInFlight
from load_test.simulator import SimulatorConfig, records
from tests.support.redis_cluster import redis_cluster  # noqa: F401  (a fixture)
from tests.unit.state.test_state import CountingRedis, txn

DELAY_DAYS = 7
HORIZON = Decimal(MODEL_HORIZON_S)
CONFIG = StateConfig(merchant_labels_refresh_s=0)  # labels fed mid-run: read every batch
RULESET = RuleSet("profiles-test")
# Sequence numbers as Kinesis gives them (up to 56 digits), crossing from 55 to 56 digits mid-run:
# far beyond a Lua number's exactness, so positions must compare as decimal strings.
SEQUENCE_BASE = 10**55 - 6000
BATCH_SIZES = (1, 13, 200)

Row = tuple[Any, ...]


class RowModel:
    """Just the model's feature row (the ScoringModel part judge_record uses)."""

    model_version = "rows"

    def row(self, txn: Transaction, history: AccountHistory) -> FeatureRow:
        return features_for(txn, history, DELAY_DAYS)


MODEL = cast(ScoringModel, RowModel())


@lru_cache(maxsize=1)
def simulated() -> tuple[Transaction, ...]:
    """python -m load_test.simulator OUT --customers 150 --terminals 300 --days 40 --seed 3,
    parsed as the stream parses each record."""
    config = SimulatorConfig(customers=150, terminals=300, days=40, seed=3)
    parsed = []
    for record in records(config):
        one = parse_transaction(json.dumps(record).encode())
        assert isinstance(one, Transaction), one
        parsed.append(one)
    return tuple(parsed)


def batches(count: int, sizes: Sequence[int] = BATCH_SIZES) -> list[range]:
    """Record index ranges of mixed sizes covering 0 .. count - 1."""
    out: list[range] = []
    start = 0
    for size in cycle(sizes):
        if start >= count:
            return out
        out.append(range(start, min(count, start + size)))
        start += size
    raise AssertionError("unreachable")


def position(index: int) -> Position:
    return (SEQUENCE_BASE + index, 0)


def label(txn: Transaction) -> LabelMark | None:
    """The record's fraud as a label known DELAY_DAYS after it (evaluate.py's RecordLabels)."""
    if txn.raw.get("fraud") is not True or txn.merchant_id is None:
        return None
    known = float(txn.event_time) + DELAY_DAYS * 86400
    return LabelMark(day_of(txn.event_time), Decimal(repr(known)), True)


def comparable(row: FeatureRow | None) -> Row | None:
    """NaN equals NaN; everything else compares exactly."""
    if row is None:
        return None
    return tuple("NaN" if isinstance(v, float) and math.isnan(v) else v for v in row)


def judged_row(outcome: object) -> Row | None:
    """The feature row of a judged record; None for a duplicate."""
    if isinstance(outcome, Judged):
        assert outcome.row is not None, outcome.row_error
        return comparable(outcome.row)
    assert not hasattr(outcome, "error"), outcome  # NotJudged: a failure, not a duplicate
    return None


def reference_rows(txns: Sequence[Transaction], order: Sequence[Sequence[int]]) -> dict[int, Row]:
    """The offline history's rows, batch by batch in `order`, labels applied after each batch."""
    history = ReplayHistory(HORIZON, CONFIG, countries=True, profiles=True)
    rows: dict[int, Row] = {}
    for batch in order:
        for index in batch:
            row = judged_row(judge_record(history, txns[index], index, RULESET, MODEL))
            if row is not None:
                rows[index] = row
        for index in batch:
            mark = label(txns[index])
            if mark is not None:
                merchant_id = txns[index].merchant_id
                assert merchant_id is not None
                history.apply_label(txns[index].transaction_id, merchant_id, mark)
    return rows


def write_labels(client: redis.Redis, txns: Sequence[Transaction], batch: Sequence[int]) -> None:
    """What the labels' ingestion writes: the batch's frauds, to their merchants' labels."""
    for index in batch:
        mark = label(txns[index])
        if mark is not None:
            merchant_id = txns[index].merchant_id
            assert merchant_id is not None
            client.hset(merchant_labels_key(merchant_id), txns[index].transaction_id, mark.encode())


def run_batch(
    store: AccountStateStore, txns: Sequence[Transaction], batch: Sequence[int]
) -> dict[int, Row]:
    """One batch as the pipeline drives it: load, judge_record each record, save."""
    items = [(position(index), txns[index]) for index in batch]
    view = store.load(items)
    rows: dict[int, Row] = {}
    for index, (pos, one) in zip(batch, items, strict=True):
        row = judged_row(judge_record(view, one, pos, RULESET, MODEL))
        if row is not None:
            rows[index] = row
    store.save(view)
    return rows


def profile_state(client: redis.Redis) -> dict[bytes, dict[bytes, bytes]]:
    """Every day-totals hash, account and merchant."""
    keys = sorted(client.keys("fs:acct:*:days") + client.keys("fs:merch:*:days"))
    return {key: client.hgetall(key) for key in keys}


def make_store(
    client: Any, shard_id: str = "shardId-000000000007", *, cluster: bool | None = None
) -> AccountStateStore:
    """A store on `client`; `cluster` forces its cluster path (or not) on a single Redis."""
    store = AccountStateStore(client, CONFIG, HORIZON, shard_id)
    if cluster is not None:
        store._cluster = cluster  # the key layout is cluster-safe either way
    return store


def stream_rows(
    client: redis.Redis,
    txns: Sequence[Transaction],
    order: Sequence[Sequence[int]],
    *,
    cluster: bool | None = None,
    restart_every: int = 5,
) -> dict[int, Row]:
    """The store's rows; a new store (a new processor: nothing cached, everything from Redis)
    every `restart_every` batches, so what was saved is what the next batches read."""
    rows: dict[int, Row] = {}
    store = make_store(client, cluster=cluster)
    for number, batch in enumerate(order):
        if number % restart_every == 0:
            store = make_store(client, cluster=cluster)
        rows.update(run_batch(store, txns, batch))
        write_labels(client, txns, batch)
    return rows


def assert_same_rows(got: dict[int, Row], want: dict[int, Row]) -> None:
    assert got.keys() == want.keys()
    for index, row in want.items():
        assert got[index] == row, (index, _differences(got[index], row))


def _differences(got: Row, want: Row) -> dict[str, tuple[Any, Any]]:
    return {name: (g, w) for name, g, w in zip(FEATURE_NAMES, got, want, strict=True) if g != w}


def assert_profiles_matter(rows: dict[int, Row]) -> None:
    """The data exercise every part: account spend, merchant counts and known frauds."""
    names = list(FEATURE_NAMES)
    for feature in ("account_count_30d", "merchant_count_30d", "merchant_frauds_30d"):
        at = names.index(feature)
        assert sum(1 for row in rows.values() if row[at] not in (0.0, "NaN")) > 100, feature


@pytest.mark.parametrize("cluster", [False, True], ids=["single", "cluster-path"])
def test_every_feature_row_equals_the_offline_history_row_by_row(
    redis_conn: redis.Redis, cluster: bool
) -> None:
    txns = simulated()
    order = batches(len(txns))
    want = reference_rows(txns, order)
    assert_profiles_matter(want)
    got = stream_rows(redis_conn, txns, order, cluster=cluster)
    assert_same_rows(got, want)
    # Bounded: no account keeps more than ACCOUNT_DAYS days, no merchant more than its days.
    for key, fields in profile_state(redis_conn).items():
        days = {int(name.split(b":")[0]) for name in fields}
        assert max(days) - min(days) < MERCHANT_DAYS, key
        assert redis_conn.ttl(key) > 0, key


def test_on_a_real_redis_cluster_the_rows_equal_the_offline_history_and_replay_exactly(
    redis_cluster: RedisCluster,  # noqa: F811  (the fixture)
) -> None:
    """Three masters: every script call and command of the store must stay in one slot (a
    cross-slot one fails), and the rows are still the reference's, replay included."""
    redis_cluster.flushall(target_nodes=RedisCluster.PRIMARIES)
    txns = simulated()[:4000]
    order = batches(len(txns))
    want = reference_rows(txns, order)
    client = cast(redis.Redis, redis_cluster)
    assert make_store(client)._cluster
    assert_same_rows(stream_rows(client, txns, order), want)
    # The keys are spread over the masters: the test crossed slots and nodes.
    holding = [
        node for node in redis_cluster.get_primaries() if redis_cluster.dbsize(target_nodes=node)
    ]
    assert len(holding) == 3
    saved = profile_state(client)
    replayed = [i for batch in order[-3:] for i in batch]
    rows: dict[int, Row] = {}
    replayer = make_store(client)
    for batch in batches(len(replayed), (7, 50)):
        rows.update(run_batch(replayer, txns, [replayed[i] for i in batch]))
    assert_same_rows(rows, {i: want[i] for i in replayed if i in want})
    assert profile_state(client) == saved


def test_a_replay_gives_the_same_rows_and_counts_nothing_twice(redis_conn: redis.Redis) -> None:
    txns = simulated()
    order = batches(len(txns))
    want = reference_rows(txns, order)
    store = make_store(redis_conn)
    for batch in order:
        run_batch(store, txns, batch)
        write_labels(redis_conn, txns, batch)
    saved = profile_state(redis_conn)
    # A crash before the checkpoint: records since then come again, in another batch shape. To
    # a new processor (nothing cached: everything from Redis): the last two days' records, so
    # yesterday's are replayed after the accounts' records of today (across midnight). To the
    # same processor, its cache warm: the last batch.
    last_day = day_of(txns[-1].event_time)
    since = next(i for i, t in enumerate(txns) if day_of(t.event_time) >= last_day - 1)
    for replayer, replayed in (
        (make_store(redis_conn), list(range(since, len(txns)))),
        (store, list(order[-1])),
    ):
        rows: dict[int, Row] = {}
        for batch in batches(len(replayed), (7, 50)):
            rows.update(run_batch(replayer, txns, [replayed[i] for i in batch]))
        assert_same_rows(rows, {i: want[i] for i in replayed if i in want})
        assert profile_state(redis_conn) == saved


def test_without_saved_account_totals_the_rows_differ(
    redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The equality above can fail: a store whose account day totals do not survive in Redis
    (here: a load reads none back) gives other rows once a new processor must read them."""
    txns = simulated()[:3000]
    order = batches(len(txns))
    want = reference_rows(txns, order)
    monkeypatch.setattr("consumer.state.store._decode_days", lambda flat: {})
    got = stream_rows(redis_conn, txns, order)
    assert any(got[i] != want[i] for i in want)


def test_two_shards_add_up_at_the_merchants_and_a_replay_changes_nothing(
    redis_conn: redis.Redis,
) -> None:
    txns = simulated()
    # Accounts split between two shards; both see the same merchants. Batches alternate, each
    # shard's in its own stream order, positions (sequence numbers) per shard.
    shard_of = {i: int(t.account_id.rsplit("-", 1)[1]) % 2 for i, t in enumerate(txns)}
    per_shard = [[i for i in range(len(txns)) if shard_of[i] == s] for s in (0, 1)]
    shard_batches = [
        [[per_shard[s][j] for j in batch] for batch in batches(len(per_shard[s]), (13, 101))]
        for s in (0, 1)
    ]
    interleaved = [
        (s, batch) for pair in zip(*shard_batches, strict=False) for s, batch in enumerate(pair)
    ]
    assert len(interleaved) >= 100
    stores = [make_store(redis_conn, f"shardId-00000000000{s}") for s in (0, 1)]
    got: dict[int, Row] = {}
    for s, batch in interleaved:
        got.update(run_batch(stores[s], txns, batch))
        write_labels(redis_conn, txns, batch)
    done = [i for _, batch in interleaved for i in batch]
    # The rows equal the offline history's over the same interleaving (the merchant windows
    # end DELAY_DAYS back: both shards' counts are in by then).
    assert_same_rows(got, reference_rows(txns, [batch for _, batch in interleaved]))
    # Redis holds, per merchant and day, every transaction once, over the two shards' fields.
    expected = Counter((txns[i].merchant_id, day_of(txns[i].event_time)) for i in done)
    newest = max(day for _, day in expected)
    counted: Counter[tuple[str | None, int]] = Counter()
    shards_seen = set()
    for key, fields in profile_state(redis_conn).items():
        if key.startswith(b"fs:merch:"):
            merchant = key.decode().split("{")[1].split("}")[0]
            for name, value in fields.items():
                day, shard = name.decode().split(":", 1)
                shards_seen.add(shard)
                counted[(merchant, int(day))] += int(value.split(b"|")[0])
    assert shards_seen == {"shardId-000000000000", "shardId-000000000001"}
    recent = {k: n for k, n in expected.items() if k[1] > newest - MERCHANT_DAYS}
    assert {k: n for k, n in counted.items() if k[1] > newest - MERCHANT_DAYS} == recent
    # What a batch reads is the sum over shards.
    probe = next(i for i in reversed(done) if shard_of[i] == 0)
    merchant_id = txns[probe].merchant_id
    view = make_store(redis_conn, "shardId-000000000000").load([(position(probe), txns[probe])])
    profile = view.history(txns[probe], position(probe)).profile
    assert profile is not None
    assert dict(profile.merchant_days) == {
        day: n for (m, day), n in recent.items() if m == merchant_id
    }
    # A replay on one shard (its last batches again) changes no count.
    saved = profile_state(redis_conn)
    for s, batch in interleaved[-20:]:
        if s == 1:
            run_batch(make_store(redis_conn, "shardId-000000000001"), txns, batch)
    assert profile_state(redis_conn) == saved


def test_a_save_landing_late_or_twice_never_lowers_a_merchant_count(
    redis_conn: redis.Redis,
) -> None:
    """The save script keeps the greater position per field (sequence numbers crossing from 55
    to 56 digits here), and a load while the previous save is in flight counts on from it."""
    store = make_store(redis_conn)
    one = [(position(n), txn(f"t{n}", account="a", merchant_id="m")) for n in range(5990, 6010)]
    first = store.load(one[:10])
    for pos, t in one[:10]:
        first.add(t, pos)
    early = store.prepare_save(first)
    second = store.load(one[10:], SaveInFlight(early, lambda: None))  # not written yet
    for pos, t in one[10:]:
        second.add(t, pos)
    late = store.prepare_save(second)
    assert store.write(early) and store.write(late)  # in order: the later one replaces
    fields = redis_conn.hgetall("fs:merch:{m}:days")
    store.write(early)  # the earlier one again, landing late (a retry): an older position
    assert redis_conn.hgetall("fs:merch:{m}:days") == fields
    (value,) = fields.values()
    assert value == f"20|{SEQUENCE_BASE + 6009}.0".encode()


def test_records_without_a_merchant_have_no_merchant_profile(redis_conn: redis.Redis) -> None:
    store = make_store(redis_conn)
    items = [((n, 0), txn(f"t{n}", account="a", ts_ms=1_795_500_000_000 + n)) for n in (1, 2)]
    view = store.load(items)
    for pos, t in items:
        profile = view.history(t, pos).profile
        assert profile is not None and not profile.merchant_days
        assert not list(profile.merchant_labels)
        view.add(t, pos)
    store.save(view)
    assert not redis_conn.keys("fs:merch:*")
    assert redis_conn.hlen("fs:acct:{a}:days") == 1


def test_a_batch_with_merchants_still_costs_two_round_trips(redis_conn: redis.Redis) -> None:
    counting = CountingRedis(redis_conn)
    store = AccountStateStore(counting, CONFIG, HORIZON)
    store.save(store.load([((1, 0), txn("t-first", account="other"))]))  # scripts now known
    for size in (1, 40, 400):
        counting.round_trips = 0
        items = [
            ((1000 * size + n, 0), txn(f"s{size}-{n}", account=f"a{n % 7}", merchant_id=f"m{n}"))
            for n in range(size)
        ]
        view = store.load(items)
        for pos, t in items:
            view.add(t, pos)
        assert store.save(view) == 1  # one script call: accounts, merchants, transaction ids
        assert counting.round_trips == 2
    # On a cluster: one call per account and per merchant, still one round trip each way.
    store._cluster = True
    counting.round_trips = 0
    items = [
        ((10**6 + n, 0), txn(f"c{n}", account=f"a{n % 3}", merchant_id=f"m{n % 4}"))
        for n in range(12)
    ]
    view = store.load(items)
    for pos, t in items:
        view.add(t, pos)
    assert store.save(view) == 3 + 4 + 12
    assert counting.round_trips == 2
