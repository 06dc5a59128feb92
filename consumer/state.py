"""Per-account history in Redis that makes decisions replay-deterministic.

Why it is shaped like this:
- **Positions, not counters.** Every stored fact carries the stream position (sequence number,
  sub-sequence number) of the record that produced it. A transaction sees only facts from
  positions before its own, so a replay after a crash (records since the last checkpoint come
  again, while Redis already holds their effects) gives exactly the first pass's decisions.
  Writes are idempotent: sorted-set members and SET NX values derived from the record itself,
  never a bare INCR.
- **One account, one slot.** Every key of an account has the account id as its hash tag
  (`fs:acct:{<id>}:...`) and every key of a transaction id its own (`fs:txn:{<id>}...`), so
  each command touches one slot and the same code runs on Redis Cluster / ElastiCache
  cluster mode.
- **A constant number of round trips per batch.** `load` reads everything the batch needs in
  one pipeline; `save` writes everything in another; nothing in between touches the network.
- **Bounded memory.** Loads read recent transactions back to the longest rule look-back (the
  state horizon) plus a lateness allowance; the key expires that long after the account's last
  write and holds at most `max_entries`. Devices and "has history" live `memory_ttl_s`;
  transaction ids the 24 h duplicate window.

Keys:
  fs:acct:{A}:recent   ZSET  score = event time, member = "seq.sub|event_time|amount|lat|lon"
  fs:acct:{A}:devices  HASH  device id -> position of its first use
  fs:acct:{A}:first    STR   position of the account's first transaction
  fs:txn:{T}           STR   position of the first valid record with this transaction id
  fs:txn:{T}:alerted   STR   "1" once the alert of T was accepted by SNS
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from consumer.config import StateConfig
from consumer.records import Transaction
from consumer.rules.history import AccountHistory, HistoryEntry

Position = tuple[int, int]  # (sequence number, sub-sequence number): tuple order = stream order


def position_of(sequence_number: str, sub_sequence_number: int) -> Position:
    return int(sequence_number), sub_sequence_number


def encode_position(position: Position) -> str:
    return f"{position[0]}.{position[1]}"


def decode_position(text: str | bytes) -> Position:
    if isinstance(text, bytes):
        text = text.decode()
    sequence, _, sub = text.partition(".")
    return int(sequence), int(sub or 0)


def sortable(position: Position) -> str:
    """Fixed width, so that string order is stream order (Kinesis: up to 129 digits)."""
    return f"{position[0]:0>130}.{position[1]:0>10}"


def _account_key(account_id: str, kind: str) -> str:
    return f"fs:acct:{{{account_id}}}:{kind}"


def _txn_key(transaction_id: str) -> str:
    return f"fs:txn:{{{transaction_id}}}"


@dataclass(slots=True)
class _Stored:
    """An entry of the recent set: its history form plus the member it is stored as."""

    position: Position
    entry: HistoryEntry
    member: str


def _encode_entry(position: Position, txn: Transaction) -> str:
    lat = "" if txn.latitude is None else repr(txn.latitude)
    lon = "" if txn.longitude is None else repr(txn.longitude)
    return f"{encode_position(position)}|{txn.event_time}|{txn.amount}|{lat}|{lon}"


def _decode_entry(member: str | bytes) -> _Stored:
    text = member.decode() if isinstance(member, bytes) else member
    pos, event_time, amount, lat, lon = text.split("|")
    position = decode_position(pos)
    entry = HistoryEntry(
        position=sortable(position),
        event_time=Decimal(event_time),
        amount=Decimal(amount),
        latitude=float(lat) if lat else None,
        longitude=float(lon) if lon else None,
    )
    return _Stored(position, entry, text)


@dataclass(slots=True)
class _Account:
    recent: list[_Stored]
    devices: dict[str, Position]
    first: Position | None
    members: set[str] = field(default_factory=set)
    new_members: dict[str, float] = field(default_factory=dict)
    new_devices: dict[str, Position] = field(default_factory=dict)


class BatchView:
    """One batch's slice of the state, updated in memory as its records are judged in order."""

    def __init__(
        self,
        accounts: dict[str, _Account],
        seen: dict[str, Position | None],
        alerted: set[str],
    ) -> None:
        self._accounts = accounts
        self._seen = seen
        self._new_seen: dict[str, Position] = {}
        self._alerted = alerted

    @property
    def accounts(self) -> dict[str, _Account]:
        return self._accounts

    @property
    def new_seen(self) -> dict[str, Position]:
        return self._new_seen

    def is_duplicate(self, txn: Transaction, position: Position) -> bool:
        """Seen before under another position: a producer retry, not a replay."""
        first = self._seen.get(txn.transaction_id)
        if first is None:
            self._seen[txn.transaction_id] = position
            self._new_seen[txn.transaction_id] = position
            return False
        return first != position

    def already_alerted(self, transaction_id: str) -> bool:
        return transaction_id in self._alerted

    def history(self, txn: Transaction, position: Position) -> AccountHistory:
        """What `txn` may see: the account's facts from strictly earlier positions."""
        account = self._accounts[txn.account_id]
        recent = [s.entry for s in account.recent if s.position < position]
        device_first = account.devices.get(txn.device_id) if txn.device_id is not None else None
        return AccountHistory(
            recent=recent,
            device_seen_before=device_first is not None and device_first < position,
            has_earlier=account.first is not None and account.first < position,
        )

    def add(self, txn: Transaction, position: Position) -> None:
        """Record a judged transaction so later records of the batch see it."""
        account = self._accounts[txn.account_id]
        member = _encode_entry(position, txn)
        if member not in account.members:
            entry = HistoryEntry(
                sortable(position), txn.event_time, txn.amount, txn.latitude, txn.longitude
            )
            account.members.add(member)
            account.recent.append(_Stored(position, entry, member))
            if len(account.recent) > 1 and account.recent[-2].position > position:
                account.recent.sort(key=lambda s: s.position)  # only after a replayed prefix
            account.new_members[member] = float(txn.event_time)
        if txn.device_id is not None:
            known = account.devices.get(txn.device_id)
            if known is None or position < known:
                account.devices[txn.device_id] = position
                account.new_devices[txn.device_id] = position
        if account.first is None or position < account.first:
            account.first = position


