"""Per-account history in memory, with the stream's semantics, for a backtest over a file.

The stream's state store (consumer/state.py) gives each transaction an AccountHistory built from
Redis plus the earlier records of its batch. This module gives the same one from a single pass
over records in stream order, with nothing but dicts and deques:

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
"""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

from msgspec import structs

from consumer.config import StateConfig
from consumer.records import Transaction
from consumer.rules.history import EMPTY_HISTORY, AccountHistory, HistoryEntry


class _Account:
    """One account's state: recent entries in stream order, devices and countries seen. Kept
    small (lists, sets made on first use): a backtest holds every account of the file."""

    __slots__ = ("countries", "devices", "latest", "oldest", "ordered", "recent")

    def __init__(self) -> None:
        self.recent: list[HistoryEntry] = []
        self.devices: set[str] | None = None
        self.countries: set[str] | None = None
        self.latest = float("-inf")  # the latest event time seen for the account
        self.oldest = float("inf")  # the earliest event time among `recent`
        self.ordered = True  # `recent` is in event-time order too (the usual case)

    def forget_before(self, bound: float) -> None:
        """Drop every entry with an event time below `bound` (usually a prefix)."""
        recent = self.recent
        cut = 0
        for entry in recent:
            if float(entry.event_time) >= bound:
                break
            cut += 1
        if cut:
            del recent[:cut]
        if self.ordered:
            self.oldest = float(recent[0].event_time) if recent else float("inf")
            return
        times = [float(entry.event_time) for entry in recent]
        kept = [(t, e) for t, e in zip(times, recent, strict=True) if t >= bound]
        self.recent = [e for _, e in kept]
        self.oldest = min((t for t, _ in kept), default=float("inf"))
        self.ordered = all(a[0] <= b[0] for a, b in pairwise(kept))

    def drop_oldest(self) -> None:
        """Over the cap: drop the entry with the earliest event time (ties: earliest in the
        stream), as ZREMRANGEBYRANK on event-time scores does."""
        recent = self.recent
        if self.ordered:
            del recent[0]
            self.oldest = float(recent[0].event_time) if recent else float("inf")
            return
        times = [float(entry.event_time) for entry in recent]
        index = times.index(min(times))
        del recent[index]
        del times[index]
        self.oldest = min(times, default=float("inf"))


class ReplayHistory:
    """Builds each transaction's AccountHistory from the records before it in the file.

    Call, per valid record in file order: `is_duplicate(txn)`; if not, `history(txn)` (the
    history to judge it with; valid until the next `add`), then `add(txn, index)`.
    """

    def __init__(
        self, horizon_s: Decimal, config: StateConfig | None = None, *, countries: bool = False
    ) -> None:
        config = config if config is not None else StateConfig()
        self._keep_s = float(horizon_s) + config.lateness_s  # as AccountStateStore
        self._max_entries = config.max_entries
        self._dedup_s = float(config.dedup_ttl_s)
        self._countries = countries
        self._accounts: dict[str, _Account] = {}
        self._seen: dict[str, float] = {}  # transaction id -> stream clock at first sight
        self._clock = float("-inf")
        self._next_purge = float("-inf")
        self._observed = 0  # records `observe` added
        self.duplicates = 0  # records `observe` found to be duplicates

    @property
    def accounts(self) -> int:
        return len(self._accounts)

    def observe(self, txn: Transaction) -> AccountHistory | None:
        """The three steps at once, for offline work that keeps histories (training): None for
        a duplicate (counted in `duplicates`), else the history `txn` sees as a snapshot that
        later records leave alone; `txn` is then added at the next index."""
        if self.is_duplicate(txn):
            self.duplicates += 1
            return None
        seen = self.history(txn)
        if seen.recent:
            seen = structs.replace(seen, recent=tuple(seen.recent))
        self._observed += 1
        self.add(txn, self._observed)
        return seen

    def is_duplicate(self, txn: Transaction) -> bool:
        """True for a producer retry (the id was seen within the window): do not judge it."""
        t = float(txn.event_time)
        if t > self._clock:
            self._clock = t
            if t >= self._next_purge:
                self._purge_seen()
        seen = self._seen
        first = seen.get(txn.transaction_id)
        if first is not None and self._clock - first < self._dedup_s:
            return True
        seen[txn.transaction_id] = self._clock
        return False

    def _purge_seen(self) -> None:
        """Forget ids older than the window (every tenth of a window of stream time)."""
        cutoff = self._clock - self._dedup_s
        if self._seen:
            self._seen = {tid: at for tid, at in self._seen.items() if at > cutoff}
        self._next_purge = self._clock + self._dedup_s / 10

    def history(self, txn: Transaction) -> AccountHistory:
        account = self._accounts.get(txn.account_id)
        if account is None:
            return EMPTY_HISTORY
        t = float(txn.event_time)
        if t > account.latest:
            account.latest = t
            bound = t - self._keep_s - 1
            if account.oldest < bound:
                account.forget_before(bound)
        device = txn.device_id
        devices = account.devices
        country = txn.destination_country
        countries = account.countries
        return AccountHistory(
            recent=account.recent,
            device_seen_before=device is not None and devices is not None and device in devices,
            has_earlier=True,
            country_seen_before=country is not None
            and countries is not None
            and country in countries,
        )

    def add(self, txn: Transaction, index: int) -> None:
        """Record a judged transaction (file line `index`) for the records after it."""
        account = self._accounts.get(txn.account_id)
        if account is None:
            account = self._accounts[txn.account_id] = _Account()
        t = float(txn.event_time)
        if t > account.latest:
            account.latest = t
        if t < account.latest - self._keep_s - 1:
            pass  # older than anything a later record of the account would load
        else:
            entry = HistoryEntry(
                (index, 0),
                txn.event_time,
                txn.amount,
                txn.latitude,
                txn.longitude,
                txn.destination_country if self._countries else None,
            )
            recent = account.recent
            if recent and t < float(recent[-1].event_time):
                account.ordered = False
            recent.append(entry)
            if t < account.oldest:
                account.oldest = t
            if len(account.recent) > self._max_entries:
                account.drop_oldest()
        device = txn.device_id
        if device is not None:
            if account.devices is None:
                account.devices = {device}
            else:
                account.devices.add(device)
        country = txn.destination_country
        if self._countries and country is not None:
            if account.countries is None:
                account.countries = {country}
            else:
                account.countries.add(country)
