"""An account's history as the rules read it, built from its packed entries only as far back
as a pass over it goes.

The rules read a history known to be in event-time order newest first and stop at the edge of
their windows (consumer.rules.scan), so a busy account's judgement needs its last few entries,
not the hundreds the state horizon keeps. `TailView` builds entries from the newest end in
growing chunks as `reversed()` asks for them, and all of them for a forward pass (`iter`,
indexing), where the order-free rules and unordered histories go.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

from consumer.backtest.compact import PackedEntries
from consumer.rules.history import HistoryEntry

FIRST_CHUNK = 8  # entries built at the first step back; each further step doubles


class TailView(Sequence[HistoryEntry]):
    """The entries of `packed`, in stream order, of which the newest `built` exist as objects.

    The owner keeps it equal to `packed`: `append` with every packed append, `drop_prefix` and
    `drop_at` with every packed removal."""

    __slots__ = ("_countries", "_packed", "_start", "_tail")

    def __init__(self, packed: PackedEntries, countries: list[str | None]) -> None:
        self._packed = packed
        self._countries = countries  # the run's country table (grows; ids never change)
        self._tail: list[HistoryEntry] = []  # entries _start.. of packed, built
        self._start = len(packed)

    @property
    def built(self) -> int:
        return len(self._tail)

    def __len__(self) -> int:
        return self._start + len(self._tail)

    def __bool__(self) -> bool:
        return self._start > 0 or bool(self._tail)

    def _build_back(self, entries: int) -> list[HistoryEntry]:
        """Build the `entries` before the built tail (fewer at the start); the ones built."""
        start = max(0, self._start - entries)
        older = self._packed.entries(self._countries, start, self._start)
        self._tail[:0] = older
        self._start = start
        return older

    def __reversed__(self) -> Iterator[HistoryEntry]:
        tail = self._tail
        yield from reversed(tail)
        step = max(FIRST_CHUNK, len(tail))
        while self._start > 0:
            older = self._build_back(step)
            yield from reversed(older)
            step *= 2

    def __iter__(self) -> Iterator[HistoryEntry]:
        if self._start:
            self._build_back(self._start)
        return iter(self._tail)

    @overload
    def __getitem__(self, index: int) -> HistoryEntry: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[HistoryEntry]: ...

    def __getitem__(self, index: int | slice) -> HistoryEntry | Sequence[HistoryEntry]:
        if self._start:
            self._build_back(self._start)
        return self._tail[index]

    def append(self, entry: HistoryEntry) -> None:
        """The entry just packed at the end."""
        self._tail.append(entry)

    def drop_prefix(self, entries: int) -> int:
        """The first `entries` left the packed entries; how many of them were built."""
        unbuilt = min(entries, self._start)
        self._start -= unbuilt
        built = entries - unbuilt
        if built:
            del self._tail[:built]
        return built

    def drop_at(self, place: int) -> int:
        """The entry at `place` left the packed entries; 1 if it was built, else 0."""
        if place < self._start:
            self._start -= 1
            return 0
        del self._tail[place - self._start]
        return 1
