"""A merchant's long-horizon profile as the stream's state store keeps it in Redis.

Why it is shaped like this (the semantics: consumer/rules/profile.py; the keys and bounds:
docs/profiles.md):

- **Shared across shards, written per shard.** A merchant sees transactions from every shard,
  so no one process owns its totals. Each shard keeps its own field per day,
  `fs:merch:{M}:days` `<day>:<shard id>` -> `<count>|<seq>.<sub>`: its count of transactions at
  the merchant that day, and the stream position of the last one counted. Reads sum a day's
  fields over shards. No field is ever written by two shards, so no increment is needed.
- **Positions make a replay count nothing twice.** Within one shard positions only grow, so a
  record whose position is not after the last counted one of its (shard, day) was counted
  already: a replay after a crash finds its records there and adds nothing. The save script
  replaces a field only with a greater position, so a save sent twice, or an older one landing
  late, never lowers a count.
- **Cached, within what is settled.** Other shards write the key between two batches, but only
  for the days their records are at. A merchant loaded when this shard's batch was at day `L`
  (its oldest record's) is trusted for the days before `L - MERCHANT_SETTLE_DAYS`
  (`trusted_before`): later writes to those days come only from late records or from a shard
  that lags a whole day behind. The features read the merchant's days up to `today - D` (D:
  the model's label delay), so the store reuses a cached merchant while every record of the
  batch reads only trusted days, and reloads it otherwise (once per merchant every few days
  when D is 7; at every batch when D is 0). This shard's own counts are known here: `count`
  adds them to the cached view. Its labels are read again at most every
  `merchant_labels_refresh_s` seconds (`labels_at`), alone when the days are still trusted.
  (docs/profiles.md has the bounds.)
- **Labels are read, not written, here** (`fs:merch:{M}:labels`, transaction id ->
  `LabelMark.encode()`): the labels' ingestion keeps them (consumer/state/labels.py).

Pure apart from the data it is handed: the store sends and receives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

from consumer.records import Position
from consumer.rules.profile import MERCHANT_DAYS, LabelMark

# This shard's part of a merchant's day: its count and the position of the last one counted.
OwnDay = tuple[int, Position]
BEFORE_ANY_DAY = -(2**62)  # before any day

MERCHANT_SETTLE_DAYS = 1
"""A loaded merchant's counts are trusted for the days more than this many days before the
oldest record of the batch that loaded it (the "strictly before the load's day" of the design,
widened by one day): another shard that lags this one by up to a day still has its counts of
those days in before any cached read of them. Costs nothing at the default delay (7 days: a
merchant is reloaded every 6 days instead of 7); a delay of 1 day gets no reuse of days (its
labels are still cached)."""


def merchant_days_key(merchant_id: str) -> str:
    """The merchant's per-day, per-shard counts (HASH); its hash tag is the merchant id."""
    return f"fs:merch:{{{merchant_id}}}:days"


def merchant_labels_key(merchant_id: str) -> str:
    """The merchant's labels (HASH, transaction id -> LabelMark.encode()), in the same slot."""
    return f"fs:merch:{{{merchant_id}}}:labels"


def _text(raw: str | bytes) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _position(text: str) -> Position:
    sequence, _, sub = text.partition(".")
    return int(sequence), int(sub or 0)


@lru_cache(maxsize=20_000)
def _decode_label(raw: str | bytes) -> LabelMark:
    """Labels come back batch after batch unchanged: decoding (two Decimals) is memoised."""
    return LabelMark.decode(raw)


# The labels of a merchant without any (most): one shared empty tuple, not a list each.
NO_LABELS: tuple[LabelMark, ...] = ()


