"""The model's features: what the stream's history can give about one transaction.

Built on the rule set's history features (consumer.rules.features.Facts), so a window count
means exactly what `txn_count_1h` means in a custom rule: the account's transactions earlier in
the stream, within the window in event time, this one included. A row is a tuple with one value
per FEATURE_NAMES entry: numbers as floats (NaN when absent, booleans 0/1) and the categorical
features as their raw strings (None when absent); the scorer encodes those with the model's own
vocabulary (features.json), so an unseen merchant category is "missing", never an error.

The country features need the history's countries (HistoryEntry.country, country_seen_before),
which the worker's state store keeps (consumer/state.py) and the offline histories fill.
"""

from __future__ import annotations

import math
from decimal import ROUND_FLOOR

from msgspec import structs

from consumer.records import Transaction
from consumer.rules.exact import EXACT
from consumer.rules.features import Facts, FeaturePlan
from consumer.rules.history import AccountHistory

# The longest window a feature reads (24 h): the worker's state store, and the offline history
# that training builds, keep at least this much.
MODEL_HORIZON_S = 86400
# Charges at or below this are "small" (the contract's card_testing amount).
SMALL_AMOUNT = 5
# Speeds above this (a gap too small to measure is infinite) are written as this.
MAX_SPEED_KMH = 1.0e6

_WINDOWED = (
    "txn_count_1m",
    "txn_count_10m",
    "txn_count_1h",
    "txn_count_24h",
    "amount_sum_1m",
    "amount_sum_10m",
    "amount_sum_1h",
    "amount_sum_24h",
    "distinct_countries_1h",
    "distinct_countries_24h",
)

NUMERIC_FEATURES: tuple[str, ...] = (
    "amount",
    "account_balance",
    "amount_to_balance",
    *_WINDOWED,
    "small_count_10m",
    "earlier_count",
    "amount_to_mean",
    "amount_to_median",
    "seconds_since_last",
    "km_from_last",
    "speed_kmh_from_last",
    "located",
    "new_device",
    "new_country",
    "first_transaction",
    "cross_border",
    "hour_of_day",
    "account_age_days",
)
CATEGORICAL_FEATURES: tuple[str, ...] = ("channel", "merchant_category")
FEATURE_NAMES: tuple[str, ...] = (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES)
# Features the worker's state store cannot give: `fraudstream train` trains them as missing
# (features.json "masked"), and the worker refuses a model that was not. None today: the store
# keeps countries since the models trained before that masked the three country features (they
# still load, and score those as missing, as they learned).
STREAM_UNAVAILABLE: tuple[str, ...] = ()

FeatureValue = float | str | None
FeatureRow = tuple[FeatureValue, ...]

_PLAN = FeaturePlan.for_names(frozenset(_WINDOWED))
_NAN = math.nan


def _num(value: object) -> float:
    return _NAN if value is None else float(value)  # type: ignore[arg-type]


def features_for(txn: Transaction, history: AccountHistory) -> FeatureRow:
    """One row for `txn`, which `history` (its account, earlier in the stream) precedes.

    Every feature reads the account's history within MODEL_HORIZON_S of `txn` only, whatever
    else the history holds (the worker's store keeps a lateness allowance more; an offline
    builder may keep less), so training and the stream compute the same row.

    Per transaction on the hot path when a model scores: the window features come from the
    rule features' one pass, read at once rather than name by name."""
    t = txn.event_time
    horizon = EXACT.subtract(t, MODEL_HORIZON_S)
    recent = history.recent
    for entry in recent:
        if entry.event_time <= horizon:
            history = structs.replace(history, recent=[e for e in recent if e.event_time > horizon])
            break
    facts = Facts(txn, history, _PLAN)
    facts.window_features()
    windowed = facts.values
    derived = facts.derived
    amount = float(txn.amount)
    balance = txn.account_balance
    # One pass over the history for the account's usual amount (its earlier transactions
    # within the history horizon), the last event time and the small charges of 10 minutes.
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
        mid = _median(amounts)
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
        txn.channel,
        txn.merchant_category,
    )


def _median(values: list[float]) -> float:
    """statistics.median of floats, without its per-call copy and type checks (sorts `values`)."""
    values.sort()
    half, odd = divmod(len(values), 2)
    return values[half] if odd else (values[half - 1] + values[half]) / 2.0