class AccountStateStore:
    """Loads and saves the state a batch needs, each in one pipelined round trip."""

    def __init__(self, redis: Any, config: StateConfig, horizon_s: Decimal) -> None:
        self._redis = redis
        self._config = config
        self._keep_s = float(horizon_s) + config.lateness_s

    def load(self, items: Sequence[tuple[Position, Transaction]]) -> BatchView:
        accounts: dict[str, list[Transaction]] = {}
        for _, txn in items:
            accounts.setdefault(txn.account_id, []).append(txn)
        txn_ids = list(dict.fromkeys(txn.transaction_id for _, txn in items))
        pipe = self._redis.pipeline(transaction=False)
        for account_id, txns in accounts.items():
            oldest = min(float(t.event_time) for t in txns) - self._keep_s - 1
            pipe.zrangebyscore(_account_key(account_id, "recent"), oldest, "+inf")
            devices = sorted({t.device_id for t in txns if t.device_id is not None})
            if devices:
                pipe.hmget(_account_key(account_id, "devices"), devices)
            pipe.get(_account_key(account_id, "first"))
        for txn_id in txn_ids:
            pipe.get(_txn_key(txn_id))
            pipe.get(_txn_key(txn_id) + ":alerted")
        replies = iter(pipe.execute())

        loaded: dict[str, _Account] = {}
        for account_id, txns in accounts.items():
            recent = [_decode_entry(m) for m in next(replies)]
            recent.sort(key=lambda s: s.position)
            asked = sorted({t.device_id for t in txns if t.device_id is not None})
            known: dict[str, Position] = {}
            if asked:
                for device, first in zip(asked, next(replies), strict=True):
                    if first is not None:
                        known[device] = decode_position(first)
            first_raw = next(replies)
            loaded[account_id] = _Account(
                recent=recent,
                devices=known,
                first=decode_position(first_raw) if first_raw is not None else None,
                members={s.member for s in recent},
            )
        seen: dict[str, Position | None] = {}
        alerted: set[str] = set()
        for txn_id in txn_ids:
            first_seen, was_alerted = next(replies), next(replies)
            seen[txn_id] = decode_position(first_seen) if first_seen is not None else None
            if was_alerted is not None:
                alerted.add(txn_id)
        return BatchView(loaded, seen, alerted)

    def save(self, view: BatchView, alerted: Iterable[str] = ()) -> int:
        """Write what the batch added (idempotently); return the number of commands sent."""
        config = self._config
        keep_ttl = int(self._keep_s) + 1
        pipe = self._redis.pipeline(transaction=False)
        for account_id, account in view.accounts.items():
            recent_key = _account_key(account_id, "recent")
            if account.new_members:
                pipe.zadd(recent_key, account.new_members)
                # No trimming by event time here: a record far in the future would wipe
                # entries that a replay of not-yet-checkpointed records still needs. Loads
                # read only the horizon; the key expires when the account goes quiet, and a
                # runaway account is capped at its newest max_entries by event time.
                pipe.zremrangebyrank(recent_key, 0, -config.max_entries - 1)
                pipe.expire(recent_key, keep_ttl)
            if account.new_devices:
                devices_key = _account_key(account_id, "devices")
                for device, position in account.new_devices.items():
                    pipe.hsetnx(devices_key, device, encode_position(position))
                pipe.expire(devices_key, config.memory_ttl_s)
            if account.first is not None:
                first_key = _account_key(account_id, "first")
                pipe.set(first_key, encode_position(account.first), nx=True)
                pipe.expire(first_key, config.memory_ttl_s)
        for txn_id, position in view.new_seen.items():
            pipe.set(_txn_key(txn_id), encode_position(position), nx=True, ex=config.dedup_ttl_s)
        for txn_id in alerted:
            pipe.set(_txn_key(txn_id) + ":alerted", "1", ex=config.dedup_ttl_s)
        commands = len(pipe)
        if commands:
            pipe.execute()
        return commands
