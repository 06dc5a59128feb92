"""Redis account state on a real redis-server: replay, duplicates, keys, TTLs, round trips."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from consumer.infra.metrics import METRICS
from consumer.records import Position, Transaction, parse_transaction
from consumer.rules.history import AccountHistory
from consumer.rules.profile import ACCOUNT_DAYS, DAY_S
from consumer.settings.config import StateConfig
from consumer.state.store import AccountStateStore

T0 = 1_795_500_000_000
HORIZON = Decimal("80064")  # the order of the travel reach at the default 900 km/h
CONFIG = StateConfig(lateness_s=3600, dedup_ttl_s=86400, memory_ttl_s=7776000, max_entries=50)


def txn(
    tid: str, account: str = "acct-{1}", ts_ms: int = 1_795_500_000_000, **extra: Any
) -> Transaction:
    fields = "".join(f', "{k}": {v!r}'.replace("'", '"') for k, v in extra.items())
    parsed = parse_transaction(
        f'{{"transaction_id": "{tid}", "account_id": "{account}", "amount": 10, '
        f'"timestamp": {ts_ms}{fields}}}'.encode()
    )
    assert isinstance(parsed, Transaction), parsed
    return parsed


class CountingRedis:
    """Counts pipeline round trips to the real server."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.round_trips = 0

    def script_load(self, script: str) -> Any:
        self.round_trips += 1
        return self.client.script_load(script)

    def pipeline(self, transaction: bool = False) -> Any:
        pipe = self.client.pipeline(transaction=transaction)
        real_execute = pipe.execute

        def execute() -> Any:
            self.round_trips += 1
            return real_execute()

        pipe.execute = execute
        return pipe


def judge_batch(
    store: AccountStateStore,
    items: list[tuple[Position, Transaction]],
    describe: Callable[[AccountHistory], str],
) -> list[str]:
    """A minimal batch: "dup" for a duplicate, else what `describe` says of its history; then
    save."""
    view = store.load(items)
    out = []
    for position, t in items:
        if view.is_duplicate(t, position):
            out.append("dup")
            continue
        out.append(describe(view.history(t, position)))
        view.add(t, position)
    store.save(view)
    return out


def judge_all(store: AccountStateStore, items: list[tuple[Position, Transaction]]) -> list[str]:
    """History sizes: entries seen, has_earlier, device_seen_before."""

    def sizes(history: AccountHistory) -> str:
        return f"{len(history.recent)}:{int(history.has_earlier)}:{int(history.device_seen_before)}"

    return judge_batch(store, items, sizes)


def judge_countries(
    store: AccountStateStore, items: list[tuple[Position, Transaction]]
) -> list[str]:
    """What the country features read: the countries of the visible entries and
    country_seen_before."""

    def countries(history: AccountHistory) -> str:
        seen = ",".join(str(entry.country) for entry in history.recent)
        return f"{seen}:{int(history.country_seen_before)}"

    return judge_batch(store, items, countries)


def test_a_batch_costs_two_round_trips_whatever_its_size(redis_conn: redis.Redis) -> None:
    counting = CountingRedis(redis_conn)
    store = AccountStateStore(counting, CONFIG, HORIZON)
    store.save(store.load([((1, 0), txn("t-first", account="other"))]))  # scripts now known
    counting.round_trips = 0
    items = [
        (
            (100 + n, 0),
            txn(f"t{n}", account=f"a{n % 7}", device_id="d", destination_country=f"C{n % 3}"),
        )
        for n in range(200)
    ]
    view = store.load(items)
    for position, t in items:
        assert not view.is_duplicate(t, position)
        view.add(t, position)
    # On a single Redis the whole batch is saved by one script call.
    assert store.save(view) == 1
    assert counting.round_trips == 2
    # A batch of nothing but duplicates writes nothing.
    again = [((1000 + n, 0), t) for n, (_, t) in enumerate(items)]
    view = store.load(again)
    assert all(view.is_duplicate(t, p) for p, t in again)
    assert store.save(view) == 0