class MerchantState:
    """One merchant as the store holds it (cached across batches): transactions per day summed
    over shards, this shard's own part of each day, and the labels. (A plain class: a batch
    may build one per merchant, often one per record.)

    Kept lean in garbage-collected containers: the store caches thousands and loads one for
    most records, and every container that survives a batch is work for the young-generation
    collections (docs/benchmarks.md, "GC policy"). So no labels share NO_LABELS, and the changed
    days are a dict of ints (which CPython does not track) emptied in place, not a set
    allocated again after every save."""

    __slots__ = ("changed", "days", "labels", "labels_at", "newest", "own", "trusted_before")

    def __init__(
        self,
        days: dict[int, int] | None = None,
        own: dict[int, OwnDay] | None = None,
        labels: Sequence[LabelMark] = NO_LABELS,
    ) -> None:
        self.days: dict[int, int] = {} if days is None else days
        self.own: dict[int, OwnDay] = {} if own is None else own
        self.labels: Sequence[LabelMark] = labels
        # The newest day among `days`.
        self.newest = max(self.days) if self.days else BEFORE_ANY_DAY
        self.changed: dict[int, None] = {}  # days of `own` to save (the values unused)
        # Days before this one hold every shard's counts as far as the store trusts them
        # (MERCHANT_SETTLE_DAYS); BEFORE_ANY_DAY: none (never reused for its days).
        self.trusted_before = BEFORE_ANY_DAY
        # When (the store's clock) the labels were read.
        self.labels_at = float("-inf")

    def count(self, day: int, position: Position) -> None:
        """Count a transaction of `day` at `position`, unless its position is not after the
        last one this shard counted for that day (then it is a replay: counted already)."""
        kept = self.own.get(day)
        if kept is not None and position <= kept[1]:
            return
        self.own[day] = (1 if kept is None else kept[0] + 1, position)
        self.days[day] = self.days.get(day, 0) + 1
        self.changed[day] = None
        if day > self.newest:
            self.newest = day
            if len(self.days) > 1:
                self._forget_before(day - MERCHANT_DAYS)

    def _forget_before(self, last_dropped: int) -> None:
        """Days up to `last_dropped` leave, as the save script trims them in Redis."""
        for old in [d for d in self.days if d <= last_dropped]:
            del self.days[old]
            self.own.pop(old, None)
            self.changed.pop(old, None)

    def changes(self) -> dict[int, OwnDay]:
        """This shard's changed days (for the save) and no more to save."""
        own = self.own
        out = {day: own[day] for day in self.changed if day in own}
        self.changed.clear()
        return out


def decode_labels(labels_flat: Sequence[str | bytes]) -> Sequence[LabelMark]:
    """A merchant's labels from their HGETALL reply (flat field, value list)."""
    if not labels_flat:
        return NO_LABELS
    return [_decode_label(labels_flat[i + 1]) for i in range(0, len(labels_flat), 2)]


def merchant_from_redis(
    days_flat: Sequence[str | bytes],
    labels_flat: Sequence[str | bytes],
    shard_id: str,
    pending: Mapping[int, OwnDay] | None = None,
) -> MerchantState:
    """A merchant from its two HGETALL replies (flat field, value lists).

    `pending`: this shard's days that a save still in flight writes (the previous batch's). The
    save script keeps, per field, the value with the greater position, so what Redis will hold
    once it lands is known now: no waiting for it.
    """
    if not days_flat and not labels_flat and not pending:
        return MerchantState()  # the usual new merchant: nothing to parse
    days: dict[int, int] = {}
    own: dict[int, OwnDay] = {}
    for index in range(0, len(days_flat), 2):
        name = _text(days_flat[index])
        day_text, _, shard = name.partition(":")
        count_text, _, position_text = _text(days_flat[index + 1]).partition("|")
        day = int(day_text)
        count = int(count_text)
        days[day] = days.get(day, 0) + count
        if shard == shard_id:
            own[day] = (count, _position(position_text))
    if pending:
        for day, (count, position) in pending.items():
            kept = own.get(day)
            if kept is None or position > kept[1]:
                days[day] = days.get(day, 0) + count - (0 if kept is None else kept[0])
                own[day] = (count, position)
    return MerchantState(days, own, decode_labels(labels_flat))
