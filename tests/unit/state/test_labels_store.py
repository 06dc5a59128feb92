"""LabelStore on a real redis-server: applied once, in any order, as `newer_label` decides; the
merchant's window trimmed; quality counted once per transaction."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.labels.records import Label
from consumer.rules.profile import DAY_S, MERCHANT_DAYS, LabelMark, day_of, newer_label
from consumer.state.labels import (
    QUALITY_FIELDS,
    LabelStore,
    merchant_labels_key,
    quality_key,
)

DAY0 = 20_000  # 2024-10-04
T0 = Decimal(DAY0 * DAY_S)


def label(
    txn: str,
    at: Decimal | int,
    fraud: bool = True,
    merchant: str | None = "m1",
    event: Decimal | int | None = None,
) -> Label:
    event_time = T0 if event is None else Decimal(event)
    return Label(txn, fraud, Decimal(at), "acct-0001234", merchant, event_time)


def stored(conn: redis.Redis, merchant: str = "m1") -> dict[str, LabelMark]:
    raw: dict[bytes, bytes] = conn.hgetall(merchant_labels_key(merchant))  # type: ignore[assignment]
    return {k.decode(): LabelMark.decode(v) for k, v in raw.items()}


def test_first_label_applied(redis_conn: redis.Redis) -> None:
    result = LabelStore(redis_conn).apply([label("t1", T0 + 10)])
    assert (result.applied, result.unchanged, result.without_merchant) == (1, 0, 0)
    assert stored(redis_conn) == {"t1": LabelMark(DAY0, T0 + 10, True)}
    ttl = redis_conn.ttl(merchant_labels_key("m1"))
    assert (MERCHANT_DAYS) * DAY_S < ttl <= (MERCHANT_DAYS + 1) * DAY_S


def test_redelivery_changes_nothing(redis_conn: redis.Redis) -> None:
    store = LabelStore(redis_conn)
    batch = [label("t1", T0 + 10), label("t2", T0 + 11, False)]
    store.apply(batch)
    before = stored(redis_conn)
    again = store.apply(batch)
    assert (again.applied, again.unchanged, again.first_labels) == (0, 2, 0)
    assert stored(redis_conn) == before


def test_out_of_order_keeps_the_latest(redis_conn: redis.Redis) -> None:
    store = LabelStore(redis_conn)
    store.apply([label("t1", T0 + 50, False)])
    result = store.apply([label("t1", T0 + 20, True)])  # older, arrives later
    assert (result.applied, result.unchanged) == (0, 1)
    assert stored(redis_conn)["t1"] == LabelMark(DAY0, T0 + 50, False)


def test_reversal_fraud_then_cleared(redis_conn: redis.Redis) -> None:
    store = LabelStore(redis_conn)
    store.apply([label("t1", T0 + 10, True)])
    store.apply([label("t1", T0 + 86_400, False)])
    assert stored(redis_conn)["t1"].is_fraud is False


def test_a_tie_goes_to_fraud_and_exact_decimals_compare(redis_conn: redis.Redis) -> None:
    store = LabelStore(redis_conn)
    store.apply([label("t1", Decimal("1728000000.000001"), False)])
    store.apply([label("t1", Decimal("1728000000.000001"), True)])
    assert stored(redis_conn)["t1"].is_fraud is True
    store.apply([label("t1", Decimal("1728000000.000001"), False)])
    assert stored(redis_conn)["t1"].is_fraud is True
    # 1e-6 apart: beyond a double's precision at this magnitude, still ordered exactly.
    store.apply([label("t1", Decimal("1728000000.000002"), False)])
    assert stored(redis_conn)["t1"] == LabelMark(DAY0, Decimal("1728000000.000002"), False)


def test_without_merchant_is_counted_not_stored(redis_conn: redis.Redis) -> None:
    result = LabelStore(redis_conn).apply([label("t1", T0 + 1, merchant=None)])
    assert (result.applied, result.without_merchant, result.first_labels) == (0, 1, 1)
    assert redis_conn.keys("fs:merch:*") == []


def test_window_trimmed_to_merchant_days_before_the_newest(redis_conn: redis.Redis) -> None:
    store = LabelStore(redis_conn, chunk=2)
    old_event = T0 - (MERCHANT_DAYS - 1) * DAY_S  # the oldest day still in the window
    store.apply([label("old", T0 + 1, event=old_event), label("new", T0 + 1)])
    assert set(stored(redis_conn)) == {"old", "new"}
    # The newest day moves one day on: "old" falls out of the window.
    later = T0 + DAY_S
    result = store.apply([label("next", later + 1, event=later)])
    assert result.applied == 1
    assert set(stored(redis_conn)) == {"new", "next"}
    # A label older than the window is refused, not stored.
    result = store.apply([label("ancient", later + 2, event=old_event)])
    assert (result.too_old, result.applied) == (1, 0)
    assert "ancient" not in stored(redis_conn)


def test_many_labels_across_chunks_and_merchants(redis_conn: redis.Redis) -> None:
    labels = [label(f"t{i}", T0 + i, i % 3 == 0, merchant=f"m{i % 7}") for i in range(1203)]
    result = LabelStore(redis_conn).apply(iter(labels))
    assert (result.labels, result.applied, result.first_labels) == (1203, 1203, 1203)
    assert sum(len(stored(redis_conn, f"m{m}")) for m in range(7)) == 1203


def test_quality_counted_once_per_transaction(redis_conn: redis.Redis) -> None:
    redis_conn.set("fs:txn:{alerted}", "12.0|A")
    redis_conn.set("fs:txn:{quiet}", "13.0")
    redis_conn.set("fs:txn:{quiet-fraud}", "14.0")
    store = LabelStore(redis_conn)
    day = date(2024, 10, 4)
    batch = [
        label("alerted", T0 + 5, True),
        label("quiet", T0 + 5, False),
        label("quiet-fraud", T0 + 5, True, merchant=None),
        label("gone", T0 + 5, False),
        label("alerted", T0 + 9, False),  # same transaction in the chunk: its newest counts
    ]
    store.apply(batch)
    store.apply(batch)  # a repeat counts nothing
    store.apply([label("quiet", T0 + DAY_S + 5, True)])  # a later verdict: not a first label
    counts = store.quality([day], today=day)[day]
    assert counts == {
        **dict.fromkeys(QUALITY_FIELDS, 0),
        "clean_alerted": 1,
        "clean_quiet": 1,
        "fraud_missed": 1,
        "clean_unknown": 1,
    }
    assert redis_conn.ttl(quality_key(day)) > 300 * DAY_S
    last_two = store.quality(2, today=date(2024, 10, 5))
    assert list(last_two) == [day, date(2024, 10, 5)]
    assert sum(last_two[date(2024, 10, 5)].values()) == 0


def test_a_pending_first_label_is_counted_when_applied_again(redis_conn: redis.Redis) -> None:
    """A chunk whose quality round trip failed left its marks pending: the next delivery counts."""
    redis_conn.set("fs:txn:{t1}:label", "p")
    store = LabelStore(redis_conn)
    store.apply([label("t1", T0 + 5, True)])
    assert store.quality([date(2024, 10, 4)])[date(2024, 10, 4)]["fraud_unknown"] == 1
    assert redis_conn.get("fs:txn:{t1}:label") == b"c"


def test_labelled_at_outside_the_bounds_is_a_bug_not_a_wrong_compare(
    redis_conn: redis.Redis,
) -> None:
    with pytest.raises(ValueError, match="bounds"):
        LabelStore(redis_conn).apply([label("t1", Decimal("1.0000001"))])


def test_the_script_is_loaded_again_after_a_flush(redis_conn: redis.Redis) -> None:
    store = LabelStore(redis_conn)
    store.apply([label("t1", T0 + 1)])
    redis_conn.script_flush()
    assert store.apply([label("t2", T0 + 1)]).applied == 1


_times = st.sampled_from([T0 + 1, T0 + 2, T0 + Decimal("2.000001"), T0 + 3, Decimal(0)])
_labels = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), _times, st.booleans(), st.integers(0, 3)),
    max_size=25,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sequence=_labels, chunk=st.integers(1, 6))
def test_equal_to_newer_label(
    redis_conn: redis.Redis,
    sequence: list[tuple[str, Decimal, bool, int]],
    chunk: int,
) -> None:
    redis_conn.flushall()
    labels = [label(t, at, fraud, event=T0 + d * DAY_S) for t, at, fraud, d in sequence]
    LabelStore(redis_conn, chunk=chunk).apply(labels)
    expected: dict[str, LabelMark] = {}
    for item in labels:
        incoming = LabelMark(day_of(item.event_time), item.labelled_at, item.is_fraud)
        if newer_label(expected.get(item.transaction_id), incoming):
            expected[item.transaction_id] = incoming
    assert stored(redis_conn) == expected
