"""The state store's merchant cache and `StateConfig.profiles` off (consumer/state/store.py,
consumer/state/profiles.py; docs/profiles.md), on a real redis-server, over the simulator data of
test_state_profiles: a warm store that reuses merchants gives the offline history's rows, a label
shows after the refresh interval and not before, a batch reading days the cache cannot answer
reloads, two shards still add up, and with profiles off nothing of them is read or written."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import redis

from consumer.rules.profile import LabelMark
from consumer.settings.config import StateConfig
from consumer.state.profiles import merchant_days_key, merchant_labels_key
from consumer.state.store import AccountStateStore
from tests.unit.state.test_state import CountingRedis, txn
from tests.unit.state.test_state_profiles import (
    CONFIG,
    DELAY_DAYS,
    HORIZON,
    Row,
    assert_profiles_matter,
    assert_same_rows,
    batches,
    profile_state,
    reference_rows,
    run_batch,
    simulated,
    write_labels,
)

DAY = 86_400


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Tally:
    """How many of the batches' merchants the store loaded whole, and how many it reused."""

    def __init__(self, store: AccountStateStore) -> None:
        self.loaded = self.reused = 0
        original = store._cached_merchants

        def counted(*args: Any) -> Any:
            hits, to_load, labels_due, trusted = original(*args)
            self.loaded += len(to_load)
            self.reused += len(hits)
            return hits, to_load, labels_due, trusted

        store._cached_merchants = counted  # type: ignore[method-assign,assignment]


def warm_store(
    client: Any, shard_id: str = "shardId-000000000007", config: StateConfig = CONFIG
) -> AccountStateStore:
    """One processor all along (its caches warm), reading merchants DELAY_DAYS back."""
    return AccountStateStore(client, config, HORIZON, shard_id, lambda: DELAY_DAYS)


def test_a_warm_store_reusing_merchants_gives_the_offline_history_rows(
    redis_conn: redis.Redis,
) -> None:
    txns = simulated()
    order = batches(len(txns))
    want = reference_rows(txns, order)
    assert_profiles_matter(want)
    store = warm_store(redis_conn)
    tally = Tally(store)
    got: dict[int, Row] = {}
    for batch in order:
        got.update(run_batch(store, txns, batch))
        write_labels(redis_conn, txns, batch)
    assert_same_rows(got, want)
    # The cache did the work: most of the batches' merchants came from memory.
    assert tally.reused > 2 * tally.loaded > 0, (tally.reused, tally.loaded)