def test_scripts_redis_forgot_are_loaded_again_at_the_cost_of_one_retry(
    redis_conn: redis.Redis,
) -> None:
    """Scripts go by EVALSHA alone; after a restart or failover (SCRIPT FLUSH here) the first
    round trip fails with NOSCRIPT, both scripts are loaded and the round trip is repeated."""
    redis_conn.script_flush()
    counting = CountingRedis(redis_conn)
    store = AccountStateStore(counting, CONFIG, HORIZON)
    assert judge_all(store, [((1, 0), txn("t1", device_id="dev"))]) == ["0:0:0"]
    # First use: NOSCRIPT, two loads, the load again; the save finds its script loaded.
    assert counting.round_trips == 5
    redis_conn.script_flush()
    counting.round_trips = 0
    assert judge_all(store, [((2, 0), txn("t2", device_id="dev"))]) == ["1:1:1"]
    assert counting.round_trips == 5
    counting.round_trips = 0
    assert judge_all(store, [((3, 0), txn("t3", device_id="dev"))]) == ["2:1:1"]
    assert counting.round_trips == 2


def test_history_hides_what_came_later_in_the_stream_on_replay(redis_conn: redis.Redis) -> None:
    store = AccountStateStore(redis_conn, CONFIG, HORIZON)
    items = [((n, 0), txn(f"t{n}", device_id="dev")) for n in (1, 2, 3)]
    first = judge_all(store, items)
    assert first == ["0:0:0", "1:1:1", "2:1:1"]
    # A crash after saving: records 2 and 3 come again, in another batch shape.
    assert judge_all(store, items[1:2]) + judge_all(store, items[2:]) == first[1:]


def test_duplicates_are_other_positions_of_a_seen_transaction_id(redis_conn: redis.Redis) -> None:
    store = AccountStateStore(redis_conn, CONFIG, HORIZON)
    original, retry = txn("same"), txn("same", account="someone-else")
    assert judge_all(store, [((1, 0), original), ((2, 0), retry)]) == ["0:0:0", "dup"]
    assert judge_all(store, [((3, 0), retry)]) == ["dup"]  # across batches
    assert judge_all(store, [((1, 0), original)]) == ["0:0:0"]  # a replay is judged again
    # The duplicate added nothing to the account's history.
    assert judge_all(store, [((4, 0), txn("next"))]) == ["1:1:0"]


def test_every_key_of_an_account_shares_a_slot_and_has_a_ttl(redis_conn: redis.Redis) -> None:
    store = AccountStateStore(redis_conn, CONFIG, HORIZON)
    account = "acct:{odd}"
    judge_all(
        store, [((1, 0), txn("t1", account=account, device_id="d1", destination_country="FR"))]
    )
    keys = [k.decode() for k in redis_conn.keys("fs:acct:*")]
    assert len(keys) == 5
    assert len({key_slot(k.encode()) for k in keys}) == 1
    keep = int(HORIZON) + CONFIG.lateness_s + 1
    slack = min(keep, CONFIG.memory_ttl_s) // 8 + 1  # expiries are set again at most this often
    days_ttl = (ACCOUNT_DAYS + 1) * DAY_S  # day totals: read 30 days back, kept one more
    for key in redis_conn.keys("fs:acct:*"):
        ttl = redis_conn.ttl(key)
        if key.endswith(b":recent"):
            assert keep - 5 <= ttl <= keep + slack, key
        elif key.endswith(b":days"):
            assert days_ttl - 5 <= ttl <= days_ttl + slack + 1, key
        else:
            assert CONFIG.memory_ttl_s - 5 <= ttl <= CONFIG.memory_ttl_s + slack, key
    assert 0 < redis_conn.ttl(b"fs:txn:{t1}") <= CONFIG.dedup_ttl_s


