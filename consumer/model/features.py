"""The model's features: what the stream's history can give about one transaction.

The history features mean exactly what the rule set's (consumer.rules.features.Facts) mean, so
a window count is what `txn_count_1h` is in a custom rule: the account's transactions earlier in
the stream, within the window in event time, this one included. They are computed here in one
pass over the history (the hot path's cost), and tests/unit/model/test_model_features.py holds every
row equal, bit for bit, to the row built from Facts and consumer.rules.scan themselves.

A row is a tuple with one value per FEATURE_NAMES entry: numbers as floats (NaN when absent,
booleans 0/1) and the categorical features as their raw strings (None when absent); the scorer
encodes those with the model's own vocabulary (features.json), so an unseen merchant category is
"missing", never an error.

The country features need the history's countries (HistoryEntry.country, country_seen_before),
which the worker's state store keeps (consumer/state/store.py) and the offline histories fill.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_FLOOR, Decimal
from operator import attrgetter

from consumer.records import Transaction
from consumer.rules.exact import EXACT
from consumer.rules.geo import haversine_km
from consumer.rules.history import AccountHistory, HistoryEntry
from consumer.rules.profile import (
    DAY_S,
    DEFAULT_LABEL_DELAY_DAYS,
    EMPTY_PROFILE,
    FEW_DAYS,
    WINDOW_DAYS,
    DayTotals,
    Profile,
    account_spends,
    day_of,
    merchant_counts,
    merchant_windows,
)

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

# From the long-horizon profiles (consumer/rules/profile.py): the account's spend over whole
# days before today, the merchant's transactions and known frauds over windows shifted by the
# label delay, and the frauds known at the merchant over the last 30 days.
PROFILE_FEATURES: tuple[str, ...] = (
    *(
        f"{name}_{w}d"
        for w in WINDOW_DAYS
        for name in (
            "account_count",
            "account_mean",
            "account_std",
            "amount_to_account_mean",
            "amount_zscore",
        )
    ),
    *(
        f"{name}_{w}d"
        for w in WINDOW_DAYS
        for name in ("merchant_count", "merchant_frauds", "merchant_risk")
    ),
    "merchant_known_frauds_30d",
    "merchant_days_since_known_fraud",
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
    *PROFILE_FEATURES,
)
CATEGORICAL_FEATURES: tuple[str, ...] = ("channel", "merchant_category")
FEATURE_NAMES: tuple[str, ...] = (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES)
# Features the worker's state store cannot give: `fraudstream train` trains them as missing
# (features.json "masked"), and the worker refuses a model that was not. Empty: the store gives
# every feature. A model that masked more still loads and scores those as missing, as it learned
# (models that masked the country features: docs/model.md, "Country features").
STREAM_UNAVAILABLE: tuple[str, ...] = ()

FeatureValue = float | str | None
FeatureRow = tuple[FeatureValue, ...]

# PROFILE_FEATURES of an account without whole days in the windows, and of a merchant without
# transactions in them or known frauds: what the general computation gives for those.
_NO_ACCOUNT_VALUES: tuple[float, ...] = (0.0, math.nan, math.nan, math.nan, math.nan) * len(
    WINDOW_DAYS
)
_WIDEST = WINDOW_DAYS[-1]
_NO_KNOWN_FRAUD: tuple[float, ...] = (0.0, math.nan)  # merchant_known_frauds_30d, days since
_NO_MERCHANT_VALUES: tuple[float, ...] = (0.0, 0.0, math.nan) * len(WINDOW_DAYS) + _NO_KNOWN_FRAUD
_SMALL = Decimal(SMALL_AMOUNT)  # a Decimal compares faster with a Decimal than with an int
_ZERO = Decimal(0)
_NAN = math.nan
_INF = math.inf
_event_time = attrgetter("event_time")


def features_for(
    txn: Transaction, history: AccountHistory, delay_days: int = DEFAULT_LABEL_DELAY_DAYS
) -> FeatureRow:
    """One row for `txn`, which `history` (its account, earlier in the stream) precedes.

    Every feature reads the account's history within MODEL_HORIZON_S of `txn` only, whatever
    else the history holds (the worker's store keeps a lateness allowance more; an offline
    builder may keep less), so training and the stream compute the same row.

    Per transaction on the hot path when a model scores, so every history feature comes from
    one pass over the history: the rule set's window features (consumer.rules.features.Facts,
    same bounds, exact Decimal sums), the usual amount, the last event time, the small charges
    and the travel point of consumer.rules.scan. tests/unit/model/test_model_features.py holds the
    row equal, bit for bit, to one built from Facts and scan themselves."""
    t = txn.event_time
    subtract = EXACT.subtract
    horizon = subtract(t, MODEL_HORIZON_S)  # also the 24 h window's bound
    low_1h = subtract(t, 3600)
    low_10m = subtract(t, 600)
    low_1m = subtract(t, 60)
    recent = history.recent
    lat = txn.latitude
    lon = txn.longitude
    travel = lat is not None and lon is not None
    small = 1 if txn.amount <= _SMALL else 0
    add = EXACT.add
    # Per window, the entries in it but in no narrower one (windows nest): count, exact sum.
    n_1m = n_10m = n_1h = n_24h = 0
    s_1m: Decimal | None = None
    s_10m: Decimal | None = None
    s_1h: Decimal | None = None
    s_24h: Decimal | None = None
    countries_1h: set[str | None] = set()
    countries_24h: set[str | None] = set()
    amounts: list[float] = []  # in history order: their float sum is the mean's
    last = horizon  # below every entry counted: the latest event time once one is
    previous: HistoryEntry | None = None  # the travel point (consumer.rules.scan)
    if history.ascending:
        # In ascending (event_time, position) order: read newest first, as consumer.rules.scan
        # does. An entry is compared with its own window's lower bound only (the narrowest
        # first; a smaller time moves on to the next), the pass stops at the horizon, the
        # newest entry counted is the latest time, and the first located entry before t is the
        # travel point (of equal times, the latest in the stream comes first).
        band = 0  # 0: the 1 min window, 1: 10 min, 2: 1 h, 3: 24 h
        low = low_1m
        looking = travel
        for entry in reversed(recent):
            at = entry.event_time
            if at > t:
                continue
            if at <= low:
                if at <= horizon:
                    break
                band = 3 if at <= low_1h else 2 if at <= low_10m else 1
                low = horizon if band == 3 else low_1h if band == 2 else low_10m
            spent = entry.amount
            if last is horizon:
                last = at
            amounts.append(float(spent))
            if band == 0:
                n_1m += 1
                s_1m = spent if s_1m is None else add(s_1m, spent)
                countries_1h.add(entry.country)
                if spent <= _SMALL:
                    small += 1
            elif band == 1:
                n_10m += 1
                s_10m = spent if s_10m is None else add(s_10m, spent)
                countries_1h.add(entry.country)
                if spent <= _SMALL:
                    small += 1
            elif band == 2:
                n_1h += 1
                s_1h = spent if s_1h is None else add(s_1h, spent)
                countries_1h.add(entry.country)
            else:
                n_24h += 1
                s_24h = spent if s_24h is None else add(s_24h, spent)
                countries_24h.add(entry.country)
            if looking and at < t and entry.latitude is not None and entry.longitude is not None:
                previous = entry
                looking = False
        amounts.reverse()  # history order, as the mean's float sum takes them
        countries_24h |= countries_1h
    else:
        previous_t = horizon  # likewise: the first located entry before t takes its place
        for entry in recent:
            at = entry.event_time
            if at <= horizon or at > t:
                continue
            spent = entry.amount
            amounts.append(float(spent))
            if at > low_1h:
                countries_1h.add(entry.country)
                if at > low_10m:
                    if spent <= _SMALL:
                        small += 1
                    if at > low_1m:
                        n_1m += 1
                        s_1m = spent if s_1m is None else add(s_1m, spent)
                    else:
                        n_10m += 1
                        s_10m = spent if s_10m is None else add(s_10m, spent)
                else:
                    n_1h += 1
                    s_1h = spent if s_1h is None else add(s_1h, spent)
            else:
                n_24h += 1
                s_24h = spent if s_24h is None else add(s_24h, spent)
            countries_24h.add(entry.country)
            if at > last:
                last = at
            # The latest located entry strictly before t; of equal times, the latest in the stream.
            if (
                travel
                and at < t
                and (
                    at > previous_t
                    or (
                        at == previous_t
                        and previous is not None
                        and entry.position >= previous.position
                    )
                )
                and entry.latitude is not None
                and entry.longitude is not None
            ):
                previous = entry
                previous_t = at
    amount_d = txn.amount
    amount = float(amount_d)
    count_1m = 1 + n_1m
    count_10m = count_1m + n_10m
    count_1h = count_10m + n_1h
    sum_1m = amount_d if s_1m is None else add(amount_d, s_1m)
    sum_10m = sum_1m if s_10m is None else add(sum_1m, s_10m)
    sum_1h = sum_10m if s_1h is None else add(sum_10m, s_1h)
    sum_24h = sum_1h if s_24h is None else add(sum_1h, s_24h)
    # A window holding nothing beyond the narrower one has its sum, so its float too: a
    # Decimal's float conversion (docs/benchmarks.md#model-features) only where a sum grew.
    float_1m = amount if s_1m is None else float(sum_1m)
    float_10m = float_1m if s_10m is None else float(sum_10m)
    float_1h = float_10m if s_1h is None else float(sum_1h)
    float_24h = float_1h if s_24h is None else float(sum_24h)
    destination = txn.destination_country
    countries_1h.add(destination)
    countries_24h.add(destination)
    countries_1h.discard(None)
    countries_24h.discard(None)
    if amounts:
        mean = sum(amounts) / len(amounts)
        to_mean = amount / mean if mean > 0 else _NAN
        mid = _median(amounts)
        to_median = amount / mid if mid > 0 else _NAN
    else:
        to_mean = to_median = _NAN
    km = speed = _NAN
    if previous is not None:
        assert lat is not None and lon is not None
        assert previous.latitude is not None and previous.longitude is not None
        km = haversine_km(previous.latitude, previous.longitude, lat, lon)
        hours = float(subtract(t, previous.event_time)) / 3600.0
        speed = min(km / hours if hours > 0.0 else _INF, MAX_SPEED_KMH)
    seconds = _floor_seconds(t)
    # day_of(t), from the same int (from the epoch on, day_of is floor(t) // DAY_S).
    day = seconds // DAY_S if seconds >= 0 else day_of(t)
    balance = txn.account_balance
    if balance is None:
        balance_f = to_balance = _NAN
    else:
        balance_f = float(balance)
        to_balance = amount / balance_f if balance > _ZERO else _NAN
    created = txn.account_created_at
    origin = txn.origin_country
    has_earlier = history.has_earlier
    new_device = txn.device_id is not None and has_earlier and not history.device_seen_before
    new_country = destination is not None and has_earlier and not history.country_seen_before
    return (
        amount,
        balance_f,
        to_balance,
        float(count_1m),
        float(count_10m),
        float(count_1h),
        float(count_1h + n_24h),
        float_1m,
        float_10m,
        float_1h,
        float_24h,
        float(len(countries_1h)),
        float(len(countries_24h)),
        float(small),
        float(len(amounts)),
        to_mean,
        to_median,
        float(subtract(t, last)) if amounts else _NAN,
        km,
        speed,
        1.0 if travel else 0.0,
        1.0 if new_device else 0.0,
        1.0 if new_country else 0.0,
        0.0 if has_earlier else 1.0,
        1.0 if origin is not None and destination is not None and origin != destination else 0.0,
        float(seconds // 3600 % 24),
        _NAN if created is None else float(subtract(t, created)) / 86400.0,
        *_profile_values(history.profile or EMPTY_PROFILE, t, day, amount, delay_days),
        txn.channel,
        txn.merchant_category,
    )


def profile_features(
    txn: Transaction, history: AccountHistory, delay_days: int
) -> tuple[float, ...]:
    """The PROFILE_FEATURES of `txn` (consumer/rules/profile.py says what each window
    covers); an absent profile reads as an empty one."""
    t = txn.event_time
    return _profile_values(
        history.profile or EMPTY_PROFILE, t, day_of(t), float(txn.amount), delay_days
    )


def _profile_values(
    profile: Profile, t: Decimal, today: int, amount: float, delay_days: int
) -> tuple[float, ...]:
    """profile_features from what features_for has at hand already (the day, the float
    amount)."""
    return _account_values(profile.account_days, today, amount) + _merchant_values(
        profile, today, delay_days, t
    )


def _account_values(days: Mapping[int, DayTotals], today: int, amount: float) -> tuple[float, ...]:
    """The account's part of PROFILE_FEATURES. Most rows have no whole day before today (a new
    account, or one whose days are all today's): they take the one answer that gives."""
    if not _has_a_day_in(days, today - _WIDEST, today - 1):
        return _NO_ACCOUNT_VALUES
    spends = account_spends(days, today)
    values: list[float] = []
    for spend in spends:
        mean = spend.mean
        std = spend.std
        values += (
            float(spend.count),
            mean,
            std,
            amount / mean if mean > 0.0 else _NAN,
            (amount - mean) / std if std > 0.0 else _NAN,
        )
    return tuple(values)


