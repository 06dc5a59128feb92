"""features_for's one-pass row against the row built from the rule set's own history features
(consumer.rules.features.Facts, consumer.rules.scan), bit for bit, on random histories; and the
scorer's encoding against a value-by-value one.

`reference_row` is the previous features_for (three passes: the horizon filter, Facts' window
pass and travel scan, then the usual-amount pass). It reads the rules' definitions directly, so
a change to either side that breaks "txn_count_1h means here what it means in a custom rule",
or the training rows' bits, fails here."""

from __future__ import annotations

import math
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from msgspec import structs

from consumer.model.features import (
    _WINDOWED,
    FEATURE_NAMES,
    MAX_SPEED_KMH,
    MODEL_HORIZON_S,
    NUMERIC_FEATURES,
    SMALL_AMOUNT,
    FeatureRow,
    features_for,
    profile_features,
)
from consumer.model.scorer import ModelScorer
from consumer.records import Transaction
from consumer.rules.exact import EXACT
from consumer.rules.features import Facts, FeaturePlan
from consumer.rules.history import AccountHistory, HistoryEntry
from consumer.rules.profile import DEFAULT_LABEL_DELAY_DAYS

_PLAN = FeaturePlan.for_names(frozenset(_WINDOWED))
_NAN = math.nan


def _num(value: object) -> float:
    return _NAN if value is None else float(value)  # type: ignore[arg-type]


def reference_row(txn: Transaction, history: AccountHistory) -> FeatureRow:
    """The row as features_for built it before the one-pass version (same arithmetic)."""
    t = txn.event_time
    horizon = EXACT.subtract(t, MODEL_HORIZON_S)
    recent = history.recent
    if any(entry.event_time <= horizon for entry in recent):
        history = structs.replace(history, recent=[e for e in recent if e.event_time > horizon])
    facts = Facts(txn, history, _PLAN)
    facts.window_features()
    windowed = facts.values
    derived = facts.derived
    amount = float(txn.amount)
    balance = txn.account_balance
    low_10m = EXACT.subtract(t, 600)
    amounts: list[float] = []
    last = None
    small = 1 if txn.amount <= SMALL_AMOUNT else 0
    for entry in history.recent:
        at = entry.event_time
        if at <= t:
            amounts.append(float(entry.amount))
            if last is None or at > last:
                last = at
            if at > low_10m and entry.amount <= SMALL_AMOUNT:
                small += 1
    if amounts:
        mean = sum(amounts) / len(amounts)
        to_mean = amount / mean if mean > 0 else _NAN
        ordered = sorted(amounts)
        half, odd = divmod(len(ordered), 2)
        mid = ordered[half] if odd else (ordered[half - 1] + ordered[half]) / 2.0
        to_median = amount / mid if mid > 0 else _NAN
    else:
        to_mean = to_median = _NAN
    since_last = _NAN if last is None else float(EXACT.subtract(t, last))
    speed = derived("speed_kmh_from_last")
    created = txn.account_created_at
    origin = txn.origin_country
    destination = txn.destination_country
    return (
        amount,
        _num(balance),
        amount / float(balance) if balance is not None and balance > 0 else _NAN,
        *[float(windowed[name]) for name in _WINDOWED],
        float(small),
        float(len(amounts)),
        to_mean,
        to_median,
        since_last,
        _num(derived("km_from_last")),
        _NAN if speed is None else min(speed, MAX_SPEED_KMH),
        1.0 if txn.latitude is not None and txn.longitude is not None else 0.0,
        1.0 if derived("new_device") else 0.0,
        1.0 if derived("new_country") else 0.0,
        1.0 if derived("first_transaction") else 0.0,
        1.0 if origin is not None and destination is not None and origin != destination else 0.0,
        float(int(t.to_integral_value(rounding=ROUND_FLOOR)) // 3600 % 24),
        _NAN if created is None else float(EXACT.subtract(t, created)) / 86400.0,
        # The profile part reads no history entry: test_model.py holds it to its definition.
        *profile_features(txn, history, DEFAULT_LABEL_DELAY_DAYS),
        txn.channel,
        txn.merchant_category,
    )


def bits(row: FeatureRow) -> list[tuple[str, str]]:
    """Each value's type and repr: repr round-trips a float exactly (and tells -0.0, inf, NaN)."""
    return [(type(value).__name__, repr(value)) for value in row]


T = Decimal("1795510800.125")  # 2026-11-24T09:00:00.125Z
# Offsets from t where a feature's answer changes: the window bounds (exactly on them, just
# inside, just outside), t itself, and later than t (a late transaction's history).
EDGES = [
    Decimal(s) + Decimal(d) for s in (-86400, -3600, -600, -60, 0) for d in ("-0.001", "0", "0.001")
] + [Decimal("0.5"), Decimal(7200)]

offsets = st.one_of(
    st.sampled_from(EDGES),
    st.integers(min_value=-90_000, max_value=90_000).map(lambda ms: Decimal(ms).scaleb(-1)),
    st.integers(min_value=-90_000_000, max_value=100_000).map(lambda ms: Decimal(ms).scaleb(-3)),
)
amounts = st.one_of(
    st.sampled_from([Decimal(v) for v in ("5", "5.00", "4.99", "5.01", "0.01", "1E+2", "0")]),
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("20000"), places=2),
    st.decimals(min_value=Decimal("0.001"), max_value=Decimal("99.999"), places=3),
)
coordinates = st.one_of(st.none(), st.floats(min_value=-90, max_value=90, allow_nan=False))
countries = st.one_of(st.none(), st.sampled_from(["FR", "DE", "US"]))


