"""An in-memory history builder for offline work (training): each transaction sees its
account's earlier transactions, as the stream's state store would show them.

Same semantics as the worker's BatchView: records in stream (file) order; a transaction id seen
before is a duplicate (not judged, adds nothing); the history holds the account's earlier
transactions whose event time lies within `horizon_s` of the newest one seen, at most
`max_entries` of them; devices, countries and "has an earlier transaction" are remembered for
the whole run. Kept small on purpose: a backtest's builder can replace it (one builder for both).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from consumer.records import Transaction
from consumer.rules.history import AccountHistory, HistoryEntry


@dataclass
class _Account:
    entries: deque[HistoryEntry] = field(default_factory=deque)
    devices: set[str] = field(default_factory=set)
    countries: set[str] = field(default_factory=set)


class StreamHistory:
    """`observe(txn)` returns the history `txn` sees (None for a duplicate), then adds it."""

    def __init__(self, horizon_s: Decimal = Decimal(86400), max_entries: int = 2000) -> None:
        self.horizon_s = horizon_s
        self.max_entries = max_entries
        self._accounts: dict[str, _Account] = {}
        self._seen_ids: set[str] = set()
        self._count = 0
        self.duplicates = 0

    def observe(self, txn: Transaction) -> AccountHistory | None:
        if txn.transaction_id in self._seen_ids:
            self.duplicates += 1
            return None
        self._seen_ids.add(txn.transaction_id)
        account = self._accounts.get(txn.account_id)
        if account is None:
            account = self._accounts[txn.account_id] = _Account()
            history = AccountHistory()
        else:
            low = txn.event_time - self.horizon_s
            entries = account.entries
            while entries and entries[0].event_time <= low:
                entries.popleft()
            history = AccountHistory(
                recent=tuple(e for e in entries if e.event_time > low),
                device_seen_before=txn.device_id is not None and txn.device_id in account.devices,
                has_earlier=True,
                country_seen_before=txn.destination_country is not None
                and txn.destination_country in account.countries,
            )
        self._count += 1
        account.entries.append(
            HistoryEntry(
                position=(self._count, 0),
                event_time=txn.event_time,
                amount=txn.amount,
                latitude=txn.latitude,
                longitude=txn.longitude,
                country=txn.destination_country,
            )
        )
        while len(account.entries) > self.max_entries:
            account.entries.popleft()
        if txn.device_id is not None:
            account.devices.add(txn.device_id)
        if txn.destination_country is not None:
            account.countries.add(txn.destination_country)
        return history