def test_a_far_future_record_does_not_wipe_history_a_replay_needs(redis_conn: redis.Redis) -> None:
    store = AccountStateStore(redis_conn, CONFIG, HORIZON)
    base = 1_795_500_000_000
    items = [((n, 0), txn(f"t{n}", ts_ms=base + n * 1000)) for n in (1, 2, 3)]
    future = ((4, 0), txn("future", ts_ms=base + 10 * 86_400_000))
    first = judge_all(store, [*items, future])
    # Crash before the checkpoint: everything comes again and sees what it saw.
    assert judge_all(store, [*items, future]) == first == ["0:0:0", "1:1:0", "2:1:0", "3:1:0"]


def test_loads_read_only_the_horizon_and_the_set_is_capped(redis_conn: redis.Redis) -> None:
    store = AccountStateStore(redis_conn, dataclasses.replace(CONFIG, cache_accounts=0), HORIZON)
    base = 1_795_500_000_000
    keep_ms = (int(HORIZON) + CONFIG.lateness_s) * 1000
    old = ((1, 0), txn("old", ts_ms=base))
    new = ((2, 0), txn("new", ts_ms=base + keep_ms + 2000))
    # The old entry is beyond the horizon of the new one: not loaded, though still stored.
    assert judge_all(store, [old]) + judge_all(store, [new]) == ["0:0:0", "0:1:0"]
    many = [((10 + n, 0), txn(f"m{n}", ts_ms=base + keep_ms + 3000 + n)) for n in range(80)]
    judge_all(store, many)
    assert redis_conn.zcard("fs:acct:{acct-{1}}:recent") == CONFIG.max_entries


def test_the_cluster_path_writes_the_same_state_as_the_single_redis_path(
    redis_conn: redis.Redis,
) -> None:
    """Cluster mode: one script call per account and one command per transaction id."""
    items = [
        (
            (n, 0),
            txn(
                f"t{n % 9}",
                account=f"a{n % 4}",
                device_id=f"d{n % 3}",
                destination_country=["FR", "DE", "ES"][n % 3],
            ),
        )
        for n in range(30)
    ]

    def run(cluster: bool) -> tuple[list[str], dict[bytes, bytes | None]]:
        redis_conn.flushall()
        store = AccountStateStore(redis_conn, CONFIG, HORIZON)
        store._cluster = cluster  # the key layout is cluster-safe either way
        decided = judge_countries(store, items[:12]) + judge_countries(store, items[12:])
        state = {key: redis_conn.dump(key) for key in sorted(redis_conn.keys("*"))}
        return decided, state

    decided, state = run(cluster=True)
    assert (decided, state) == run(cluster=False)
    assert len(state) == 9 + 4 * 5  # transaction ids, and five keys per account


def test_cached_accounts_skip_the_load_and_decide_as_redis_would(redis_conn: redis.Redis) -> None:
    def run(cache: int) -> tuple[list[str], int]:
        redis_conn.flushall()
        counting = CountingRedis(redis_conn)
        store = AccountStateStore(
            counting, dataclasses.replace(CONFIG, cache_accounts=cache), HORIZON
        )
        before = redis_conn.info("commandstats").get("cmdstat_zrangebyscore", {}).get("calls", 0)
        decided = []
        for n in range(6):  # six batches of the same two accounts, one new device midway
            device = "d2" if n == 3 else "d1"
            items = [
                ((10 * n + k, 0), txn(f"t{n}-{k}", account=f"a{k}", device_id=device))
                for k in (1, 2)
            ]
            decided += judge_all(store, items)
        after = redis_conn.info("commandstats").get("cmdstat_zrangebyscore", {}).get("calls", 0)
        return decided, after - before

    cached, cached_loads = run(cache=100)
    uncached, uncached_loads = run(cache=0)
    assert cached == uncached
    assert uncached_loads == 12  # every batch loads both accounts
    assert cached_loads == 4  # first batch, and the batch with an unseen device


