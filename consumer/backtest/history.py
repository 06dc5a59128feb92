"""Per-account history in memory, with the stream's semantics, for a backtest over a file.

The stream's state store (consumer/state/store.py) gives each transaction an AccountHistory built
from Redis plus the earlier records of its batch. This module gives the same one from a single pass
over records in stream order, holding each account's entries packed (consumer/backtest/compact.py,
~60 bytes an entry) and the duplicate window as 64-bit digests (consumer/backtest/dedup.py), so
that a day of a busy shard fits a machine:

- **Earlier only.** A transaction sees the account's transactions from earlier records (file
  order is stream order), never its own or later ones.
- **Duplicates.** A valid record whose transaction_id an earlier valid record had, within the
  duplicate window (`StateConfig.dedup_ttl_s`, 24 h), is a producer retry: not judged, adds
  nothing (`is_duplicate`). The window runs on the stream's clock: the latest event time seen so
  far (a file has no arrival times).
- **The horizon.** The store loads the entries whose event time is at least
  `t - (horizon + lateness_s) - 1` (`AccountStateStore._keep_s`), in float seconds as Redis
  scores compare. Here an account keeps exactly those for its latest event time, so an in-order
  transaction sees what a one-record batch would load; a late one (event time before the
  account's latest) may miss entries the store would still load, but only entries more than
  `lateness_s` late relative to it can change a decision, which the store does not promise
  either.
- **The cap.** At most `max_entries` per account, the newest by event time (ties: the latest
  in the stream), as the store's save trims. (Within one stream batch the store's view can hold
  a few more before the save trims; that changes a count only for an account past the cap.)
- **Devices and first use** are kept for the whole file (the store keeps them 90 days).
- **Countries** (HistoryEntry.country, AccountHistory.country_seen_before) are filled when asked
  (`countries=True`, for rule sets whose `history_needs` has "countries").
- **Profiles** (`profiles=True`, for the model's features): each account's day totals and each
  merchant's transactions per day and labels (consumer/rules/profile.py), added as records are
  and as `apply_label` gives labels. Every valid, non-duplicate record counts, however late
  (the stream's store counts it too); days older than the windows read are forgotten.
- **Built when read.** The HistoryEntry objects of an account are built from its packed rows
  as the rules read them (consumer/backtest/views.py): from the newest end, as far back as a
  pass goes, which for a history in event-time order is the edge of the rules' windows
  (`AccountHistory.ascending`); all of them for a pass that needs all. They are kept for the
  accounts judged most recently (up to `view_entries` entries in all, ~400 bytes each): a busy
  account's next record then costs one append, not a rebuild.
"""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal

from msgspec import structs

from consumer.backtest.compact import Countries, PackedEntries
from consumer.backtest.dedup import DuplicateWindow
from consumer.backtest.views import TailView
from consumer.records import Transaction
from consumer.rules.history import EMPTY_HISTORY, AccountHistory, HistoryEntry, in_time_order
from consumer.rules.profile import (
    ACCOUNT_DAYS,
    MERCHANT_DAYS,
    NO_DAY,
    DayTotals,
    LabelMark,
    Profile,
    day_of,
    newer_label,
)
from consumer.settings.config import StateConfig

VIEW_ENTRIES = 500_000
"""Built HistoryEntry objects kept for the accounts judged most recently, in all (~200 MB at
most): rebuilding an account costs ~0.65 µs an entry, mostly its two Decimals."""


class _Account:
    """One account's state: its packed entries, devices and countries seen, and (while it is
    among the recently judged) `view`, the entries built, kept equal to `packed`."""

    __slots__ = (
        "ascending",
        "counted",
        "countries",
        "days",
        "devices",
        "last_time",
        "latest",
        "oldest",
        "packed",
        "view",
    )

    def __init__(self) -> None:
        self.packed = PackedEntries()
        self.view: TailView | None = None
        self.counted = 0  # entries of `view` built, as ReplayHistory last counted them
        # One value alone, a set from the second on (a set costs ~200 bytes; most accounts of
        # a file have one device).
        self.devices: str | set[str] | None = None
        self.countries: str | set[str] | None = None
        self.latest = float("-inf")  # the latest event time seen for the account
        self.oldest = float("inf")  # the earliest event time among its entries
        # Entries in ascending event time (exact), as in-order records give them: the rules
        # then read the history newest first and stop early (AccountHistory.ascending). A late
        # record clears it until the entries out of order have left (checked when the view is
        # built or trimmed).
        self.ascending = True
        self.last_time: Decimal | None = None  # the latest event time among entries appended
        self.days: dict[int, DayTotals] | None = None  # with profiles: its day totals


class _Merchant:
    """One merchant's profile: transactions per day, labels per transaction id."""

    __slots__ = ("days", "labels", "latest_day")

    def __init__(self) -> None:
        self.days: dict[int, int] = {}
        self.labels: dict[str, LabelMark] = {}
        self.latest_day = -(2**62)


