"""A history in ascending (event_time, position) order is read newest first, stopping early
(AccountHistory.ascending): the answers must be exactly those of the full pass in any order.

Histories here are drawn with many equal event times, equal positions, mixed exponents,
missing coordinates and entries later than the transaction, then sorted as the flag promises."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import structs

from consumer.records import Transaction, parse_transaction
from consumer.rules import AccountHistory, HistoryEntry
from consumer.rules.config import RulesConfig
from consumer.rules.engine import judge
from consumer.rules.features import WINDOWS, Facts, FeaturePlan
from consumer.rules.scan import scan

BASE_S = 1_795_510_800  # 2026-11-24T09:00:00Z

_offsets = st.sampled_from([-90_000, -86_400, -3_600, -700, -600, -61, -60, -59, -1, 0, 1, 5])
_times = st.builds(
    lambda offset, fraction: Decimal(BASE_S + offset) + fraction,
    _offsets,
    st.sampled_from([Decimal(0), Decimal("0.000"), Decimal("0.5"), Decimal("0.0001")]),
)
_amounts = st.sampled_from(
    [
        Decimal("0.50"),
        Decimal("1"),
        Decimal("4.99"),
        Decimal("5.00"),
        Decimal("120.10"),
        Decimal("9E+3"),
    ]
)
_coordinates = st.none() | st.floats(-89, 89)
_entries = st.builds(
    HistoryEntry,
    st.tuples(st.integers(0, 6), st.just(0)),
    _times,
    _amounts,
    _coordinates,
    _coordinates,
    st.sampled_from([None, "FR", "DE", "US"]),
)


def _in_order(entries: list[HistoryEntry]) -> list[HistoryEntry]:
    return sorted(entries, key=lambda e: (e.event_time, e.position))


@settings(max_examples=600)
@given(
    st.lists(_entries, max_size=14),
    _times,
    st.sampled_from([Decimal(0), Decimal(1), Decimal(60), Decimal("600.5"), Decimal(3600)]),
    st.sampled_from([Decimal(0), Decimal(60), Decimal(600), Decimal(86_400)]),
    _amounts,
    st.booleans(),
)
def test_scan_newest_first_equals_the_full_pass(
    drawn: list[HistoryEntry],
    t: Decimal,
    velocity_w: Decimal,
    card_w: Decimal,
    card_max: Decimal,
    travel: bool,
) -> None:
    recent = _in_order(drawn)
    args = (recent, t, t - velocity_w, t - card_w, card_max, travel)
    full = scan(*args)
    newest_first = scan(*args, ascending=True)
    assert newest_first[:2] == full[:2]
    assert newest_first[2] is full[2]  # the very entry, not an equal one


def _txn(t: Decimal, amount: str, lat: float | None, country: str) -> Transaction:
    record: dict[str, Any] = {
        "transaction_id": "t-1",
        "account_id": "acct-1",
        "timestamp": int(t * 1000),
        "destination_country": country,
        "device_id": "dev-1",
    }
    if lat is not None:
        record |= {"latitude": lat, "longitude": 2.35}
    body = json.dumps(record)[:-1] + f', "amount": {amount}}}'
    parsed = parse_transaction(body.encode())
    assert isinstance(parsed, Transaction), parsed
    return parsed


_NAMES = frozenset(
    f"{family}_{suffix}"
    for family in ("txn_count", "amount_sum", "distinct_countries")
    for suffix in WINDOWS
) | {"km_from_last", "speed_kmh_from_last"}


@settings(max_examples=400)
@given(
    st.lists(_entries, max_size=14),
    st.sampled_from([-90_000, -3_600, -60, 0, 1]),
    st.sampled_from(["0.50", "4.99", "6000"]),
    _coordinates,
    st.sampled_from(["FR", "GB"]),
)
def test_features_and_contract_rules_newest_first_equal_the_full_pass(
    drawn: list[HistoryEntry], offset: int, amount: str, lat: float | None, country: str
) -> None:
    txn = _txn(Decimal(BASE_S + offset), amount, lat, country)
    unknown = AccountHistory(recent=_in_order(drawn), has_earlier=bool(drawn))
    known = structs.replace(unknown, ascending=True)
    plan = FeaturePlan.for_names(_NAMES)
    values = []
    for history in (unknown, known):
        facts = Facts(txn, history, plan)
        for name in sorted(_NAMES):
            facts.derived(name)
        values.append({k: (v, str(v)) for k, v in facts.values.items()})  # exponents too
    assert values[0] == values[1]
    config = RulesConfig()
    assert judge(txn, known, config) == judge(txn, unknown, config)