def test_the_cache_holds_at_most_its_entry_budget_and_decides_as_redis_would(
    redis_conn: redis.Redis,
) -> None:
    """Memory is bounded by entries, not only accounts: busy accounts push the least recently
    used out, which reload from Redis and decide exactly as without the cache."""

    def run(config: StateConfig) -> tuple[list[str], AccountStateStore, list[int]]:
        redis_conn.flushall()
        store = AccountStateStore(redis_conn, config, HORIZON)
        decided: list[str] = []
        totals: list[int] = []
        for n in range(8):  # account a0 every batch, then a1..a3 in turn; 3 records each
            accounts = ["a0", f"a{1 + n % 3}"]
            items = [
                ((100 * n + 10 * i + k, 0), txn(f"t{n}-{i}-{k}", account=acct, ts_ms=T0 + n))
                for i, acct in enumerate(accounts)
                for k in range(3)
            ]
            decided += judge_all(store, items)
            totals.append(store.cached_entries)
            assert store.cached_entries == sum(len(a.recent) for a in store._cache.values())
        return decided, store, totals

    budget = 12
    METRICS.snapshot_and_reset()
    small, store, totals = run(dataclasses.replace(CONFIG, cache_entries=budget))
    assert METRICS.snapshot_and_reset()["state.cache_evicted"] >= 8  # a0, at every batch
    uncached, _, _ = run(dataclasses.replace(CONFIG, cache_accounts=0))
    assert small == uncached
    assert max(totals) <= budget
    assert "a0" not in store._cache  # its 24 entries alone exceed the budget: never kept
    assert store.cached_accounts >= 1  # the quieter accounts still are
    big, store, totals = run(dataclasses.replace(CONFIG, cache_entries=10_000))
    assert big == uncached
    assert totals[-1] == 24 + 9 + 9 + 6  # everything stays within a larger budget


def test_a_zero_entry_budget_turns_the_cache_off(redis_conn: redis.Redis) -> None:
    store = AccountStateStore(redis_conn, dataclasses.replace(CONFIG, cache_entries=0), HORIZON)
    judge_all(store, [((1, 0), txn("t1"))])
    assert store.cached_accounts == 0 and store.cached_entries == 0


def test_countries_are_kept_with_positions_and_replay_identically(redis_conn: redis.Redis) -> None:
    store = AccountStateStore(redis_conn, dataclasses.replace(CONFIG, cache_accounts=0), HORIZON)
    countries = ["FR", None, "FR", "DE", "a|b", "", "DE"]  # any string, even "|" or empty
    items = [
        ((n, 0), txn(f"t{n}", ts_ms=1_795_500_000_000 + n * 1000, destination_country=c))
        if c is not None
        else ((n, 0), txn(f"t{n}", ts_ms=1_795_500_000_000 + n * 1000))
        for n, c in enumerate(countries, start=1)
    ]
    first = judge_countries(store, items[:3]) + judge_countries(store, items[3:])
    assert first == [
        ":0",
        "FR:0",
        "FR,None:1",
        "FR,None,FR:0",
        "FR,None,FR,DE:0",
        "FR,None,FR,DE,A|B:0",
        "FR,None,FR,DE,A|B,:1",
    ]
    stored = redis_conn.hgetall("fs:acct:{acct-{1}}:countries")
    assert stored == {b"FR": b"1.0", b"DE": b"4.0", b"A|B": b"5.0", b"": b"6.0"}
    # A crash after a partial batch was saved: the records from the third come again, in other
    # batch shapes, and see exactly what they saw.
    assert judge_countries(store, items[2:5]) + judge_countries(store, items[5:]) == first[2:]
    assert judge_countries(store, items[2:]) == first[2:]
    assert redis_conn.zcard("fs:acct:{acct-{1}}:recent") == len(items)
    # The cache answers as Redis does (a country not checked yet goes to Redis).
    cached = AccountStateStore(redis_conn, CONFIG, HORIZON)
    assert [judge_countries(cached, [item]) for item in items[4:]] == [[x] for x in first[4:]]
    assert judge_countries(cached, items[2:]) == first[2:]