def test_trusting_days_the_cache_cannot_answer_gives_other_rows(
    redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The equality above can fail: a store that trusts a merchant's days up to a week after
    its load (other shards' and this shard's later counts of them unread) differs. Two shards,
    so that the counts this shard does not write itself matter."""
    monkeypatch.setattr("consumer.state.store.MERCHANT_SETTLE_DAYS", -8)
    txns = simulated()[:6000]
    interleaved = two_shard_batches(len(txns))
    want = reference_rows(txns, [batch for _, batch in interleaved])
    stores = [warm_store(redis_conn, f"shardId-00000000000{s}") for s in (0, 1)]
    got: dict[int, Row] = {}
    for s, batch in interleaved:
        got.update(run_batch(stores[s], txns, batch))
        write_labels(redis_conn, txns, batch)
    assert any(got[i] != want[i] for i in want)


def two_shard_batches(count: int) -> list[tuple[int, list[int]]]:
    """Accounts split between two shards (as test_state_profiles), batches interleaved."""
    txns = simulated()[:count]
    shard_of = {i: int(t.account_id.rsplit("-", 1)[1]) % 2 for i, t in enumerate(txns)}
    per_shard = [[i for i in range(len(txns)) if shard_of[i] == s] for s in (0, 1)]
    shard_batches = [
        [[per_shard[s][j] for j in batch] for batch in batches(len(per_shard[s]), (13, 101))]
        for s in (0, 1)
    ]
    # In time: each shard's batches in turn by their first record's time, as shards that keep
    # up with the stream take them (test_state_profiles alternates them by count instead: there
    # a shard drifts up to 4 days ahead of the other, beyond MERCHANT_SETTLE_DAYS).
    merged = [(s, batch) for s in (0, 1) for batch in shard_batches[s]]
    return sorted(merged, key=lambda pair: (txns[pair[1][0]].event_time, pair[0]))


def test_two_warm_shards_add_up_and_a_replay_changes_nothing(redis_conn: redis.Redis) -> None:
    txns = simulated()
    interleaved = two_shard_batches(len(txns))
    stores = [warm_store(redis_conn, f"shardId-00000000000{s}") for s in (0, 1)]
    tallies = [Tally(store) for store in stores]
    got: dict[int, Row] = {}
    for s, batch in interleaved:
        got.update(run_batch(stores[s], txns, batch))
        write_labels(redis_conn, txns, batch)
    assert_same_rows(got, reference_rows(txns, [batch for _, batch in interleaved]))
    assert all(t.reused > t.loaded for t in tallies)
    saved = profile_state(redis_conn)
    for s, batch in interleaved[-2:]:  # the same warm processors replay their last batch
        run_batch(stores[s], txns, batch)
    assert profile_state(redis_conn) == saved


def _record(n: int, day: int, merchant: str = "m") -> tuple[tuple[int, int], Any]:
    return (n, 0), txn(
        f"t{n}", account="a", ts_ms=(day * DAY + 3600 + n) * 1000, merchant_id=merchant
    )


def test_a_label_shows_after_the_refresh_interval_and_not_before(redis_conn: redis.Redis) -> None:
    clock = FakeClock()
    counting = CountingRedis(redis_conn)
    config = StateConfig(merchant_labels_refresh_s=60)
    store = AccountStateStore(counting, config, HORIZON, "shardId-000000000007", 7, clock)
    store.save(store.load([((0, 0), txn("prime", account="other"))]))  # scripts now known
    day = 20_000

    def labels_seen(n: int) -> list[LabelMark]:
        pos, one = _record(n, day)
        counting.round_trips = 0
        view = store.load([(pos, one)])
        profile = view.history(one, pos).profile
        view.add(one, pos)
        store.save(view)
        assert counting.round_trips == 2  # a labels-only read rides the same load call
        assert profile is not None
        return list(profile.merchant_labels)

    assert labels_seen(1) == []
    cached = store._merchants["m"]
    mark = LabelMark(day - 8, Decimal((day - 1) * DAY), True)
    redis_conn.hset(merchant_labels_key("m"), "old-fraud", mark.encode())
    clock.now += 59
    assert labels_seen(2) == []  # within the interval: the cached labels
    clock.now += 1
    assert labels_seen(3) == [mark]  # the interval passed: read again
    assert store._merchants["m"] is cached  # the labels alone: the days still held
    # A store reading labels at every batch sees it at once.
    every = AccountStateStore(
        redis_conn, StateConfig(merchant_labels_refresh_s=0), HORIZON, "shardId-9", 7, clock
    )
    pos, one = _record(4, day)
    profile = every.load([(pos, one)]).history(one, pos).profile
    assert profile is not None and list(profile.merchant_labels) == [mark]


def test_a_batch_reading_days_the_cache_cannot_answer_reloads(redis_conn: redis.Redis) -> None:
    store = AccountStateStore(redis_conn, CONFIG, HORIZON, "shardId-000000000007", 7)
    day = 20_000

    def merchant_days(n: int, at_day: int) -> dict[int, int]:
        pos, one = _record(n, at_day)
        view = store.load([(pos, one)])
        profile = view.history(one, pos).profile
        view.add(one, pos)
        store.save(view)
        assert profile is not None
        return dict(profile.merchant_days)

    merchant_days(1, day)  # loaded at `day`: trusted before day - 1 (MERCHANT_SETTLE_DAYS)
    # A count of day - 2 written after that load (a shard lagging more than the settle margin).
    redis_conn.hset(merchant_days_key("m"), f"{day - 2}:shardId-000000000001", "5|77.0")
    # Reads up to day + 5 - 7 = day - 2: answered by the cache (without that count).
    assert merchant_days(2, day + 5).get(day - 2, 0) == 0
    # Reads up to day - 1, not trusted: reloaded, the other shard's count is in, and this
    # shard's own counts (day, day + 5) are there too.
    got = merchant_days(3, day + 6)
    assert got[day - 2] == 5
    assert got[day] == 1 and got[day + 5] == 1 and got[day + 6] == 1


def test_with_profiles_off_nothing_of_them_is_read_or_written(redis_conn: redis.Redis) -> None:
    txns = simulated()[:2000]
    counting = CountingRedis(redis_conn)
    store = AccountStateStore(counting, StateConfig(profiles=False), HORIZON, "shard-x", 7)
    store.save(store.load([((0, 0), txn("prime", account="other"))]))  # scripts now known
    for batch in batches(len(txns)):
        items = [((10**6 + i, 0), txns[i]) for i in batch]
        counting.round_trips = 0
        view = store.load(items)
        for pos, one in items:
            if not view.is_duplicate(one, pos):
                assert view.history(one, pos).profile is None
                view.add(one, pos)
        store.save(view)
        assert counting.round_trips == 2
    assert redis_conn.keys("fs:acct:*:recent")  # the accounts were written
    assert not redis_conn.keys("fs:acct:*:days")
    assert not redis_conn.keys("fs:merch:*")
    assert store.cached_merchants == 0
    # A days key left by a run with profiles on is not read, nor touched.
    redis_conn.hset("fs:acct:{x}:days", "1", "1|2|4")
    pos, one = (10**7, 0), txn("late", account="x", ts_ms=1_795_500_000_000, merchant_id="m")
    view = store.load([(pos, one)])
    assert view.accounts["x"].days == {}
    view.add(one, pos)
    store.save(view)
    assert redis_conn.hgetall("fs:acct:{x}:days") == {b"1": b"1|2|4"}
    assert redis_conn.ttl("fs:acct:{x}:days") == -1
