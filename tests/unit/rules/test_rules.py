"""The rules core against docs/contract.md section 2 ("The rules" and how they are read).

Transactions are built as JSON bytes and parsed by consumer.records.parse_transaction, so every
test exercises real records: decimal literals as written, epoch milliseconds and ISO-8601 with
offsets. Histories are what the state store would hand over: the account's earlier transactions
in stream order (the helper `decide` builds them naively from the whole earlier stream).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec import structs

from consumer.records import InvalidRecord, Transaction, parse_transaction
from consumer.rules import (
    EMPTY_HISTORY,
    RULE_IDS,
    AccountHistory,
    Decision,
    HistoryEntry,
    RulesConfig,
    judge,
    severity_at_least,
    state_horizon_s,
)
from consumer.rules.geo import haversine_km
from tests.support.oracle import reference_decisions

DEFAULT = RulesConfig()
# 2026-11-24T09:00:00Z
BASE_S = 1795510800
BASE_MS = BASE_S * 1000
ACCOUNT = "acct-0000-1111-2222-9876"

BERLIN = (52.52, 13.405)
PARIS = (48.8566, 2.3522)
NEW_YORK = (40.7128, -74.006)
SYDNEY = (-33.8688, 151.2093)
LONDON = (51.5074, -0.1278)

_counter = 0


def _literal(value: Any) -> str:
    """JSON text for a value; a Decimal is written exactly as its literal."""
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value)


def record(**fields: Any) -> bytes:
    """A record's bytes. `at` is seconds after BASE (int or str, ms precision) as epoch ms;
    `timestamp` overrides it with any raw value; `amount` / `account_balance` given as str are
    written as the literal; `loc` = (lat, lon)."""
    global _counter
    _counter += 1
    obj: dict[str, Any] = {
        "transaction_id": f"tx-{_counter}",
        "account_id": ACCOUNT,
        "amount": Decimal("100"),
    }
    at = fields.pop("at", 0)
    obj["timestamp"] = BASE_MS + int(Decimal(str(at)) * 1000)
    loc = fields.pop("loc", None)
    if loc is not None:
        obj["latitude"], obj["longitude"] = loc
    for key, value in fields.items():
        obj[key] = Decimal(value) if key in ("amount", "account_balance") else value
    return (
        "{" + ", ".join(f"{json.dumps(k)}: {_literal(v)}" for k, v in obj.items()) + "}"
    ).encode()


def txn(**fields: Any) -> Transaction:
    parsed = parse_transaction(record(**fields))
    assert isinstance(parsed, Transaction), parsed
    return parsed


def entry(index: int, t: Transaction) -> HistoryEntry:
    return HistoryEntry((index, 0), t.event_time, t.amount, t.latitude, t.longitude)


def history_of(earlier: Sequence[Transaction], t: Transaction) -> AccountHistory:
    """Naively: everything earlier in the stream of the same account."""
    mine = [e for e in earlier if e.account_id == t.account_id]
    return AccountHistory(
        recent=[entry(i, e) for i, e in enumerate(mine)],
        device_seen_before=t.device_id is not None
        and any(e.device_id == t.device_id for e in mine),
        has_earlier=bool(mine),
    )


def decide(txns: Sequence[Transaction], config: RulesConfig = DEFAULT) -> list[Decision]:
    """Judge each transaction in stream order against everything before it."""
    return [judge(t, history_of(txns[:i], t), config) for i, t in enumerate(txns)]


def rules(decision: Decision) -> list[str]:
    return [r.rule for r in decision.reasons]


def last_rules(txns: Sequence[Transaction], config: RulesConfig = DEFAULT) -> list[str]:
    return rules(decide(txns, config)[-1])


def only(*enabled: str, **changes: Any) -> RulesConfig:
    return replace(DEFAULT, enabled=frozenset(enabled), **changes)


# --- high_amount -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "fires"),
    [
        ("10000", False),
        ("10000.00", False),
        ("1E+4", False),
        ("9999.999999", False),
        ("10000.01", True),
        ("10000.001", True),
        ("10000.000000000000000001", True),  # the finest step above (1e-18)
        ("1000000000", True),
    ],
)
def test_high_amount_is_strictly_above_the_threshold_exactly(amount: str, fires: bool) -> None:
    decision = judge(txn(amount=amount), EMPTY_HISTORY, DEFAULT)
    assert rules(decision) == (["high_amount"] if fires else [])
    assert decision.flagged is fires
    assert decision.severity == ("high" if fires else None)


def test_high_amount_detail_names_the_numbers() -> None:
    decision = judge(txn(amount="10000.001", currency="EUR"), EMPTY_HISTORY, DEFAULT)
    assert decision.reasons[0].detail == "amount 10000.001 EUR > 10000"


def test_high_amount_custom_threshold() -> None:
    config = replace(DEFAULT, high_amount_threshold=Decimal("500"))
    assert rules(judge(txn(amount="500"), EMPTY_HISTORY, config)) == []
    assert rules(judge(txn(amount="500.01"), EMPTY_HISTORY, config)) == ["high_amount"]


# --- velocity ---------------------------------------------------------------------------------


def test_velocity_three_within_60s_pass_and_the_fourth_fires() -> None:
    stream = [txn(at=0), txn(at=10), txn(at=20), txn(at=30), txn(at=40)]
    assert [rules(d) for d in decide(stream)] == [[], [], [], ["velocity"], ["velocity"]]
    assert decide(stream)[3].severity == "medium"
    assert "4 transactions within 60 s" in decide(stream)[3].reasons[0].detail


def test_velocity_a_transaction_exactly_60s_later_is_outside_the_window() -> None:
    assert last_rules([txn(at=0), txn(at=10), txn(at=20), txn(at=60)]) == []
    assert last_rules([txn(at=0), txn(at=10), txn(at=20), txn(at="59.999")]) == ["velocity"]


def test_velocity_equal_timestamps_all_count() -> None:
    stream = [txn(at=5) for _ in range(4)]
    assert [rules(d) for d in decide(stream)] == [[], [], [], ["velocity"]]


def test_velocity_counts_only_event_times_at_or_before_this_one() -> None:
    # Earlier in the stream but later in event time: outside `t - W < t' <= t`.
    assert last_rules([txn(at=30), txn(at=0), txn(at=10), txn(at=20)]) == []
    # The same three plus the one at 30, seen from 30: four within (-30, 30].
    assert last_rules([txn(at=30), txn(at=0), txn(at=10), txn(at=30)]) == ["velocity"]


def test_velocity_ignores_history_far_outside_the_window() -> None:
    old = [txn(at=-1000 - i) for i in range(10)]
    future = [txn(at=500 + i) for i in range(10)]
    assert last_rules([*old, *future, txn(at=0), txn(at=1), txn(at=2)]) == []
    assert last_rules([*old, *future, txn(at=0), txn(at=1), txn(at=2), txn(at=3)]) == ["velocity"]


def test_velocity_window_bounds_are_exact_instants_across_timestamp_forms() -> None:
    def stream(last: str) -> list[Transaction]:
        return [
            txn(timestamp="2026-11-24T09:00:00Z"),
            txn(timestamp=BASE_MS + 10_000),  # epoch ms
            txn(timestamp="2026-11-24T04:00:20-05:00"),
            txn(timestamp=last),
        ]

    # 14:31+05:30 is 09:01:00Z, exactly 60 s after the first: outside.
    assert last_rules(stream("2026-11-24T14:31+0530")) == []
    assert last_rules(stream("2026-11-24T10:01:00+01")) == []
    assert last_rules(stream("2026-11-24T14:30:59.999+05:30")) == ["velocity"]
    assert last_rules(stream("2026-11-24T10:00:59.999999999999999999999999999999999+01:00")) == [
        "velocity"
    ]


def test_velocity_window_bound_with_a_long_fraction_is_not_rounded() -> None:
    # t' = t - 60 + 1e-40: inside. A 28-digit (or 80-digit near 1e9) subtraction would round it
    # onto the bound and drop it.
    tiny = "0." + "0" * 39 + "1"
    first = txn(timestamp=f"2026-11-24T09:00:00{tiny[1:]}Z")
    rest = [txn(timestamp="2026-11-24T09:00:30Z"), txn(timestamp="2026-11-24T09:00:40Z")]
    assert last_rules([first, *rest, txn(timestamp="2026-11-24T09:01:00Z")]) == ["velocity"]
    exact = txn(timestamp="2026-11-24T09:00:00.000Z")
    assert last_rules([exact, *rest, txn(timestamp="2026-11-24T09:01:00Z")]) == []


def test_velocity_custom_count_and_window() -> None:
    config = only("velocity", velocity_max_count=1, velocity_window_s=Decimal("0.5"))
    assert last_rules([txn(at=0), txn(at="0.499")], config) == ["velocity"]
    assert last_rules([txn(at=0), txn(at="0.5")], config) == []


# --- card_testing -----------------------------------------------------------------------------


def test_card_testing_fifth_small_one_within_10_minutes_fires() -> None:
    stream = [txn(at=i * 60, amount="1.00") for i in range(6)]
    assert [rules(d) for d in decide(stream)] == [
        [],
        [],
        [],
        [],
        ["card_testing"],
        ["card_testing"],
    ]
    detail = decide(stream)[4].reasons[0].detail
    assert "5 transactions <= 5.00 within 600 s" in detail


@pytest.mark.parametrize(
    ("amount", "fires"), [("5.00", True), ("5", True), ("5.001", False), ("5.01", False)]
)
def test_card_testing_small_means_at_most_5_00(amount: str, fires: bool) -> None:
    stream = [txn(at=i * 100, amount=amount) for i in range(5)]
    assert last_rules(stream) == (["card_testing"] if fires else [])


def test_card_testing_counts_only_small_ones_and_this_one_must_be_small() -> None:
    small = [txn(at=i, amount="4.99") for i in range(4)]
    big = [txn(at=10 + i, amount="5.01") for i in range(5)]
    config = only("card_testing")
    assert last_rules([*small, *big], config) == []  # velocity aside
    assert last_rules([*small, *big, txn(at=20, amount="0.01")], config) == ["card_testing"]
    assert last_rules([*small, txn(at=30, amount="5.01")], config) == []


def test_card_testing_window_edge_599_999_vs_600_seconds() -> None:
    first = [
        txn(at=0, amount="1"),
        txn(at=1, amount="1"),
        txn(at=2, amount="1"),
        txn(at=3, amount="1"),
    ]
    only_card = only("card_testing")
    assert last_rules([*first, txn(at="599.999", amount="1")], only_card) == ["card_testing"]
    assert last_rules([*first, txn(at=600, amount="1")], only_card) == []
    # Equal timestamps count; a small one later in event time does not.
    same = [txn(at=7, amount="2") for _ in range(5)]
    assert last_rules(same, only_card) == ["card_testing"]
    assert last_rules([txn(at=8, amount="2"), *same[:4]], only_card) == []


def test_card_testing_window_bound_with_a_long_fraction_is_not_rounded() -> None:
    config = only("card_testing")
    nines = "9" * 45
    # Window of the last one: (08:59:59.999...9, 09:09:59.999...9]; rounding its lower bound to
    # 28 digits would make it 09:00:00 and drop the first one.
    last = txn(timestamp=f"2026-11-24T09:09:59.{nines}Z", amount="1")
    first = txn(timestamp="2026-11-24T09:00:00Z", amount="1")
    on_bound = txn(timestamp=f"2026-11-24T08:59:59.{nines}Z", amount="1")
    rest = [txn(timestamp=f"2026-11-24T09:0{i}:00Z", amount="1") for i in (1, 2, 3)]
    assert last_rules([first, *rest, last], config) == ["card_testing"]
    assert last_rules([on_bound, *rest, last], config) == []


# --- cross_border -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "destination", "fires"),
    [
        ("DE", "FR", True),
        ("de", "fr", True),
        ("DE", "de", False),
        ("us", "US", False),
        ("DE", None, False),
        (None, "FR", False),
    ],
)
def test_cross_border(origin: str | None, destination: str | None, fires: bool) -> None:
    fields: dict[str, Any] = {}
    if origin is not None:
        fields["origin_country"] = origin
    if destination is not None:
        fields["destination_country"] = destination
    decision = judge(txn(**fields), EMPTY_HISTORY, DEFAULT)
    assert rules(decision) == (["cross_border"] if fires else [])
    if fires:
        assert decision.severity == "low"
        assert decision.reasons[0].detail == "origin DE, destination FR"


# --- low_balance_high_amount ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "balance", "fires"),
    [
        ("1800", "2000", False),  # 0.9 * 2000 = 1800 exactly: not >
        ("1800.00", "2000.00", False),
        ("1800.01", "2000", True),
        ("1800", "1999.99", True),  # 0.9 * 1999.99 = 1799.991
        ("1000", "1111.11", True),  # 999.999
        ("1000", "1111.12", False),  # 1000.008
        ("999.99", "0", False),  # below min amount
        ("999.99", "-5", False),
        ("1000", "0", True),
        ("1000", "-5", True),
        ("5000", "1000000", False),
    ],
)
def test_low_balance_high_amount(amount: str, balance: str, fires: bool) -> None:
    decision = judge(
        txn(amount=amount, account_balance=balance), EMPTY_HISTORY, only("low_balance_high_amount")
    )
    assert rules(decision) == (["low_balance_high_amount"] if fires else [])


def test_low_balance_needs_a_balance_and_names_the_numbers() -> None:
    assert rules(judge(txn(amount="5000"), EMPTY_HISTORY, DEFAULT)) == []
    decision = judge(txn(amount="1000", account_balance="1111.11"), EMPTY_HISTORY, DEFAULT)
    assert decision.reasons[0].detail == "amount 1000 USD >= 1000 and > 0.9 x balance 1111.11"


def test_low_balance_ratio_product_is_exact_with_long_decimals() -> None:
    # Balances have at most 18 decimal places (docs/contract.md, "Bounds"); a longer ratio still
    # makes a 37-digit product: 0.9999999999 * 1000000000.000000000000000001 =
    # 999999999.9000000000000000009999999999, which a 28-digit context would round up to
    # 999999999.900000000000000001 (and then that amount would not be above it).
    balance = "1000000000.000000000000000001"
    config = replace(only("low_balance_high_amount"), low_balance_ratio=Decimal("0.9999999999"))
    above = "999999999.900000000000000001"
    assert rules(judge(txn(amount=above, account_balance=balance), EMPTY_HISTORY, config)) == [
        "low_balance_high_amount"
    ]
    below = "999999999.9"
    assert rules(judge(txn(amount=below, account_balance=balance), EMPTY_HISTORY, config)) == []


# --- new_device_high_amount -------------------------------------------------------------------


def test_new_device_high_amount_thresholds_and_conditions() -> None:
    first = txn(at=0, device_id="dev-a")
    config = only("new_device_high_amount")
    assert last_rules([first, txn(at=1, amount="999.99", device_id="dev-b")], config) == []
    assert last_rules([first, txn(at=1, amount="1000", device_id="dev-b")], config) == [
        "new_device_high_amount"
    ]
    assert last_rules([first, txn(at=1, amount="1000", device_id="dev-a")], config) == []
    assert last_rules([first, txn(at=1, amount="5000")], config) == []  # no device_id
    # The account's first transaction is not "new device" however large.
    assert last_rules([txn(at=0, amount="5000", device_id="dev-a")], config) == []
    # An earlier transaction without a device still makes the account not new.
    assert last_rules([txn(at=0), txn(at=1, amount="1000", device_id="dev-z")], config) == [
        "new_device_high_amount"
    ]


def test_new_device_seen_earlier_in_the_stream_whatever_its_event_time() -> None:
    config = only("new_device_high_amount")
    # Seen earlier in the stream with a later event time, and days ago: both count as seen.
    assert (
        last_rules([txn(at=9000, device_id="d"), txn(at=0, amount="2000", device_id="d")], config)
        == []
    )
    assert (
        last_rules(
            [txn(at=-900000, device_id="d"), txn(at=0, amount="2000", device_id="d")], config
        )
        == []
    )


def test_new_device_reads_the_history_flags() -> None:
    t = txn(amount="1000", device_id="dev")
    config = only("new_device_high_amount")
    assert rules(
        judge(t, AccountHistory((), device_seen_before=False, has_earlier=True), config)
    ) == ["new_device_high_amount"]
    assert (
        rules(judge(t, AccountHistory((), device_seen_before=True, has_earlier=True), config)) == []
    )
    assert (
        rules(judge(t, AccountHistory((), device_seen_before=False, has_earlier=False), config))
        == []
    )


# --- impossible_travel ------------------------------------------------------------------------


def _lon_for_km(km: float) -> float:
    return km / 6371 * 180 / math.pi


def test_impossible_travel_berlin_to_paris_speed_either_side_of_900() -> None:
    km = haversine_km(*BERLIN, *PARIS)
    assert 877 < km < 878
    # 877.46 km in 0.9 h = 975 km/h: fires; in 1 h = 877 km/h: does not.
    assert last_rules([txn(at=0, loc=BERLIN), txn(at=3240, loc=PARIS)]) == ["impossible_travel"]
    assert last_rules([txn(at=0, loc=BERLIN), txn(at=3600, loc=PARIS)]) == []
    decision = decide([txn(at=0, loc=BERLIN), txn(at=3240, loc=PARIS)])[-1]
    assert decision.severity == "high"
    assert decision.reasons[0].detail.startswith(
        "877.5 km from the previous located transaction 3240 s earlier: 975 km/h > 900"
    )


def test_impossible_travel_distance_99_9_vs_100_km() -> None:
    config = only("impossible_travel")
    near = (0.0, _lon_for_km(99.9))
    far = (0.0, _lon_for_km(100.1))
    assert last_rules([txn(at=0, loc=(0.0, 0.0)), txn(at=1, loc=near)], config) == []
    assert last_rules([txn(at=0, loc=(0.0, 0.0)), txn(at=1, loc=far)], config) == [
        "impossible_travel"
    ]


def test_impossible_travel_distance_exactly_at_the_minimum_fires() -> None:
    point = (0.0, 0.9)
    km = haversine_km(0.0, 0.0, *point)
    at_min = only("impossible_travel", travel_min_distance_km=km)
    above_min = only("impossible_travel", travel_min_distance_km=math.nextafter(km, math.inf))
    stream = [txn(at=0, loc=(0.0, 0.0)), txn(at=1, loc=point)]
    assert last_rules(stream, at_min) == ["impossible_travel"]
    assert last_rules(stream, above_min) == []


def test_impossible_travel_speed_exactly_at_the_maximum_does_not_fire() -> None:
    km = haversine_km(*BERLIN, *PARIS)
    config = only("impossible_travel", travel_max_speed_kmh=km)  # km in exactly 1 h = the max
    assert last_rules([txn(at=0, loc=BERLIN), txn(at=3600, loc=PARIS)], config) == []
    assert last_rules([txn(at=0, loc=BERLIN), txn(at="3599.999", loc=PARIS)], config) == [
        "impossible_travel"
    ]
    # 900 km/h exactly with the defaults: 100.075 km in 100.075/900 h.
    config900 = only("impossible_travel")
    point = (0.0, 0.9)
    seconds = haversine_km(0.0, 0.0, *point) / 900 * 3600  # ~400.3 s
    assert (
        last_rules(
            [txn(at=0, loc=(0.0, 0.0)), txn(at=f"{seconds + 0.001:.3f}", loc=point)], config900
        )
        == []
    )
    assert last_rules(
        [txn(at=0, loc=(0.0, 0.0)), txn(at=f"{seconds - 0.001:.3f}", loc=point)], config900
    ) == ["impossible_travel"]


def test_impossible_travel_needs_the_transaction_located() -> None:
    assert last_rules([txn(at=0, loc=BERLIN), txn(at=60)]) == []


def test_impossible_travel_skips_unlocated_history() -> None:
    stream = [txn(at=0, loc=BERLIN), txn(at=100), txn(at=200, loc=NEW_YORK)]
    assert last_rules(stream, only("impossible_travel")) == ["impossible_travel"]


def test_impossible_travel_compares_with_a_strictly_earlier_timestamp_only() -> None:
    config = only("impossible_travel")
    # New York shares the transaction's timestamp: ignored; Paris (0 km) is the comparison point.
    stream = [txn(at=0, loc=PARIS), txn(at=1800, loc=NEW_YORK), txn(at=1800, loc=PARIS)]
    assert last_rules(stream, config) == []
    # Nothing strictly earlier at all: nothing to compare.
    assert last_rules([txn(at=5, loc=NEW_YORK), txn(at=5, loc=PARIS)], config) == []
    assert last_rules([txn(at=6, loc=NEW_YORK), txn(at=5, loc=PARIS)], config) == []


def test_impossible_travel_uses_the_latest_event_time_not_the_latest_in_stream() -> None:
    config = only("impossible_travel")
    # Stream: Paris@1000, New York@0, then Paris@500. Strictly earlier than 500: New York only.
    stream = [txn(at=1000, loc=PARIS), txn(at=0, loc=NEW_YORK), txn(at=500, loc=PARIS)]
    assert last_rules(stream, config) == ["impossible_travel"]
    # Stream: New York@0, Paris@400, then Paris@500: the latest (Paris@400) is 0 km away.
    stream = [txn(at=0, loc=NEW_YORK), txn(at=400, loc=PARIS), txn(at=500, loc=PARIS)]
    assert last_rules(stream, config) == []
    # ...even when Paris@400 came first in the stream.
    stream = [txn(at=400, loc=PARIS), txn(at=0, loc=NEW_YORK), txn(at=500, loc=PARIS)]
    assert last_rules(stream, config) == []


def test_impossible_travel_tie_on_timestamp_latest_in_stream_wins() -> None:
    config = only("impossible_travel")
    paris_then_ny = [txn(at=0, loc=PARIS), txn(at=0, loc=NEW_YORK), txn(at=600, loc=PARIS)]
    ny_then_paris = [txn(at=0, loc=NEW_YORK), txn(at=0, loc=PARIS), txn(at=600, loc=PARIS)]
    assert last_rules(paris_then_ny, config) == ["impossible_travel"]
    assert last_rules(ny_then_paris, config) == []
    # Same instant written in two forms is a tie too.
    mixed = [
        txn(timestamp="2026-11-24T09:00:00Z", loc=PARIS),
        txn(timestamp="2026-11-24T10:00:00+01:00", loc=NEW_YORK),
        txn(timestamp=BASE_MS + 600_000, loc=PARIS),
    ]
    assert last_rules(mixed, config) == ["impossible_travel"]


def test_impossible_travel_tie_is_broken_by_position_whatever_the_list_order() -> None:
    config = only("impossible_travel")
    t = txn(at=600, loc=PARIS)
    ny = entry(7, txn(at=0, loc=NEW_YORK))
    paris = entry(3, txn(at=0, loc=PARIS))
    assert rules(judge(t, AccountHistory([ny, paris], has_earlier=True), config)) == [
        "impossible_travel"
    ]
    assert rules(judge(t, AccountHistory([paris, ny], has_earlier=True), config)) == [
        "impossible_travel"
    ]
    paris_later = entry(9, txn(at=0, loc=PARIS))
    assert rules(judge(t, AccountHistory([paris_later, ny], has_earlier=True), config)) == []


def test_impossible_travel_tie_with_equal_positions_takes_the_last_in_sequence() -> None:
    # Not something the state store produces, but the reading is fixed: last in `recent` wins.
    config = only("impossible_travel")
    t = txn(at=600, loc=PARIS)
    ny = entry(5, txn(at=0, loc=NEW_YORK))
    paris = entry(5, txn(at=0, loc=PARIS))
    assert rules(judge(t, AccountHistory([paris, ny], has_earlier=True), config)) == [
        "impossible_travel"
    ]
    assert rules(judge(t, AccountHistory([ny, paris], has_earlier=True), config)) == []


def test_impossible_travel_with_a_vanishing_time_gap_is_infinite_speed() -> None:
    def gap(zeros: int) -> list[Transaction]:
        return [
            txn(timestamp="2026-11-24T09:00:00Z", loc=BERLIN),
            txn(timestamp=f"2026-11-24T09:00:00.{'0' * zeros}1Z", loc=PARIS),
        ]

    decision = decide(gap(59), only("impossible_travel"))[-1]
    assert rules(decision) == ["impossible_travel"]
    assert "1e-60 s earlier: 3.16e+66 km/h > 900" in decision.reasons[0].detail
    # Too small a gap for a float: as good as infinitely fast, not a division by zero.
    decision = decide(gap(399), only("impossible_travel"))[-1]
    assert rules(decision) == ["impossible_travel"]
    assert "inf km/h" in decision.reasons[0].detail


# --- combination, severities, enabled ---------------------------------------------------------


def test_reasons_come_in_rule_id_order_and_severity_is_the_highest() -> None:
    earlier = [txn(at=i, loc=BERLIN, device_id="old") for i in range(3)]
    t = txn(
        at=10,
        amount="20000",
        account_balance="100",
        origin_country="DE",
        destination_country="FR",
        loc=NEW_YORK,
        device_id="new",
    )
    decision = decide([*earlier, t])[-1]
    assert rules(decision) == [
        "high_amount",
        "velocity",
        "cross_border",
        "low_balance_high_amount",
        "impossible_travel",
        "new_device_high_amount",
    ]
    assert decision.severity == "high"
    for reason in decision.reasons:
        assert ACCOUNT not in reason.detail and ACCOUNT[-4:] not in reason.detail
    small = [txn(at=i, amount="1") for i in range(4)]
    decision = decide(
        [*small, txn(at=5, amount="1", origin_country="DE", destination_country="FR")]
    )[-1]
    assert rules(decision) == ["velocity", "cross_border", "card_testing"]


def test_severity_combination() -> None:
    cross = txn(at=10, origin_country="DE", destination_country="FR")
    assert judge(cross, EMPTY_HISTORY, DEFAULT).severity == "low"
    three = [txn(at=i) for i in range(3)]
    assert decide([*three, cross])[-1].severity == "medium"
    big = txn(at=10, amount="10001", origin_country="DE", destination_country="FR")
    assert decide([*three, big])[-1].severity == "high"
    assert judge(txn(), EMPTY_HISTORY, DEFAULT) == Decision((), None)


def test_custom_severities() -> None:
    severities = dict(DEFAULT.severities, cross_border="high", high_amount="low", velocity="low")
    config = replace(DEFAULT, severities=severities)
    cross = txn(at=10, origin_country="DE", destination_country="FR")
    assert judge(cross, EMPTY_HISTORY, config).severity == "high"
    big = txn(at=10, amount="10001")
    assert judge(big, EMPTY_HISTORY, config).severity == "low"
    three = [txn(at=i) for i in range(3)]
    assert decide([*three, big], config)[-1].severity == "low"
    medium = replace(
        DEFAULT, severities=dict(DEFAULT.severities, velocity="medium", high_amount="medium")
    )
    assert decide([*three, big], medium)[-1].severity == "medium"


def test_disabled_rules_do_not_run() -> None:
    t = txn(amount="20000", origin_country="DE", destination_country="FR")
    assert rules(judge(t, EMPTY_HISTORY, only("cross_border"))) == ["cross_border"]
    assert rules(judge(t, EMPTY_HISTORY, only("high_amount"))) == ["high_amount"]
    assert judge(t, EMPTY_HISTORY, only()) == Decision((), None)
    four = [txn(at=i, amount="1", loc=BERLIN if i % 2 else NEW_YORK) for i in range(5)]
    everything_but = frozenset(RULE_IDS) - {"velocity", "card_testing", "impossible_travel"}
    assert last_rules(four, replace(DEFAULT, enabled=everything_but)) == []
    assert last_rules(four) == ["velocity", "impossible_travel", "card_testing"]


def test_severity_at_least() -> None:
    assert severity_at_least("high", "medium")
    assert severity_at_least("medium", "medium")
    assert not severity_at_least("low", "medium")
    assert not severity_at_least(None, "low")
    assert severity_at_least("low", "low")


# --- state horizon ----------------------------------------------------------------------------


def test_state_horizon_defaults_to_the_travel_reach() -> None:
    # pi * 6371 km at 900 km/h = 22.24 h = 80060.35 s, rounded up.
    assert state_horizon_s(DEFAULT) == Decimal(80061)
    assert state_horizon_s(replace(DEFAULT, travel_max_speed_kmh=1e9)) == Decimal(600)
    assert (
        state_horizon_s(replace(DEFAULT, travel_max_speed_kmh=1e9, velocity_window_s=Decimal(700)))
        == 700
    )
    slow = replace(DEFAULT, travel_max_speed_kmh=100.0)
    assert state_horizon_s(slow) == Decimal(math.floor(math.pi * 6371 / 100 * 3600) + 1)


def test_travel_just_inside_the_horizon_can_still_fire() -> None:
    # Antipodes: 20015 km. At 900 km/h that takes the whole reach.
    config = only("impossible_travel")
    horizon = int(state_horizon_s(config))
    antipode = [txn(at=0, loc=(0.0, 0.0)), txn(at=horizon - 2, loc=(0.0, 180.0))]
    assert last_rules(antipode, config) == ["impossible_travel"]
    antipode = [txn(at=0, loc=(0.0, 0.0)), txn(at=horizon, loc=(0.0, 180.0))]
    assert last_rules(antipode, config) == []


# --- the oracle against hand-computed cases ---------------------------------------------------


def _outcomes(
    records: list[tuple[str, bytes]], config: RulesConfig = DEFAULT
) -> list[tuple[str, str, list[str]]]:
    return [(p, o, sorted(r)) for p, o, r in reference_decisions(records, config)]


def test_oracle_invalid_duplicate_and_replay() -> None:
    a = record(transaction_id="A", at=0, origin_country="DE", destination_country="FR")
    a_retry = record(transaction_id="A", at=5, amount="20000")
    bad = b'{"transaction_id": "B", "amount": 1}'
    b = record(transaction_id="B", at=1)
    assert _outcomes(
        [("1", a), ("2", bad), ("3", b), ("4", a_retry), ("1", a), ("4", a_retry)]
    ) == [
        ("1", "judged", ["cross_border"]),
        ("2", "invalid", []),
        ("3", "judged", []),  # the invalid B did not make this B a duplicate
        ("4", "duplicate", []),
        ("1", "judged", ["cross_border"]),  # replay: judged again, same result
        ("4", "duplicate", []),
    ]


def test_oracle_replay_sees_only_what_came_before_it() -> None:
    stream = [(str(i), record(transaction_id=f"v{i}", at=i)) for i in range(5)]
    first = _outcomes(stream)
    assert [r for _, _, r in first] == [[], [], [], ["velocity"], ["velocity"]]
    # A replay of positions 1..4 after all five: nothing counted twice, nothing later leaks in.
    again = _outcomes(stream + stream[1:])
    assert again[5:] == first[1:]


def test_oracle_rules_by_hand() -> None:
    def run(*records: bytes, config: RulesConfig = DEFAULT) -> list[list[str]]:
        return [r for _, _, r in _outcomes([(str(i), d) for i, d in enumerate(records)], config)]

    assert run(record(amount="10000"), record(amount="10000.001")) == [[], ["high_amount"]]
    assert run(*[record(at=i, amount="5.00") for i in range(5)])[-1] == ["card_testing", "velocity"]
    assert run(*[record(at=i * 150, amount="5.00") for i in range(5)])[-1] == []  # 0 is out at 600
    assert run(*[record(at=i * 149, amount="5.00") for i in range(5)])[-1] == ["card_testing"]
    assert run(
        record(amount="1800", account_balance="2000"),
        record(amount="1800.01", account_balance="2000"),
    ) == [
        [],
        ["low_balance_high_amount"],
    ]
    assert run(record(at=0, loc=BERLIN), record(at=3240, loc=PARIS)) == [[], ["impossible_travel"]]
    assert run(record(at=0, loc=BERLIN), record(at=3600, loc=PARIS)) == [[], []]
    assert run(record(at=0, loc=PARIS), record(at=0, loc=NEW_YORK), record(at=600, loc=PARIS))[
        -1
    ] == ["impossible_travel"]
    assert (
        run(record(at=0, loc=NEW_YORK), record(at=0, loc=PARIS), record(at=600, loc=PARIS))[-1]
        == []
    )
    assert run(
        record(at=0, amount="5000", device_id="d1"),
        record(at=100, amount="999.99", device_id="d2"),
        record(at=200, amount="1000", device_id="d2"),
        record(at=300, amount="1000", device_id="d3"),
    ) == [[], [], [], ["new_device_high_amount"]]
    assert run(
        record(origin_country="de", destination_country="DE"),
        record(origin_country="DE", destination_country="AT"),
    ) == [
        [],
        ["cross_border"],
    ]
    assert run(record(amount="20000"), config=only("cross_border")) == [[]]


def test_oracle_keeps_accounts_apart() -> None:
    stream = [(str(i), record(account_id=f"acct-{i % 2}", at=i)) for i in range(7)]
    assert [r for _, _, r in _outcomes(stream)] == [[], [], [], [], [], [], ["velocity"]]


# --- judge against the oracle, on random streams ----------------------------------------------

POINTS = [
    None,
    None,
    BERLIN,
    PARIS,
    NEW_YORK,
    SYDNEY,
    LONDON,
    (53.42, 13.405),
    (53.418, 13.405),
    (52.6, 13.5),
]
AMOUNTS = [
    "0.01",
    "4.99",
    "5",
    "5.00",
    "5.001",
    "5.01",
    "999.99",
    "1000",
    "1000.00",
    "1800",
    "5000",
    "10000",
    "10000.001",
]
BALANCES = [None, None, "0", "1000", "1111.11", "2000", "20000", "-3"]


@st.composite
def timestamps(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["near_ms"] * 3 + ["near_s"] * 3 + ["tie"] * 3 + ["far", "reach"]))
    if kind == "tie":
        seconds = Decimal(draw(st.sampled_from([0, 60, 400, 600, 1200])))
    elif kind == "far":
        seconds = Decimal(draw(st.integers(-200_000, 200_000)))
    elif kind == "reach":
        seconds = Decimal(draw(st.sampled_from([80_060, 80_061, 80_059, 68_000, 70_000])))
    elif kind == "near_s":
        seconds = Decimal(draw(st.integers(0, 900)))
    else:
        seconds = Decimal(draw(st.integers(0, 1_300_000))) / 1000
    form = draw(st.sampled_from(["ms", "iso", "iso_offset"]))
    if form == "ms":
        return BASE_MS + int(seconds * 1000)
    total = Decimal(BASE_S) + seconds
    offset_min = 0 if form == "iso" else draw(st.sampled_from([60, -330, 345, -600]))
    local = total + offset_min * 60
    whole = int(local // 1)
    fraction = local - whole
    days, rest = divmod(whole, 86400)
    day = date.fromordinal(date(1970, 1, 1).toordinal() + days)
    hh, rest = divmod(rest, 3600)
    mm, ss = divmod(rest, 60)
    text = f"{day.isoformat()}T{hh:02d}:{mm:02d}:{ss:02d}"
    if fraction:
        text += str(fraction)[1:]
    if offset_min == 0:
        return text + draw(st.sampled_from(["Z", "+00:00", "+0000", "-00"]))
    sign = "+" if offset_min > 0 else "-"
    oh, om = divmod(abs(offset_min), 60)
    return text + f"{sign}{oh:02d}:{om:02d}"


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[str, bytes]]:
    count = draw(st.integers(1, 30))
    out: list[tuple[str, bytes]] = []
    ids: list[str] = []
    for n in range(count):
        kind = draw(st.sampled_from(["new"] * 10 + ["dup", "invalid", "replay"]))
        if kind == "replay" and out:
            out.append(draw(st.sampled_from(out)))
            continue
        if kind == "invalid":
            out.append(
                (
                    f"{n:05d}",
                    draw(st.sampled_from([b"{bad", b'{"transaction_id": "x", "amount": 1}'])),
                )
            )
            continue
        tid = draw(st.sampled_from(ids)) if kind == "dup" and ids else f"t{n}"
        ids.append(tid)
        obj: dict[str, Any] = {
            "transaction_id": tid,
            "account_id": draw(st.sampled_from(["acct-1", "acct-2", "acct-3"])),
            "amount": Decimal(draw(st.sampled_from(AMOUNTS))),
            "timestamp": draw(timestamps()),
        }
        balance = draw(st.sampled_from(BALANCES))
        if balance is not None:
            obj["account_balance"] = Decimal(balance)
        point = draw(st.sampled_from(POINTS))
        if point is not None:
            obj["latitude"], obj["longitude"] = point
        device = draw(st.sampled_from([None, "dev-1", "dev-2", "dev-3"]))
        if device is not None:
            obj["device_id"] = device
        countries = draw(st.sampled_from([None, ("DE", "DE"), ("DE", "fr"), ("at", "AT")]))
        if countries is not None:
            obj["origin_country"], obj["destination_country"] = countries
        text = "{" + ", ".join(f"{json.dumps(k)}: {_literal(v)}" for k, v in obj.items()) + "}"
        out.append((f"{n:05d}", text.encode()))
    return out


configs = st.builds(
    lambda enabled, vmax, vwin, cmin, cwin, speed: replace(
        DEFAULT,
        enabled=frozenset(enabled),
        velocity_max_count=vmax,
        velocity_window_s=Decimal(vwin),
        card_testing_min_count=cmin,
        card_testing_window_s=Decimal(cwin),
        travel_max_speed_kmh=speed,
    ),
    st.sampled_from([RULE_IDS, RULE_IDS, RULE_IDS[:3], RULE_IDS[3:], ("impossible_travel",)]),
    st.sampled_from([3, 3, 1, 2]),
    st.sampled_from(["60", "60", "0.5", "300"]),
    st.sampled_from([5, 5, 2]),
    st.sampled_from(["600", "600", "1"]),
    st.sampled_from([900.0, 900.0, 5000.0]),
)


def judge_stream(
    records: Sequence[tuple[str, bytes]], config: RulesConfig, rng: random.Random
) -> list[tuple[str, str, frozenset[str]]]:
    """judge() over a stream, with histories built naively from everything earlier; also checks
    that dropping history older than the state horizon or reordering it changes nothing."""
    index_of: dict[str, int] = {}
    first_of_id: dict[str, str] = {}
    judged: list[tuple[int, str, Transaction]] = []  # (stream index, position, txn)
    horizon = state_horizon_s(config)
    out: list[tuple[str, str, frozenset[str]]] = []
    for position, data in records:
        index = index_of.setdefault(position, len(index_of))
        parsed = parse_transaction(data)
        if isinstance(parsed, InvalidRecord):
            out.append((position, "invalid", frozenset()))
            continue
        if first_of_id.setdefault(parsed.transaction_id, position) != position:
            out.append((position, "duplicate", frozenset()))
            continue
        earlier = [
            t
            for i, _, t in sorted(judged, key=lambda j: j[0])
            if i < index and t.account_id == parsed.account_id
        ]
        history = history_of(earlier, parsed)
        decision = judge(parsed, history, config)
        shuffled = list(history.recent)
        rng.shuffle(shuffled)
        low = parsed.event_time - horizon
        pruned = [e for e in shuffled if e.event_time > low]
        assert judge(parsed, structs.replace(history, recent=pruned), config) == decision
        severities = {config.severities[r.rule] for r in decision.reasons}
        if decision.flagged:
            assert decision.severity is not None
            assert all(severity_at_least(decision.severity, s) for s in severities)
        assert [r.rule for r in decision.reasons] == [
            r for r in RULE_IDS if r in set(rules(decision))
        ]
        out.append((position, "judged", frozenset(rules(decision))))
        if all(p != position for _, p, _ in judged):
            judged.append((index, position, parsed))
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=streams(), config=configs, seed=st.integers(0, 2**16))
def test_judge_agrees_with_the_oracle(
    records: list[tuple[str, bytes]], config: RulesConfig, seed: int
) -> None:
    assert judge_stream(records, config, random.Random(seed)) == reference_decisions(
        records, config
    )


# --- a rule that raises: the others still decide (engine.judge_rule_by_rule) -----------------


def test_rule_by_rule_covers_every_rule_in_rule_id_order() -> None:
    from consumer.rules import engine

    assert tuple(rule for rule, _ in engine._ALONE) == RULE_IDS


def _sorted_history(history: AccountHistory) -> AccountHistory:
    ordered = sorted(history.recent, key=lambda e: (e.event_time, e.position))
    return structs.replace(history, recent=ordered, ascending=True)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=streams(), config=configs)
def test_rule_by_rule_decides_as_judge_when_nothing_raises(
    records: list[tuple[str, bytes]], config: RulesConfig
) -> None:
    from consumer.rules.engine import judge_rule_by_rule

    earlier: list[Transaction] = []
    for _, data in records:
        parsed = parse_transaction(data)
        if isinstance(parsed, InvalidRecord):
            continue
        history = history_of(earlier, parsed)
        for seen in (history, _sorted_history(history)):
            assert judge_rule_by_rule(parsed, seen, config) == (judge(parsed, seen, config), ())
        earlier.append(parsed)


def _boom(*args: Any) -> Any:
    raise ArithmeticError(f"{ACCOUNT} 4111111111111111")  # text that must not travel


def test_a_contract_rule_that_raises_does_not_fire_and_the_others_decide(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from consumer.rules import engine

    earlier = [txn(at=i, loc=BERLIN, device_id="old") for i in range(3)]
    t = txn(
        at=10,
        amount="20000",
        account_balance="100",
        origin_country="DE",
        destination_country="FR",
        loc=NEW_YORK,
        device_id="new",
    )
    history = history_of(earlier, t)
    monkeypatch.setattr(engine, "velocity", _boom)
    with pytest.raises(ArithmeticError):
        judge(t, history, DEFAULT)
    decision, errors = engine.judge_rule_by_rule(t, history, DEFAULT)
    assert rules(decision) == [
        "high_amount",
        "cross_border",
        "low_balance_high_amount",
        "impossible_travel",
        "new_device_high_amount",
    ]
    assert decision.severity == "high"
    assert errors == (("velocity", "ArithmeticError"),)
    # A disabled rule does not run, so it cannot fail.
    without = replace(DEFAULT, enabled=frozenset(RULE_IDS) - {"velocity"})
    assert engine.judge_rule_by_rule(t, history, without) == (judge(t, history, without), ())


def test_the_shared_history_pass_failing_costs_only_the_windowed_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from consumer.rules import engine

    small = [txn(at=i, amount="1", loc=BERLIN) for i in range(4)]
    t = txn(at=5, amount="1", origin_country="DE", destination_country="FR", loc=NEW_YORK)
    history = history_of(small, t)
    assert rules(judge(t, history, DEFAULT)) == [
        "velocity",
        "cross_border",
        "impossible_travel",
        "card_testing",
    ]
    monkeypatch.setattr(engine, "scan", _boom)
    decision, errors = engine.judge_rule_by_rule(t, history, DEFAULT)
    assert rules(decision) == ["cross_border"]
    assert decision.severity == "low"
    assert errors == (
        ("velocity", "ArithmeticError"),
        ("impossible_travel", "ArithmeticError"),
        ("card_testing", "ArithmeticError"),
    )
    # Without history there is no pass to fail.
    assert engine.judge_rule_by_rule(t, EMPTY_HISTORY, DEFAULT) == (
        judge(t, EMPTY_HISTORY, DEFAULT),
        (),
    )