def test_members_written_before_countries_were_stored_read_as_country_unknown(
    redis_conn: redis.Redis,
) -> None:
    # What the previous version wrote: five-field members, no countries hash.
    redis_conn.zadd(
        "fs:acct:{acct-{1}}:recent",
        {"1.0|1795500000|10|48.85|2.35": 1795500000, "2.0|1795500001|10||": 1795500001},
    )
    redis_conn.hset("fs:acct:{acct-{1}}:devices", "d1", "1.0")
    redis_conn.set("fs:acct:{acct-{1}}:first", "1.0")
    store = AccountStateStore(redis_conn, dataclasses.replace(CONFIG, cache_accounts=0), HORIZON)
    later = ((3, 0), txn("t3", ts_ms=1_795_500_002_000, device_id="d1", destination_country="FR"))
    view = store.load([later])
    history = view.history(later[1], later[0])
    assert [(e.country, e.latitude) for e in history.recent] == [(None, 48.85), (None, None)]
    assert history.has_earlier and history.device_seen_before and not history.country_seen_before
    view.add(later[1], later[0])
    store.save(view)
    # A replay of record 2 by this version (it had a country) keeps one entry for it.
    replayed = ((2, 0), txn("t2", ts_ms=1_795_500_001_000, destination_country="FR"))
    assert judge_countries(store, [replayed, later]) == ["None:0", "None,None:1"]
    assert redis_conn.zcard("fs:acct:{acct-{1}}:recent") == 3
    # Both forms of one record in Redis (each version stored it once): read once, with country.
    redis_conn.zadd("fs:acct:{acct-{1}}:recent", {"2.0|1795500001|10|||FR": 1795500001})
    assert judge_countries(store, [later])[0].split(":")[0] == "None,FR"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(
        st.lists(st.tuples(st.sampled_from(["a1", "a2"]), st.integers(-3, 40)), max_size=6),
        min_size=1,
        max_size=5,
    ),
    replay=st.booleans(),
    cache=st.sampled_from([0, 100]),
)
def test_a_history_said_to_be_in_time_order_is(
    redis_conn: redis.Redis,
    batches: list[list[tuple[str, int]]],
    replay: bool,
    cache: int,
) -> None:
    """AccountHistory.ascending lets the rules stop early: it must never be set on a history
    out of (event_time, position) order (late records, replays, pruning, the cache), and it
    must be set for in-order traffic, or the early stop silently never happens."""
    redis_conn.flushall()
    store = AccountStateStore(
        redis_conn, dataclasses.replace(CONFIG, cache_accounts=cache), HORIZON
    )
    clock = {"a1": 0, "a2": 0}
    in_order = all(offset >= 0 for batch in batches for _, offset in batch)

    def check(history: AccountHistory) -> str:
        keys = [(e.event_time, e.position) for e in history.recent]
        if history.ascending:
            assert keys == sorted(keys)
        elif in_order and history.recent:
            raise AssertionError("in-order traffic, yet not marked in order")
        return "ok"

    position = 0
    sent: list[list[tuple[Position, Transaction]]] = []
    for batch in batches:
        items = []
        for account, offset in batch:
            position += 1
            clock[account] += offset  # a negative offset: a late record
            items.append(
                (
                    (position, 0),
                    txn(f"t{position}", account=account, ts_ms=T0 + 1000 * clock[account]),
                )
            )
        sent.append(items)
        judge_batch(store, items, check)
    if replay:  # a worker restarting from an earlier checkpoint
        for items in sent:
            judge_batch(store, items, check)
