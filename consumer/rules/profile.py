"""Long-horizon profiles: what an account and a merchant looked like over the last 30 days,
kept as per-day totals, never as raw history.

Why days: a card makes a few transactions a day, so its usual spend needs weeks, and a raw month
of every account is too much to hold. A day's totals (count, exact sum, exact sum of squares)
are enough for counts, means and spreads over whole days, and they are bounded: at most
ACCOUNT_DAYS per account and MERCHANT_DAYS per merchant (docs/model.md#profiles).

The semantics, the same for the stream's state store (consumer/state/store.py and
consumer/state/profiles.py) and the offline history (consumer/backtest/history.py), so training,
the backtest and the worker compute one feature row (tests hold them equal, row by row):

- **Days** are UTC days of the event time: `day_of(t) = floor(t / 86400)`.
- **Account windows** read whole days *before* the transaction's own day: for `w` days, days
  `d - w .. d - 1`. Today's part is what the 24 h raw history already gives; leaving it out
  keeps a replay exact (today's totals already hold the records a replay judges again).
- **Merchant windows** are shifted by the label delay `D` (the book's "delay period"): days
  `d - D - w + 1 .. d - D`, whose labels have had `D` days to arrive. Transactions there are
  counted, and frauds among them whose label was known at the transaction's event time
  (`labelled_at <= t`): a training row sees only labels the stream would have had.
- **Labels** are kept per labelled transaction (its event day, when it was labelled, the
  verdict): the latest `labelled_at` wins (on a tie, fraud wins), so a label delivered twice,
  late or out of order changes nothing it should not (`newer_label`).

Pure: no I/O. The model's feature row (consumer/model/features.py) reads `ProfileFacts`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from decimal import ROUND_FLOOR, Decimal
from itertools import accumulate

import msgspec

from consumer.rules.exact import EXACT

DAY_S = 86400
WINDOW_DAYS: tuple[int, ...] = (1, 7, 30)
LONGEST_WINDOW_DAYS = 30
MAX_LABEL_DELAY_DAYS = 14
# Days of totals kept: an account reads 30 whole days before today; a merchant reads 30 days
# ending `D` (at most 14) days back, plus today's, still open.
ACCOUNT_DAYS = LONGEST_WINDOW_DAYS + 1
MERCHANT_DAYS = LONGEST_WINDOW_DAYS + MAX_LABEL_DELAY_DAYS + 1
DEFAULT_LABEL_DELAY_DAYS = 7
# Up to this many days kept, a window's sums come from a pass over the days kept; beyond, from
# a pass over the windows' days (measured: 3.7 -> 2.6 us a row for a new account and merchant,
# 14 us either way for a month of both).
FEW_DAYS = 6

_DAY = Decimal(DAY_S)
_ZERO = Decimal(0)


def day_of(event_time: Decimal) -> int:
    """The UTC day number of an event time (days since 1970-01-01).

    Once per feature row and per stored record: from the epoch on, truncation is the floor and
    whole seconds divide as ints, which skips two Decimal operations (before it, the exact
    Decimal route, the definition)."""
    seconds = int(event_time)
    if seconds >= 0:
        return seconds // DAY_S
    return int(EXACT.divide_int(event_time.to_integral_value(rounding=ROUND_FLOOR), _DAY))


class DayTotals(msgspec.Struct, frozen=True, gc=False):
    """One account's transactions of one day: how many, their exact sum and sum of squares."""

    count: int = 0
    total: Decimal = _ZERO
    squares: Decimal = _ZERO

    def plus(self, amount: Decimal) -> DayTotals:
        return DayTotals(
            self.count + 1,
            EXACT.add(self.total, amount),
            EXACT.add(self.squares, EXACT.multiply(amount, amount)),
        )

    def encode(self) -> str:
        return f"{self.count}|{self.total}|{self.squares}"

    @staticmethod
    def decode(text: str | bytes) -> DayTotals:
        if isinstance(text, bytes):
            text = text.decode()
        count, total, squares = text.split("|")
        return DayTotals(int(count), Decimal(total), Decimal(squares))


NO_DAY = DayTotals()


class LabelMark(msgspec.Struct, frozen=True, gc=False):
    """What a merchant's profile keeps of one labelled transaction."""

    event_day: int
    labelled_at: Decimal  # epoch seconds
    is_fraud: bool

    def encode(self) -> str:
        return f"{self.event_day}|{self.labelled_at}|{1 if self.is_fraud else 0}"

    @staticmethod
    def decode(text: str | bytes) -> LabelMark:
        if isinstance(text, bytes):
            text = text.decode()
        day, labelled_at, fraud = text.split("|")
        return LabelMark(int(day), Decimal(labelled_at), fraud == "1")


def newer_label(kept: LabelMark | None, incoming: LabelMark) -> bool:
    """Whether `incoming` replaces `kept` for the same transaction: a later `labelled_at`, or
    the same with a fraud verdict over a clean one. Anything else (a repeat, an older label)
    leaves `kept`, so applying labels is idempotent and order-free."""
    if kept is None:
        return True
    return (incoming.labelled_at, incoming.is_fraud) > (kept.labelled_at, kept.is_fraud)


class Profile(msgspec.Struct, frozen=True, gc=False):
    """A transaction's account and merchant profile, as its history carries it
    (AccountHistory.profile). Read only by the days the windows cover."""

    account_days: Mapping[int, DayTotals] = msgspec.field(default_factory=dict)
    merchant_days: Mapping[int, int] = msgspec.field(default_factory=dict)
    merchant_labels: Iterable[LabelMark] = ()


