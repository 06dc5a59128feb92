"""A batch's load while the previous batch's save is still being written (on a real
redis-server): it waits only when it must read an account that save writes, and it recognises
the transaction ids that save writes as duplicates before Redis has them."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.records import Position, Transaction
from consumer.state.store import AccountStateStore, PreparedSave, SaveInFlight
from consumer.state.writer import StateWriter
from tests.unit.state.test_state import CONFIG, HORIZON, T0, txn

Batch = list[tuple[Position, str, str]]  # position, transaction id, account


def _items(batch: Batch) -> list[tuple[Position, Transaction]]:
    return [(pos, txn(tid, account=acct, ts_ms=T0 + pos[0])) for pos, tid, acct in batch]


class DeferredSave:
    """The previous batch's save, written only when the load waits for it (or at the end)."""

    def __init__(self, store: AccountStateStore, prepared: PreparedSave) -> None:
        self.store = store
        self.prepared = prepared
        self.written = False

    def wait(self) -> None:
        if not self.written:
            self.store.write(self.prepared)
            self.written = True

    def in_flight(self) -> SaveInFlight:
        return SaveInFlight(self.prepared, self.wait)


def run(store: AccountStateStore, batches: list[Batch], defer: bool) -> tuple[list[str], int]:
    """Decisions (history size, or "dup") per record; how many loads waited for a save."""
    out: list[str] = []
    waits = 0
    previous: DeferredSave | None = None
    for batch in batches:
        if previous is not None and not defer:
            previous.wait()
        in_flight = previous.in_flight() if previous is not None and defer else None
        view = store.load(_items(batch), in_flight)
        if previous is not None:
            waits += defer and previous.written
            previous.wait()  # written either way before this batch's own save
        for pos, t in _items(batch):
            if view.is_duplicate(t, pos):
                out.append("dup")
                continue
            out.append(str(len(view.history(t, pos).recent)))
            view.add(t, pos)
        previous = DeferredSave(store, store.prepare_save(view))
    if previous is not None:
        previous.wait()
    return out, waits


def test_a_cached_account_loads_without_waiting_and_sees_the_unwritten_save(
    redis_conn: redis.Redis,
) -> None:
    store = AccountStateStore(redis_conn, CONFIG, HORIZON)
    first: Batch = [((1, 0), "t1", "a"), ((2, 0), "t2", "a")]
    second: Batch = [((3, 0), "t1", "a"), ((4, 0), "t3", "a"), ((5, 0), "t2", "b")]
    decided, waits = run(store, [first, second], defer=True)
    # t1 and t2 are only in the unwritten save, still duplicates (t2 under another account too)
    assert decided == ["0", "1", "dup", "2", "dup"]
    assert waits == 0
    assert redis_conn.zcard("fs:acct:{a}:recent") == 3  # nothing lost once written


def test_a_load_that_must_read_an_account_the_save_writes_waits_for_it(
    redis_conn: redis.Redis,
) -> None:
    store = AccountStateStore(redis_conn, dataclasses.replace(CONFIG, cache_accounts=0), HORIZON)
    batches: list[Batch] = [[((1, 0), "t1", "a")], [((2, 0), "t2", "b")], [((3, 0), "t3", "b")]]
    decided, waits = run(store, batches, defer=True)
    assert decided == ["0", "0", "1"]  # b's second record sees its first: the load waited
    assert waits == 1  # only for the save that wrote b (a's did not concern b)


batch_records = st.lists(
    st.tuples(st.sampled_from("abcd"), st.integers(0, 40)), min_size=1, max_size=6
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(batch_records, min_size=1, max_size=6),
    cache_entries=st.sampled_from([0, 3, 100]),
)
def test_saves_left_in_flight_decide_exactly_as_saves_waited_for(
    redis_conn: redis.Redis, batches: list[list[tuple[str, int]]], cache_entries: int
) -> None:
    """Any batches, repeated transaction ids across batches and accounts, caches that keep all,
    some or none of the accounts: the same decisions as loading after every save."""
    config = dataclasses.replace(CONFIG, cache_entries=cache_entries)
    position = 0
    stream: list[Batch] = []
    for batch in batches:
        records: Batch = []
        for account, tid in batch:
            position += 1
            records.append(((position, 0), f"t{tid}", account))
        stream.append(records)
    redis_conn.flushall()
    waited, _ = run(AccountStateStore(redis_conn, config, HORIZON), stream, defer=False)
    waited_state = sorted(redis_conn.keys())
    redis_conn.flushall()
    deferred, _ = run(AccountStateStore(redis_conn, config, HORIZON), stream, defer=True)
    assert deferred == waited
    assert sorted(redis_conn.keys()) == waited_state


def test_the_writer_offers_a_save_only_while_it_is_being_written() -> None:
    writer = StateWriter()
    release = threading.Event()
    prepared = PreparedSave([], [], accounts=frozenset({"a"}))
    writer.submit(lambda: int(release.wait(5)), prepared)
    in_flight = writer.in_flight()
    assert in_flight is not None and in_flight.prepared is prepared
    release.set()
    in_flight.wait()
    assert writer.in_flight() is None


def test_a_save_that_gave_up_raises_when_the_next_load_asks_for_it() -> None:
    writer = StateWriter()

    def failing() -> int:
        raise ConnectionError("redis gone")

    writer.submit(failing, PreparedSave([], []))
    deadline = time.monotonic() + 5
    with pytest.raises(ConnectionError, match="redis gone"):
        while time.monotonic() < deadline:
            writer.in_flight()
            time.sleep(0.01)
