"""The names a custom rule's `when` expression may read: the transaction's fields and history
features, with their types, and their computation from (Transaction, AccountHistory).

History features follow the contract rules' history semantics exactly: the history is the account's
transactions earlier in the stream (never later ones, so a replay decides the same), windows are in
event time, and "within W" of a transaction at t means `t - W < t' <= t` with the bound computed
exactly; like the contract's velocity rule, counts and sums include the transaction itself. A
feature is computed only when an expression asks for it, once per transaction (the `Facts` of that
transaction keeps it for the next rule), and all window features a rule set uses come from one pass
over the history: each window's entries are found by bisection in the history ordered by event time
(as stored when it is known to be ascending, read from the newest end; else sorted once, stably, and
shared with the travel point), then counted, summed and their countries collected by C-level loops,
not a Python loop per entry (cost against a full history: docs/rules-as-data.md#limits); a
hypothesis property holds them equal to an entry-by-entry computation.

The history holds what the state store keeps: entries within the rule set's state horizon
(RuleSet.state_horizon_s covers the longest window here) and at most the store's max_entries per
account, so a count over 24 h of an account busier than that is capped at it.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, localcontext
from itertools import islice
from operator import attrgetter
from typing import Any, Literal

from consumer.records import CHANNELS, Transaction
from consumer.rules.exact import EXACT
from consumer.rules.geo import haversine_km
from consumer.rules.history import AccountHistory, HistoryEntry
from consumer.rules.scan import scan

Kind = Literal["number", "string", "bool"]


@dataclass(frozen=True, slots=True)
class FieldType:
    """What the expression compiler knows about a name's values.

    `exact` numbers are Decimal or int (compared and added exactly); the others are floats
    (distances, speeds, coordinates). `nullable` values may be absent (None). `values` lists the
    only strings a field can hold (a literal outside it is a mistake caught at load time);
    `upper` fields are upper-cased by the record, so string literals compared with them are too.
    """

    kind: Kind
    nullable: bool = False
    exact: bool = True
    values: frozenset[str] | None = None
    upper: bool = False

    def describe(self) -> str:
        name = {"number": "a number", "string": "a string", "bool": "true or false"}[self.kind]
        return f"{name} (may be absent)" if self.nullable else name


@dataclass(frozen=True, slots=True)
class Feature:
    """One readable name: its type, a line of documentation and how to read it from Facts."""

    name: str
    type: FieldType
    doc: str
    get: Callable[[Facts], Any]
    # Event-time look-back in seconds (the state horizon must cover it); 0 for none.
    window_s: int = 0
    # Needs the countries of earlier transactions (HistoryEntry.country, country_seen_before).
    needs_countries: bool = False
    # An exact number whose digits no bound limits (account_age_s: event times keep every digit
    # of their fraction; amounts and balances keep the zeros written past the 18th place): the
    # `when` language rounds it to its precision before arithmetic, never before a comparison.
    long_digits: bool = False


# Window suffix -> seconds, for txn_count_<w>, amount_sum_<w> and distinct_countries_<w>.
WINDOWS: dict[str, int] = {"1m": 60, "10m": 600, "1h": 3600, "24h": 86400}

_MISSING = object()


class Facts:
    """One transaction as the expressions read it. History features are computed on first use
    and kept, so rules that share a feature compute it once."""

    __slots__ = ("_plan", "_sorted", "history", "txn", "values")

    def __init__(self, txn: Transaction, history: AccountHistory, plan: FeaturePlan) -> None:
        self.txn = txn
        self.history = history
        self._plan = plan
        self.values: dict[str, Any] = {}
        self._sorted: list[HistoryEntry] | None = None

    def derived(self, name: str) -> Any:
        value = self.values.get(name, _MISSING)
        if value is _MISSING:
            _COMPUTE[name](self)
            value = self.values.get(name, _MISSING)
            if value is _MISSING:  # a window feature the plan did not list: widen it
                self._plan = FeaturePlan.for_names(self._plan.names | {name})
                _COMPUTE[name](self)
                value = self.values[name]
        return value

    def _by_event_time(self) -> list[HistoryEntry]:
        """An unordered history sorted by event time, once per transaction. The sort is stable,
        so entries of equal event time stay in stream order."""
        ordered = self._sorted
        if ordered is None:
            ordered = self._sorted = sorted(self.history.recent, key=_EVENT_TIME)
        return ordered

    def _newest(self, widest: Decimal) -> list[HistoryEntry]:
        """Entries of an ascending history with an event time above `widest`, ascending: read
        from the newest end in chunks that double, so a long history costs what its windows
        hold (and a lazily built one, the backtest's, builds little more than that)."""
        taken: list[HistoryEntry] = []
        newest_first = reversed(self.history.recent)
        size = 8
        while True:
            chunk = list(islice(newest_first, size))
            taken += chunk
            if len(chunk) < size or chunk[-1].event_time <= widest:
                break
            size *= 2
        taken.reverse()
        return taken

    def window_features(self) -> None:
        """Every window feature the plan wants, from the history in event-time order: each
        window's entries found by bisection, counted, and their amounts added exactly (counts
        are ints, sums Decimal adds in the unbounded context; a window without entries adds
        nothing, not even a zero, so a sum prints as it did when it was added entry by entry;
        the order of exact additions changes neither the value nor the exponent)."""
        txn = self.txn
        t = txn.event_time
        plan = self._plan
        if not plan.windows:
            return
        subtract = EXACT.subtract
        lows = [subtract(t, seconds) for seconds in plan.windows]  # descending
        ordered = self._newest(lows[-1]) if self.history.ascending else self._by_event_time()
        # `t - W < t' <= t`: entries [lower, upper) of `ordered` for the widest window so far.
        upper = bisect_right(ordered, t, key=_EVENT_TIME)
        values = self.values
        count = 1  # this transaction itself
        total = txn.amount
        seen: set[str | None] = {txn.destination_country}
        want_sums = plan.sums
        want_countries = plan.countries
        for low, suffix in zip(lows, plan.suffixes, strict=True):
            lower = bisect_right(ordered, low, 0, upper, key=_EVENT_TIME)
            if lower < upper:
                count += upper - lower
                if want_sums:
                    total = _exact_sum(ordered, lower, upper, total)
                if want_countries:
                    seen.update(map(_COUNTRY, ordered[lower:upper]))
            values["txn_count_" + suffix] = count
            if want_sums:
                values["amount_sum_" + suffix] = total
            if want_countries:
                values["distinct_countries_" + suffix] = len(seen - {None})
            upper = lower

    def travel_features(self) -> None:
        """Distance and speed from the point impossible_travel compares with: of the located
        history with a strictly earlier event time, the latest (ties: latest in the stream)."""
        txn = self.txn
        km: float | None = None
        speed: float | None = None
        lat = txn.latitude
        lon = txn.longitude
        if lat is not None and lon is not None and self.history.recent:
            t = txn.event_time
            history = self.history
            if history.ascending:  # newest first, up to the first located entry before t
                _, _, previous = scan(history.recent, t, t, t, Decimal(0), True, True)
            else:
                previous = _travel_point(self._by_event_time(), t)
            if previous is not None and previous.latitude is not None:
                assert previous.longitude is not None
                km = haversine_km(previous.latitude, previous.longitude, lat, lon)
                hours = float(EXACT.subtract(t, previous.event_time)) / 3600.0
                speed = km / hours if hours > 0.0 else math.inf
        self.values["km_from_last"] = km
        self.values["speed_kmh_from_last"] = speed


_EVENT_TIME = attrgetter("event_time")
_AMOUNT = attrgetter("amount")
_COUNTRY = attrgetter("country")
_SMALL_SUM = 16  # up to this many amounts, added one by one; more, by sum() in EXACT


def _exact_sum(entries: list[HistoryEntry], lower: int, upper: int, total: Decimal) -> Decimal:
    """`total` plus the amounts of entries[lower:upper], exactly."""
    add = EXACT.add
    if upper - lower <= _SMALL_SUM:
        for index in range(lower, upper):
            total = add(total, entries[index].amount)
        return total
    with localcontext(EXACT):  # sum() adds in the current context: the unbounded one
        result: Decimal = sum(map(_AMOUNT, entries[lower:upper]), total)
    return result


def _travel_point(ordered: list[HistoryEntry], t: Decimal) -> HistoryEntry | None:
    """consumer.rules.scan's travel point, found in a history sorted (stably) by event time: the
    located entry with the latest event time before t; among several sharing it, the greatest
    position, and for equal positions the last in stream order."""
    index = bisect_left(ordered, t, key=_EVENT_TIME) - 1
    while index >= 0:
        entry = ordered[index]
        if entry.latitude is not None and entry.longitude is not None:
            break
        index -= 1
    else:
        return None
    best = ordered[index]
    at = best.event_time
    index -= 1
    while index >= 0:
        entry = ordered[index]
        if entry.event_time != at:
            break
        if (
            entry.latitude is not None
            and entry.longitude is not None
            and entry.position > best.position
        ):
            best = entry
        index -= 1
    return best


@dataclass(frozen=True, slots=True)
class FeaturePlan:
    """The window features a rule set reads, so that one history pass computes all of them."""

    windows: tuple[Decimal, ...] = ()  # seconds, ascending
    suffixes: tuple[str, ...] = ()  # the matching WINDOWS keys
    sums: bool = False
    countries: bool = False
    names: frozenset[str] = frozenset()

    @staticmethod
    def for_names(names: frozenset[str]) -> FeaturePlan:
        wanted = [
            (seconds, suffix)
            for suffix, seconds in WINDOWS.items()
            if any(
                f"{family}_{suffix}" in names
                for family in ("txn_count", "amount_sum", "distinct_countries")
            )
        ]
        wanted.sort()
        return FeaturePlan(
            windows=tuple(Decimal(seconds) for seconds, _ in wanted),
            suffixes=tuple(suffix for _, suffix in wanted),
            sums=any(name.startswith("amount_sum_") for name in names),
            countries=any(name.startswith("distinct_countries_") for name in names),
            names=names,
        )


def _field(attribute: str) -> Callable[[Facts], Any]:
    return attrgetter("txn." + attribute)


def _derived(name: str) -> Callable[[Facts], Any]:
    def get(facts: Facts) -> Any:
        # Computed already (every read after the first): one dict lookup, no further call.
        value = facts.values.get(name, _MISSING)
        return facts.derived(name) if value is _MISSING else value

    return get


def _new_device(facts: Facts) -> None:
    history = facts.history
    facts.values["new_device"] = (
        facts.txn.device_id is not None and history.has_earlier and not history.device_seen_before
    )


def _new_country(facts: Facts) -> None:
    history = facts.history
    facts.values["new_country"] = (
        facts.txn.destination_country is not None
        and history.has_earlier
        and not history.country_seen_before
    )


def _first_transaction(facts: Facts) -> None:
    facts.values["first_transaction"] = not facts.history.has_earlier


def _account_age_s(facts: Facts) -> None:
    created = facts.txn.account_created_at
    facts.values["account_age_s"] = (
        None if created is None else EXACT.subtract(facts.txn.event_time, created)
    )


def _hour_of_day(facts: Facts) -> None:
    seconds = int(facts.txn.event_time.to_integral_value(rounding=ROUND_FLOOR))
    facts.values["hour_of_day"] = seconds // 3600 % 24


NUMBER = FieldType("number")
MAYBE_NUMBER = FieldType("number", nullable=True)
MAYBE_FLOAT = FieldType("number", nullable=True, exact=False)
MAYBE_STRING = FieldType("string", nullable=True)
BOOL = FieldType("bool")

_FEATURES: list[Feature] = [
    Feature(
        "amount", NUMBER, "the transaction's amount, exact", _field("amount"), long_digits=True
    ),
    Feature(
        "account_balance",
        MAYBE_NUMBER,
        "the balance before it, exact",
        _field("account_balance"),
        long_digits=True,
    ),
    Feature(
        "currency",
        FieldType("string"),
        "ISO-4217 code as sent (USD when absent)",
        _field("currency"),
    ),
    Feature(
        "channel",
        FieldType("string", nullable=True, values=CHANNELS),
        "card_present, online, atm or transfer",
        _field("channel"),
    ),
    Feature("merchant_id", MAYBE_STRING, "as sent", _field("merchant_id")),
    Feature("merchant_category", MAYBE_STRING, "as sent", _field("merchant_category")),
    Feature(
        "origin_country",
        FieldType("string", nullable=True, upper=True),
        "home country of the account, upper case (literals are upper-cased too)",
        _field("origin_country"),
    ),
    Feature(
        "destination_country",
        FieldType("string", nullable=True, upper=True),
        "country of the merchant or receiver, upper case (literals are upper-cased too)",
        _field("destination_country"),
    ),
    Feature("device_id", MAYBE_STRING, "as sent", _field("device_id")),
    Feature("ip_address", MAYBE_STRING, "as sent", _field("ip_address")),
    Feature("latitude", MAYBE_FLOAT, "degrees", _field("latitude")),
    Feature("longitude", MAYBE_FLOAT, "degrees", _field("longitude")),
]
for _suffix, _seconds in WINDOWS.items():
    _FEATURES += [
        Feature(
            f"txn_count_{_suffix}",
            NUMBER,
            f"transactions of the account within {_seconds} s, this one included",
            _derived(f"txn_count_{_suffix}"),
            window_s=_seconds,
        ),
        Feature(
            f"amount_sum_{_suffix}",
            NUMBER,
            f"sum of their amounts within {_seconds} s, this one included, exact, no currency "
            "conversion",
            _derived(f"amount_sum_{_suffix}"),
            window_s=_seconds,
            long_digits=True,
        ),
        Feature(
            f"distinct_countries_{_suffix}",
            NUMBER,
            f"distinct destination countries within {_seconds} s, this one included",
            _derived(f"distinct_countries_{_suffix}"),
            window_s=_seconds,
            needs_countries=True,
        ),
    ]
_FEATURES += [
    Feature(
        "new_device",
        BOOL,
        "device_id present, not used by an earlier transaction of the account, and the account "
        "has an earlier transaction (as new_device_high_amount reads it)",
        _derived("new_device"),
    ),
    Feature(
        "new_country",
        BOOL,
        "destination_country present, not seen on an earlier transaction of the account, and "
        "the account has an earlier transaction",
        _derived("new_country"),
        needs_countries=True,
    ),
    Feature(
        "first_transaction",
        BOOL,
        "no earlier transaction of the account in the stream",
        _derived("first_transaction"),
    ),
    Feature(
        "km_from_last",
        MAYBE_FLOAT,
        "km from the point impossible_travel compares with (absent when none, or this one is "
        "not located)",
        _derived("km_from_last"),
    ),
    Feature(
        "speed_kmh_from_last",
        MAYBE_FLOAT,
        "implied speed from that point in km/h (infinite for a gap too small to measure)",
        _derived("speed_kmh_from_last"),
    ),
    Feature(
        "account_age_s",
        MAYBE_NUMBER,
        "seconds from account_created_at to this transaction, exact (absent without it)",
        _derived("account_age_s"),
        long_digits=True,
    ),
    Feature("hour_of_day", NUMBER, "UTC hour of the event time, 0-23", _derived("hour_of_day")),
]

FEATURES: dict[str, Feature] = {feature.name: feature for feature in _FEATURES}

_COMPUTE: dict[str, Callable[[Facts], None]] = {
    "new_device": _new_device,
    "new_country": _new_country,
    "first_transaction": _first_transaction,
    "km_from_last": Facts.travel_features,
    "speed_kmh_from_last": Facts.travel_features,
    "account_age_s": _account_age_s,
    "hour_of_day": _hour_of_day,
}
for _suffix in WINDOWS:
    for _family in ("txn_count", "amount_sum", "distinct_countries"):
        _COMPUTE[f"{_family}_{_suffix}"] = Facts.window_features