EMPTY_PROFILE = Profile()


class Spend(msgspec.Struct, frozen=True, gc=False):
    """An account's spend over whole days: count, mean and (population) standard deviation;
    the mean and spread are NaN without transactions."""

    count: int
    mean: float
    std: float


_NO_SPEND = Spend(0, math.nan, math.nan)


class MerchantWindow(msgspec.Struct, frozen=True, gc=False):
    """A merchant's transactions and known frauds over a delayed window."""

    count: int
    frauds: int


def account_spends(
    days: Mapping[int, DayTotals], today: int, windows: tuple[int, ...] = WINDOW_DAYS
) -> list[Spend]:
    """The account's spend over days `today - w .. today - 1` for each `w` of `windows`
    (ascending), in one pass back from yesterday: the narrower windows' sums are the wider
    ones' first steps. Exact until the end."""
    if len(days) <= FEW_DAYS:
        return _spends_of_few(days, today, windows)
    out: list[Spend] = []
    count = 0
    total = _ZERO
    squares = _ZERO
    add = EXACT.add
    back = 0
    get = days.get
    for window in windows:
        while back < window:
            back += 1
            totals = get(today - back)
            if totals is not None:
                count += totals.count
                total = add(total, totals.total)
                squares = add(squares, totals.squares)
        out.append(_spend(count, total, squares))
    return out


def _spends_of_few(
    days: Mapping[int, DayTotals], today: int, windows: tuple[int, ...] = WINDOW_DAYS
) -> list[Spend]:
    """`account_spends` by a pass over the days kept rather than the days of the windows: for
    an account with a few days (most of them), fewer lookups. Each day goes to the narrowest
    window holding it, each window's sums are the narrower ones' plus its own; the same exact
    sums (Decimal additions do not depend on their order)."""
    widest = windows[-1]
    parts = len(windows)
    counts = [0] * parts
    totals = [_ZERO] * parts
    squares = [_ZERO] * parts
    add = EXACT.add
    for day, kept in days.items():
        age = today - day
        if age < 1 or age > widest:
            continue
        part = 0
        while age > windows[part]:
            part += 1
        counts[part] += kept.count
        totals[part] = add(totals[part], kept.total)
        squares[part] = add(squares[part], kept.squares)
    out: list[Spend] = []
    count = 0
    total = _ZERO
    square = _ZERO
    for part in range(parts):
        if counts[part]:
            count += counts[part]
            total = add(total, totals[part])
            square = add(square, squares[part])
        out.append(_spend(count, total, square))
    return out


def _spend(count: int, total: Decimal, squares: Decimal) -> Spend:
    if not count:
        return _NO_SPEND
    # n^2 * variance = n * sum(x^2) - sum(x)^2, exact in Decimal: no cancellation in floats
    # (equal amounts have a spread of exactly 0).
    spread = EXACT.subtract(EXACT.multiply(squares, count), EXACT.multiply(total, total))
    return Spend(count, float(total) / count, math.sqrt(float(spread)) / count)


def merchant_counts(
    merchant_days: Mapping[int, int], last: int, windows: tuple[int, ...] = WINDOW_DAYS
) -> list[int]:
    """For each `w` of `windows` (ascending), the merchant's transactions over days
    `last - w + 1 .. last`: a pass over the days kept when they are few, else over the windows'
    days (the narrower windows are the wider's first steps)."""
    if len(merchant_days) <= FEW_DAYS:
        parts = [0] * len(windows)
        widest = windows[-1]
        for day, transactions in merchant_days.items():
            age = last - day
            if 0 <= age < widest:
                part = 0
                while age >= windows[part]:
                    part += 1
                parts[part] += transactions
        return list(accumulate(parts))
    get = merchant_days.get
    counts = []
    count = 0
    back = 0
    for window in windows:
        while back < window:
            count += get(last - back, 0)
            back += 1
        counts.append(count)
    return counts


def merchant_windows(
    profile: Profile,
    today: int,
    delay_days: int,
    at: Decimal,
    windows: tuple[int, ...] = WINDOW_DAYS,
) -> tuple[list[MerchantWindow], int, int | None]:
    """For each `w` of `windows` (ascending), the merchant's transactions over days
    `today - delay - w + 1 .. today - delay` (`merchant_counts`) and the frauds among them
    whose label was known at `at`; the frauds known at `at` over the longest window's days
    ending today (no delay: what the fastest labels, an analyst's, already tell); and the
    latest event day of a fraud known at `at` (None without one). One pass over the days, one
    over the labels."""
    last = today - delay_days
    counts = merchant_counts(profile.merchant_days, last, windows)
    frauds = [0] * len(windows)
    known = 0
    latest: int | None = None
    recent_first = today - windows[-1] + 1
    for mark in profile.merchant_labels:
        if not mark.is_fraud or mark.labelled_at > at:
            continue
        day = mark.event_day
        if recent_first <= day <= today:
            known += 1
        if day <= today and (latest is None or day > latest):
            latest = day
        if day <= last:
            age = last - day
            for index, window in enumerate(windows):
                if age < window:
                    frauds[index] += 1
    return [MerchantWindow(c, f) for c, f in zip(counts, frauds, strict=True)], known, latest
