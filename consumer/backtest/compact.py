"""One account's retained history entries, packed in bytes, not as objects (sizes:
docs/rules-as-data.md#memory).

A backtest over a day holds nearly every record of the day (the state horizon is ~23 h), so an entry
is kept as one fixed-size row of a bytearray (`ROW`: index, latitude, longitude, country, flags),
its float event time in an array, and its event time and amount as their decimal text in another
bytearray; the HistoryEntry objects the rules read are built only when a record of the account is
judged (`entries`). Exact: `Decimal(str(d))` is `d` to the last digit and exponent (the decimal
specification's to-string and from-string round trip); of the forms tried, the text is the most
compact and the quickest to build back (docs/rules-as-data.md#memory). Latitude and longitude are
the record's doubles (a valid record never has NaN there); countries are small ids into a table
shared by all accounts.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left
from decimal import Decimal
from itertools import compress, pairwise

from consumer.rules.history import HistoryEntry

# index (position (index, 0)), latitude, longitude, country id (0: none), flags (_NO_*).
ROW = struct.Struct("<qddIB")
_SIZE = ROW.size
_NO_LAT, _NO_LON = 1, 2
_SEP = 0x20  # after each decimal in `text`


class Countries:
    """Country codes as small ids (0 is "none"), one table for every account of a run."""

    __slots__ = ("ids", "names")

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.names: list[str | None] = [None]

    def id_of(self, country: str | None) -> int:
        if country is None:
            return 0
        known = self.ids.get(country)
        if known is None:
            known = self.ids[country] = len(self.names)
            self.names.append(country)
        return known


class PackedEntries:
    """An account's retained entries in stream order: rows, their float event times (what the
    horizon and the cap compare, as Redis scores do), and "event-time amount " text each."""

    __slots__ = ("ordered", "rows", "text", "times")

    def __init__(self) -> None:
        self.rows = bytearray()
        self.text = bytearray()
        self.times = array("d")
        self.ordered = True  # times ascend (the usual case): trimming is a prefix cut

    def __len__(self) -> int:
        return len(self.times)

    def append(
        self,
        index: int,
        event_time: Decimal,
        t: float,
        amount: Decimal,
        latitude: float | None,
        longitude: float | None,
        country: int,
    ) -> None:
        flags = 0
        if latitude is None:
            flags = _NO_LAT
            latitude = 0.0
        if longitude is None:
            flags |= _NO_LON
            longitude = 0.0
        times = self.times
        if times and t < times[-1]:
            self.ordered = False
        self.rows += ROW.pack(index, latitude, longitude, country, flags)
        self.text += f"{event_time!s} {amount!s} ".encode("ascii")
        times.append(t)

    def oldest(self) -> float:
        times = self.times
        if not times:
            return float("inf")
        return times[0] if self.ordered else min(times)

    def _text_end(self, entries: int, start: int = 0) -> int:
        """Where the text of `entries` entries from byte `start` ends."""
        text = self.text
        at = start
        for _ in range(2 * entries):
            at = text.index(_SEP, at) + 1
        return at

    def forget_before(self, bound: float) -> int:
        """Drop every entry with an event time below `bound`; how many were dropped."""
        times = self.times
        if self.ordered:
            cut = bisect_left(times, bound)
            if cut:
                del times[:cut]
                del self.rows[: cut * _SIZE]
                del self.text[: self._text_end(cut)]
            return cut
        keep = [t >= bound for t in times]
        dropped = keep.count(False)
        if dropped:
            rows = self.rows
            self.rows = bytearray(
                b"".join(compress((rows[i : i + _SIZE] for i in range(0, len(rows), _SIZE)), keep))
            )
            parts = self.text.split(b" ")[:-1]
            pairs = zip(parts[::2], parts[1::2], strict=True)
            kept_text = compress((b"%s %s " % pair for pair in pairs), keep)
            self.text = bytearray(b"".join(kept_text))
            self.times = array("d", compress(times, keep))
            self.ordered = all(a <= b for a, b in pairwise(self.times))
        return dropped

    def drop_oldest(self) -> int:
        """Over the cap: drop the entry with the earliest event time (ties: the earliest in the
        stream), as ZREMRANGEBYRANK on event-time scores does; its place in stream order."""
        times = self.times
        at = 0 if self.ordered else times.index(min(times))
        del times[at]
        del self.rows[at * _SIZE : (at + 1) * _SIZE]
        start = self._text_end(at)
        del self.text[start : self._text_end(1, start)]
        return at

    def entries(
        self, countries: list[str | None], start: int = 0, stop: int | None = None
    ) -> list[HistoryEntry]:
        """Entries `start` to `stop` (default: all) as the rules read them, in stream order
        (built now: the slow part). A range near the newest end reads only its own text."""
        count = len(self.times)
        stop = count if stop is None else stop
        if start >= stop:
            return []
        if start == 0 and stop == count:
            decimals = list(map(Decimal, self.text.decode("ascii").split()))
        else:  # the text of entries start.. from the right: 2 tokens an entry, then ""
            tail = self.text.rsplit(b" ", 2 * (count - start) + 1)[-2 * (count - start) - 1 : -1]
            text = b" ".join(tail[: 2 * (stop - start)]).decode("ascii")
            decimals = list(map(Decimal, text.split()))
        rows = self.rows[start * _SIZE : stop * _SIZE]
        entry = HistoryEntry
        return [
            entry((index, 0), event_time, amount, lat, lon, countries[country])
            if not flags
            else entry(
                (index, 0),
                event_time,
                amount,
                None if flags & _NO_LAT else lat,
                None if flags & _NO_LON else lon,
                countries[country],
            )
            for (index, lat, lon, country, flags), event_time, amount in zip(
                ROW.iter_unpack(rows), decimals[::2], decimals[1::2], strict=True
            )
        ]
