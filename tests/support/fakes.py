"""In-memory stand-ins for the pipeline's ports (consumer/batch/ports.py): line sinks, the alert
sink and the state store, for pipeline-level tests."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from consumer.records import Position, RecordPosition, Transaction
from consumer.rules.history import AccountHistory, HistoryEntry
from consumer.sinks.alerts import Alert
from consumer.state.store import PreparedSave, SaveInFlight


class ManualClock:
    """A monotonic clock that moves only when a test sets `now`."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class CollectingBatch:
    """Collects the lines a pipeline hands to an S3 batch."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def add(self, line: bytes, position: RecordPosition) -> None:
        self.lines.append(json.loads(line))


class CollectingAlerts:
    def __init__(self) -> None:
        self.sent: list[Alert] = []
        self.closed = False

    def publish(self, alerts: Sequence[Alert]) -> list[Any]:
        self.sent.extend(alerts)
        return []

    def close(self, timeout_s: float = 5.0) -> None:
        self.closed = True


class MemoryView:
    """A batch's view of MemoryStateStore: a HistoryView over (sequence, sub-sequence) positions
    with the stream's semantics, without a horizon or a cap: a record sees its account's facts
    from strictly earlier positions only, a transaction id is a duplicate when first seen at
    another position, and a replayed record is judged again as it was the first time."""

    def __init__(
        self,
        entries: dict[str, list[tuple[Position, Transaction]]],
        seen: dict[str, Position],
        alerted: set[str],
    ) -> None:
        self.entries = entries  # account -> (position, transaction) in position order
        self.seen = seen
        self.alerted = alerted
        self.new_entries: dict[str, list[tuple[Position, Transaction]]] = {}
        self.new_seen: dict[str, Position] = {}

    def is_duplicate(self, txn: Transaction, position: Position) -> bool:
        first = self.seen.get(txn.transaction_id)
        return first is not None and first != position

    def history(self, txn: Transaction, position: Position) -> AccountHistory:
        earlier = [(p, t) for p, t in self.entries.get(txn.account_id, []) if p < position]
        return AccountHistory(
            recent=[
                HistoryEntry(
                    p, t.event_time, t.amount, t.latitude, t.longitude, t.destination_country
                )
                for p, t in earlier
            ],
            device_seen_before=txn.device_id is not None
            and any(t.device_id == txn.device_id for _, t in earlier),
            has_earlier=bool(earlier),
            country_seen_before=txn.destination_country is not None
            and any(t.destination_country == txn.destination_country for _, t in earlier),
        )

    def add(self, txn: Transaction, position: Position) -> None:
        if self.seen.get(txn.transaction_id) is None:
            self.seen[txn.transaction_id] = position
            self.new_seen[txn.transaction_id] = position
        entries = self.entries.setdefault(txn.account_id, [])
        if all(p != position for p, _ in entries):
            entries.append((position, txn))
            entries.sort(key=lambda entry: entry[0])
            self.new_entries.setdefault(txn.account_id, []).append((position, txn))

    def already_alerted(self, transaction_id: str) -> bool:
        return transaction_id in self.alerted


class MemoryStateStore:
    """The account state in a dict, satisfying consumer/batch/ports.py's StateStore: what a
    batch adds is handed over by `prepare_save` (as the real store's calls: one per account,
    its new entries) and applied by `write`; `loads`, `writes` and `marks` count the calls."""

    def __init__(self) -> None:
        self.entries: dict[str, list[tuple[Position, Transaction]]] = {}
        self.seen: dict[str, Position] = {}
        self.alerted: set[str] = set()
        self.loads = self.writes = self.marks = 0

    def load(
        self,
        items: Sequence[tuple[Position, Transaction]],
        in_flight: SaveInFlight | None = None,
    ) -> MemoryView:
        if in_flight is not None:
            in_flight.wait()
        self.loads += 1
        accounts = {txn.account_id for _, txn in items}
        ids = {txn.transaction_id for _, txn in items}
        return MemoryView(
            {a: list(self.entries[a]) for a in accounts if a in self.entries},
            {i: self.seen[i] for i in ids if i in self.seen},
            {i for i in ids if i in self.alerted},
        )

    def prepare_save(self, view: MemoryView) -> PreparedSave:
        calls: list[tuple[list[str], list[Any]]] = [
            ([account], list(added)) for account, added in view.new_entries.items()
        ]
        view.new_entries = {}
        return PreparedSave(
            calls, [], accounts=frozenset(a for [a], _ in calls), seen=dict(view.new_seen)
        )

    def write(self, prepared: PreparedSave) -> int:
        self.writes += 1
        for [account], added in prepared.script_calls:
            entries = self.entries.setdefault(account, [])
            for position, txn in added:
                if all(p != position for p, _ in entries):
                    entries.append((position, txn))
            entries.sort(key=lambda entry: entry[0])
        for txn_id, position in prepared.seen.items():
            self.seen.setdefault(txn_id, position)
        return len(prepared.script_calls)

    def mark_alerted(self, view: MemoryView, transaction_ids: Iterable[str]) -> int:
        self.marks += 1
        marked = [txn_id for txn_id in transaction_ids if txn_id in view.seen]
        self.alerted.update(marked)
        return len(marked)