def _merchant_values(
    profile: Profile, today: int, delay_days: int, at: Decimal
) -> tuple[float, ...]:
    """The merchant's part of PROFILE_FEATURES. Without labels (most merchants) there are no
    frauds to count: the transactions alone, and no pass over labels."""
    if profile.merchant_labels:
        return _merchant_values_with_labels(profile, today, delay_days, at)
    days = profile.merchant_days
    last = today - delay_days
    if not _has_a_day_in(days, last - _WIDEST + 1, last):
        return _NO_MERCHANT_VALUES
    counts = merchant_counts(days, last)
    values: list[float] = []
    for count in counts:
        values += (float(count), 0.0, 0.0 if count else _NAN)
    values += _NO_KNOWN_FRAUD
    return tuple(values)


def _has_a_day_in(days: Mapping[int, object], first: int, last: int) -> bool:
    """Whether `days` holds a day of `first..last`: looked at when they are a few, which is
    cheaper than the windows' sums that find none; more are taken to (the sums then say)."""
    if len(days) > FEW_DAYS:
        return True
    for day in days:  # noqa: SIM110 (any() over a generator costs more for a few days)
        if first <= day <= last:
            return True
    return False


def _merchant_values_with_labels(
    profile: Profile, today: int, delay_days: int, at: Decimal
) -> tuple[float, ...]:
    windows, known, latest = merchant_windows(profile, today, delay_days, at)
    values: list[float] = []
    for window in windows:
        values += (
            float(window.count),
            float(window.frauds),
            window.frauds / window.count if window.count else _NAN,
        )
    values.append(float(known))
    values.append(_NAN if latest is None else float(today - latest))
    return tuple(values)


def _floor_seconds(t: Decimal) -> int:
    """floor(t) as an int: from the epoch's second 1 on, the truncation int() gives, without
    the Decimal rounding."""
    seconds = int(t)
    return seconds if seconds > 0 else int(t.to_integral_value(rounding=ROUND_FLOOR))


def _median(values: list[float]) -> float:
    """statistics.median of floats, without its per-call copy and type checks (sorts `values`)."""
    values.sort()
    half, odd = divmod(len(values), 2)
    return values[half] if odd else (values[half - 1] + values[half]) / 2.0
