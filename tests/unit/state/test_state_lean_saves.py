"""Saves that send only what changes something, on a real redis-server: a cached account's
keys get their expiry set again only every `refresh`, yet every key always has one, at least
as long as the account's last write plus its nominal time; and the recent set is capped only
when it may hold more than max_entries, yet never does after a save."""

from __future__ import annotations

import dataclasses

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import consumer.state.store
from consumer.rules.profile import ACCOUNT_DAYS, DAY_S
from consumer.state.store import AccountStateStore
from tests.unit.state.test_state import CONFIG, HORIZON, T0, judge_all, txn

KEEP = int(HORIZON) + CONFIG.lateness_s + 1
REFRESH = min(KEEP, CONFIG.memory_ttl_s) / 8


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(consumer.state.store.time, "monotonic", fake)
    return fake


def calls(client: redis.Redis, command: str) -> int:
    stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0))


def test_a_cached_account_sends_its_expiries_again_only_after_the_refresh_time(
    redis_conn: redis.Redis, clock: Clock
) -> None:
    store = AccountStateStore(redis_conn, CONFIG, HORIZON)
    judge_all(store, [((1, 0), txn("t1", account="a", device_id="d1"))])
    redis_conn.config_resetstat()
    clock.now += REFRESH / 2
    judge_all(store, [((2, 0), txn("t2", account="a", device_id="d1", ts_ms=T0 + 1))])
    assert calls(redis_conn, "expire") == 0
    assert calls(redis_conn, "set") == 1  # the transaction id alone, not the account's first
    clock.now += REFRESH / 2
    judge_all(store, [((3, 0), txn("t3", account="a", device_id="d1", ts_ms=T0 + 2))])
    assert calls(redis_conn, "expire") == 5  # recent, devices, countries, first, days
    assert redis_conn.zcard("fs:acct:{a}:recent") == 3


def test_a_key_created_between_refreshes_gets_its_expiry(
    redis_conn: redis.Redis, clock: Clock
) -> None:
    store = AccountStateStore(redis_conn, CONFIG, HORIZON)
    # t1 again with a device: a duplicate (not recorded), but the load asked about the device,
    # so the cache answers for it next time instead of reloading the account. (An unknown
    # country always reloads: the cache answers only for countries it knows.)
    again = txn("t1", account="a", device_id="d1")
    assert judge_all(store, [((1, 0), txn("t1", account="a")), ((2, 0), again)])[1] == "dup"
    assert not redis_conn.exists("fs:acct:{a}:devices")
    clock.now += 1
    item = txn("t2", account="a", device_id="d1", ts_ms=T0 + 1)
    redis_conn.config_resetstat()
    judge_all(store, [((3, 0), item)])
    assert calls(redis_conn, "zrangebyscore") == 0  # from the cache: no refresh
    assert calls(redis_conn, "expire") == 1  # the new key's alone
    ttl = redis_conn.ttl("fs:acct:{a}:devices")
    assert CONFIG.memory_ttl_s - 5 <= ttl <= CONFIG.memory_ttl_s + REFRESH + 1


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.sampled_from([None, "d1", "d2"]),
            st.sampled_from([None, "FR", "DE"]),
            st.floats(0, 2 * REFRESH),
        ),
        min_size=1,
        max_size=12,
    ),
    cache_entries=st.sampled_from([0, 2, 100]),
)
def test_every_key_always_expires_and_not_before_its_time_after_the_last_write(
    redis_conn: redis.Redis,
    clock: Clock,
    steps: list[tuple[str, str | None, str | None, float]],
    cache_entries: int,
) -> None:
    """Redis's clock does not move with the fake one: each wait is taken off every key's
    remaining time by hand, so its TTL is what it would be after that wait."""
    redis_conn.flushall()
    store = AccountStateStore(
        redis_conn, dataclasses.replace(CONFIG, cache_entries=cache_entries), HORIZON
    )
    last_write: dict[str, float] = {}  # account -> fake time of its last record
    for n, (account, device, country, wait) in enumerate(steps):
        clock.now += wait
        for key in redis_conn.keys("fs:acct:*"):
            left_ms = redis_conn.pttl(key) - int(wait * 1000)
            if left_ms > 0:
                redis_conn.pexpire(key, left_ms)
            else:  # it expired during the wait
                redis_conn.delete(key)
        extra = {"device_id": device} if device else {}
        if country:
            extra["destination_country"] = country
        judge_all(store, [((n + 1, 0), txn(f"t{n}", account=account, ts_ms=T0 + n, **extra))])
        last_write[account] = clock.now
        for key in redis_conn.keys("fs:acct:*"):
            owner = key.decode().split("{")[1].split("}")[0]
            ttl = redis_conn.ttl(key)
            nominal = (
                KEEP
                if key.endswith(b":recent")
                else (ACCOUNT_DAYS + 1) * DAY_S  # day totals: 30 days read, one more kept
                if key.endswith(b":days")
                else CONFIG.memory_ttl_s
            )
            assert ttl > 0, key  # never a key without expiry
            assert ttl >= nominal - (clock.now - last_write[owner]) - 5, key


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(1, 4)), max_size=10),
    cache_entries=st.sampled_from([0, 4, 100]),
    replay=st.booleans(),
)
def test_the_recent_set_never_holds_more_than_max_entries_after_a_save(
    redis_conn: redis.Redis, sizes: list[tuple[str, int]], cache_entries: int, replay: bool
) -> None:
    redis_conn.flushall()
    config = dataclasses.replace(CONFIG, max_entries=5, cache_entries=cache_entries)
    store = AccountStateStore(redis_conn, config, HORIZON)
    position = 0
    for account, size in sizes:
        items = []
        for _ in range(size):
            position += 1
            items.append(((position, 0), txn(f"t{position}", account=account, ts_ms=T0 + position)))
        judge_all(store, items)
        if replay:  # the same records again: nothing new, the bound must not drift
            judge_all(store, items)
        for name in ("a", "b"):
            assert redis_conn.zcard(f"fs:acct:{{{name}}}:recent") <= 5


def test_a_cached_account_is_capped_only_once_it_may_hold_more_than_max_entries(
    redis_conn: redis.Redis,
) -> None:
    store = AccountStateStore(redis_conn, dataclasses.replace(CONFIG, max_entries=5), HORIZON)
    redis_conn.config_resetstat()
    for n in range(1, 8):
        judge_all(store, [((n, 0), txn(f"t{n}", account="a", ts_ms=T0 + n))])
        assert calls(redis_conn, "zremrangebyrank") == max(0, n - 5), n
    assert redis_conn.zcard("fs:acct:{a}:recent") == 5