class ReplayHistory:
    """Builds each transaction's AccountHistory from the records before it in the file.

    A HistoryView (consumer/judging/views.py) whose positions are record numbers, for
    consumer/judging/sequence.py's `judge_record`, the sequence the stream runs too. Per valid
    record in file order: `is_duplicate(txn)`; if not, `history(txn)` (the history to judge it with;
    valid until the next `add`), then `add(txn, index)` (`index` unique per record: its place in
    the file). File order is stream order, so `is_duplicate` and `history` need no position.
    """

    def __init__(
        self,
        horizon_s: Decimal,
        config: StateConfig | None = None,
        *,
        countries: bool = False,
        view_entries: int = VIEW_ENTRIES,
        profiles: bool = False,
    ) -> None:
        config = config if config is not None else StateConfig()
        self._keep_s = float(horizon_s) + config.lateness_s  # as AccountStateStore
        self._max_entries = config.max_entries
        self._countries = countries
        self._country_ids = Countries()
        self._accounts: dict[str, _Account] = {}
        self._seen = DuplicateWindow(float(config.dedup_ttl_s))
        self._clock = float("-inf")
        # Accounts with a built view, least recently judged first, and their entries in all.
        # An OrderedDict, not a dict: taking the oldest from a plain dict walks past every slot
        # deleted at its front since its last resize (most of the run's time once it was big).
        self._views: OrderedDict[_Account, None] = OrderedDict()
        self._view_entries = 0
        self._view_budget = view_entries
        self._profiles = profiles
        self._merchants: dict[str, _Merchant] = {}
        self._observed = 0  # records `observe` added
        self.duplicates = 0  # records `observe` found to be duplicates

    @property
    def accounts(self) -> int:
        return len(self._accounts)

    def observe(self, txn: Transaction) -> AccountHistory | None:
        """The three steps at once, for offline work that keeps histories (training): None for
        a duplicate (counted in `duplicates`), else the history `txn` sees as a snapshot that
        later records leave alone; `txn` is then added at the next index. The same view calls,
        in the same order, as `judge_record` makes, so training sees what judging sees."""
        if self.is_duplicate(txn):
            self.duplicates += 1
            return None
        seen = self.history(txn)
        # Always a copy: the view of an account whose entries have all been forgotten is empty
        # but still the account's live view, which `add` below appends this very transaction
        # to (the row would then count it in its own history).
        if not isinstance(seen.recent, tuple):
            seen = structs.replace(seen, recent=tuple(seen.recent))
        profile = seen.profile
        if profile is not None:
            seen = structs.replace(
                seen,
                profile=Profile(
                    dict(profile.account_days),
                    dict(profile.merchant_days),
                    tuple(profile.merchant_labels),
                ),
            )
        self._observed += 1
        self.add(txn, self._observed)
        return seen

    def is_duplicate(self, txn: Transaction, index: int | None = None) -> bool:
        """True for a producer retry (the id was seen within the window): do not judge it."""
        t = float(txn.event_time)
        if t > self._clock:
            self._clock = t
            self._seen.advance(t)
        return self._seen.seen_before(txn.transaction_id, self._clock)

    def history(self, txn: Transaction, index: int | None = None) -> AccountHistory:
        """What `txn` sees: its account's records before it in the file (see the module)."""
        account = self._accounts.get(txn.account_id)
        if account is None:
            if self._profiles:
                return AccountHistory(profile=self._profile(txn, None))
            return EMPTY_HISTORY
        t = float(txn.event_time)
        if t > account.latest:
            account.latest = t
            bound = t - self._keep_s - 1
            if account.oldest < bound:
                self._forget_before(account, bound)
        views = self._views
        view = account.view
        if view is None:
            view = account.view = TailView(account.packed, self._country_ids.names)
            views[account] = None
            if not account.ascending:
                account.ascending = in_time_order(view)
                self._recount(account)
        else:  # judged again: now the most recent
            views.move_to_end(account)
        return AccountHistory(
            recent=view,
            device_seen_before=_among(txn.device_id, account.devices),
            has_earlier=True,
            country_seen_before=_among(txn.destination_country, account.countries),
            ascending=account.ascending,
            profile=self._profile(txn, account) if self._profiles else None,
        )

    def _profile(self, txn: Transaction, account: _Account | None) -> Profile:
        """The profile `txn` sees (valid until the next `add` or `apply_label`)."""
        days = account.days if account is not None and account.days is not None else {}
        merchant_id = txn.merchant_id
        merchant = self._merchants.get(merchant_id) if merchant_id is not None else None
        if merchant is None:
            return Profile(days)
        return Profile(days, merchant.days, merchant.labels.values())

    def apply_label(self, transaction_id: str, merchant_id: str, mark: LabelMark) -> bool:
        """Keep a label for the merchant's profile (newer_label decides over an earlier one
        for the same transaction); True when it changed what is kept."""
        merchant = self._merchants.get(merchant_id)
        if merchant is None:
            merchant = self._merchants[merchant_id] = _Merchant()
        labels = merchant.labels
        if not newer_label(labels.get(transaction_id), mark):
            return False
        labels[transaction_id] = mark
        return True

    def apply_fraud(self, txn: Transaction, known_at: Decimal) -> None:
        """A fraud label on `txn` (a record of this history), known from `known_at` on, into
        its merchant's profile: the records judged from then on see it, earlier ones do not.
        Offline work feeds the records' own labels this way (a clean label changes no count,
        so only frauds are fed)."""
        if txn.merchant_id is not None:
            mark = LabelMark(day_of(txn.event_time), known_at, True)
            self.apply_label(txn.transaction_id, txn.merchant_id, mark)

    def _add_to_profiles(self, txn: Transaction, account: _Account) -> None:
        day = day_of(txn.event_time)
        days = account.days
        if days is None:
            days = account.days = {}
        days[day] = days.get(day, NO_DAY).plus(txn.amount)
        if len(days) > ACCOUNT_DAYS:
            for old in [d for d in days if d <= max(days) - ACCOUNT_DAYS]:
                del days[old]
        merchant_id = txn.merchant_id
        if merchant_id is None:
            return
        merchant = self._merchants.get(merchant_id)
        if merchant is None:
            merchant = self._merchants[merchant_id] = _Merchant()
        counts = merchant.days
        counts[day] = counts.get(day, 0) + 1
        if day > merchant.latest_day:
            merchant.latest_day = day
            if len(counts) > MERCHANT_DAYS:
                for old in [d for d in counts if d <= day - MERCHANT_DAYS]:
                    del counts[old]
            labels = merchant.labels
            for txn_id in [i for i, m in labels.items() if m.event_day <= day - MERCHANT_DAYS]:
                del labels[txn_id]

    def _forget_before(self, account: _Account, bound: float) -> None:
        packed = account.packed
        prefix = packed.ordered
        dropped = packed.forget_before(bound)
        account.oldest = packed.oldest()
        view = account.view
        if dropped and view is not None:
            if prefix:
                view.drop_prefix(dropped)
                if not account.ascending:
                    account.ascending = in_time_order(view)
                self._recount(account)
            else:
                self._drop_view(account)

    def _recount(self, account: _Account) -> None:
        """Bring the entries built in all up to date with the account's view (the rules build
        entries as they read), and keep them within the budget."""
        view = account.view
        if view is not None:
            self._view_entries += view.built - account.counted
            account.counted = view.built
            if self._view_entries > self._view_budget:
                self._evict()

    def _drop_view(self, account: _Account) -> None:
        if account.view is not None:
            self._view_entries -= account.counted
            account.counted = 0
            account.view = None
            del self._views[account]

    def _evict(self) -> None:
        """Drop the least recently judged accounts' views until the rest fit the budget (the
        one judged last stays, however long)."""
        views = self._views
        while self._view_entries > self._view_budget and len(views) > 1:
            self._drop_view(next(iter(views)))  # the linked list's head: O(1)

    def add(self, txn: Transaction, index: int) -> None:
        """Record a judged transaction (file line `index`) for the records after it."""
        account = self._accounts.get(txn.account_id)
        if account is None:
            account = self._accounts[txn.account_id] = _Account()
        t = float(txn.event_time)
        if t > account.latest:
            account.latest = t
        country = txn.destination_country
        if t < account.latest - self._keep_s - 1:
            pass  # older than anything a later record of the account would load
        else:
            kept = country if self._countries else None
            event_time = txn.event_time
            last = account.last_time
            if last is None or event_time >= last:
                account.last_time = event_time
            else:
                account.ascending = False
            packed = account.packed
            packed.append(
                index,
                txn.event_time,
                t,
                txn.amount,
                txn.latitude,
                txn.longitude,
                0 if kept is None else self._country_ids.id_of(kept),
            )
            view = account.view
            if view is not None:
                view.append(
                    HistoryEntry(
                        (index, 0), txn.event_time, txn.amount, txn.latitude, txn.longitude, kept
                    )
                )
            if t < account.oldest:
                account.oldest = t
            if len(packed.times) > self._max_entries:
                at = packed.drop_oldest()
                account.oldest = packed.oldest()
                if view is not None:
                    view.drop_at(at)
        device = txn.device_id
        if device is not None:
            account.devices = _with(account.devices, device)
        if self._countries and country is not None:
            account.countries = _with(account.countries, country)
        if self._profiles:
            self._add_to_profiles(txn, account)
        self._recount(account)


def _among(value: str | None, kept: str | set[str] | None) -> bool:
    if value is None or kept is None:
        return False
    return value == kept if type(kept) is str else value in kept


def _with(kept: str | set[str] | None, value: str) -> str | set[str]:
    """`kept` with `value` added: the value alone, or a set once there are two."""
    if kept is None:
        return value
    if type(kept) is str:
        return kept if kept == value else {kept, value}
    assert isinstance(kept, set)
    kept.add(value)
    return kept