@st.composite
def entries(draw: st.DrawFn, pool: list[Decimal]) -> HistoryEntry:
    # Times from a small pool too, so that equal event times (and equal positions) occur.
    offset = draw(st.one_of(offsets, st.sampled_from(pool)))
    return HistoryEntry(
        position=(draw(st.integers(0, 6)), draw(st.integers(0, 1))),
        event_time=T + offset,
        amount=draw(amounts),
        latitude=draw(coordinates),
        longitude=draw(coordinates),
        country=draw(countries),
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[Transaction, AccountHistory]:
    pool = draw(st.lists(offsets, min_size=1, max_size=3))
    recent = draw(st.lists(entries(pool), max_size=25))
    ascending = draw(st.booleans())
    if ascending:  # what a replay of in-order records gives, and says
        recent.sort(key=lambda e: (e.event_time, e.position))
    lat = draw(coordinates)
    txn = Transaction(
        transaction_id="t",
        account_id="a",
        amount=draw(amounts),
        event_time=T + draw(st.sampled_from([Decimal(0), Decimal("0.875"), Decimal(-1)])),
        currency="USD",
        account_balance=draw(st.one_of(st.none(), amounts, st.just(Decimal("-3")))),
        origin_country=draw(countries),
        destination_country=draw(countries),
        latitude=lat,
        longitude=draw(st.one_of(st.just(lat), coordinates)),
        merchant_id=None,
        merchant_category=draw(st.one_of(st.none(), st.sampled_from(["grocery", "travel"]))),
        channel=draw(st.one_of(st.none(), st.sampled_from(["online", "atm"]))),
        device_id=draw(st.one_of(st.none(), st.just("d1"))),
        ip_address=None,
        account_created_at=draw(st.one_of(st.none(), st.just(T - Decimal("86400.5")))),
        raw={},
    )
    history = AccountHistory(
        recent=draw(st.sampled_from([recent, tuple(recent)])),
        device_seen_before=draw(st.booleans()),
        has_earlier=bool(recent) or draw(st.booleans()),
        country_seen_before=draw(st.booleans()),
        ascending=ascending,
    )
    return txn, history


def located(at: str, lat: float, position: tuple[int, int], amount: str = "3") -> HistoryEntry:
    return HistoryEntry(position, T + Decimal(at), Decimal(amount), lat, 2.0, "FR")


def plain_txn(**fields: Any) -> Transaction:
    base: dict[str, Any] = {
        "transaction_id": "t",
        "account_id": "a",
        "amount": Decimal("4.00"),
        "event_time": T,
        "currency": "USD",
        "account_balance": None,
        "origin_country": "FR",
        "destination_country": "DE",
        "latitude": 48.0,
        "longitude": 2.0,
        "merchant_id": None,
        "merchant_category": None,
        "channel": None,
        "device_id": None,
        "ip_address": None,
        "account_created_at": None,
        "raw": {},
    }
    base.update(fields)
    return Transaction(**base)


@settings(max_examples=600, deadline=None)
@given(cases())
# Equal event times before t: the travel point is the latest in the stream (position), and
# among equal positions the last in the history; the 10 min bound is exclusive.
@example(
    (
        plain_txn(),
        AccountHistory(
            recent=(
                located("-30", 40.0, (2, 0)),
                located("-30", 41.0, (1, 0)),
                located("-30", 42.0, (2, 0)),
                located("-600", 43.0, (3, 0)),
                located("0", 44.0, (4, 0)),
            ),
            has_earlier=True,
        ),
    )
)
# An in-order history with entries beyond the horizon (cut by bisection) and a late one.
@example(
    (
        plain_txn(event_time=T - Decimal(10)),
        AccountHistory(
            recent=(
                located("-90000", 40.0, (0, 0)),
                located("-86410", 41.0, (1, 0)),
                located("-86409.999", 42.0, (2, 0)),
                located("-20", 43.0, (3, 0), "5.00"),
                located("5", 44.0, (4, 0)),
            ),
            has_earlier=True,
            ascending=True,
        ),
    )
)
@example((plain_txn(latitude=None), AccountHistory()))
def test_the_one_pass_row_is_the_rule_features_row_to_the_bit(
    case: tuple[Transaction, AccountHistory],
) -> None:
    txn, history = case
    assert bits(features_for(txn, history)) == bits(reference_row(txn, history))
    if history.ascending:  # the same history read without the in-order shortcut
        unordered = structs.replace(history, ascending=False)
        assert bits(features_for(txn, unordered)) == bits(reference_row(txn, unordered))


def test_the_one_pass_row_equals_the_reference_on_a_realistic_stream(labelled: Path) -> None:
    """The training data's own histories (the backtest builder: mostly in order, some late)."""
    from consumer.model.dataset import judged

    pairs = [(t, h) for _, t, h in judged(labelled)]
    assert any(h.ascending for _, h in pairs) and any(len(h.recent) > 20 for _, h in pairs)
    different = [
        t.transaction_id for t, h in pairs if bits(features_for(t, h)) != bits(reference_row(t, h))
    ]
    assert different == []


def reference_matrix(scorer: ModelScorer, rows: list[FeatureRow]) -> Any:
    """The scorer's input written value by value: numbers as floats, categories as their index
    in the model's vocabulary (else NaN), masked features NaN."""
    categories = scorer._encoder._codes  # (column, value -> code)
    by_column = dict(categories)
    masked = {FEATURE_NAMES.index(name) for name in scorer.masked}
    out = np.full((len(rows), len(FEATURE_NAMES)), np.nan)
    for i, row in enumerate(rows):
        for c, value in enumerate(row):
            if c in masked:
                continue
            if c in by_column:
                code = by_column[c].get(value)  # type: ignore[arg-type]
                out[i, c] = np.nan if code is None else code
            else:
                out[i, c] = value
    return out


def test_the_encoding_is_the_value_by_value_matrix(model_dir: Path, labelled: Path) -> None:
    from consumer.model.dataset import load_dataset

    scorer = ModelScorer.load(model_dir)
    rows = load_dataset(labelled).rows[:400]
    odd: FeatureRow = (*rows[0][: len(NUMERIC_FEATURES)], None, "never-seen-before")
    rows = [*rows, odd]
    matrix = scorer.encode(rows)
    assert matrix.dtype == np.float64
    assert np.array_equal(matrix, reference_matrix(scorer, rows), equal_nan=True)
    assert np.isnan(matrix[-1, len(NUMERIC_FEATURES) :]).all()
    assert scorer.encode([]).shape == (0, len(FEATURE_NAMES))
