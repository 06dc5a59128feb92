"""Read label files (docs/contract.md, "Labels"): CSV with a header row or JSON Lines, gzip or not,
into `Label`s and `BadLabel`s.

Why it is shaped like this:
- **Files come from people and other systems** (a chargeback export, an analyst's spreadsheet),
  so any line may be wrong in any way. Every wrong line becomes a `BadLabel` naming where it is
  (`file:line`) and what is wrong; nothing a file holds can raise, stop the file or stop the
  worker that reads it (a property test feeds arbitrary bytes). Only the I/O beneath (an S3
  connection dropped mid-file) raises, so the caller retries the whole file later.
- **Bounded**: a line is read at most `MAX_LINE_BYTES` at a time (a 2 GB line without a newline
  costs one chunk of memory, not 2 GB), ids are as long as a transaction's, and a timestamp must
  be one a transaction could carry (years 0001-9999).
- **The same timestamps as transactions**: `consumer.records.parse_event_time` decides, so a
  label's `event_time` can be copied from the transaction as it was sent (epoch milliseconds or
  ISO-8601). `labelled_at` is also bounded to microseconds and to 1970 or later: the Redis script
  that keeps the newest label (consumer/state/labels.py) compares it as a fixed-width decimal
  string, exactly, and `LabelMark.encode()` writes it in plain notation.

Pure: no I/O but the file object it is handed.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, BinaryIO

import msgspec

from consumer.labels.lines import bounded_lines, gunzipped
from consumer.records import ID_MAX_LEN, TEXT_MAX_LEN, parse_event_time

__all__ = [
    "MAX_LINE_BYTES",
    "BadLabel",
    "Label",
    "read_labels",
]

# A label line is a few hundred bytes; its longest valid form (three ids of 256 escaped
# characters, two long timestamps) stays well under this.
MAX_LINE_BYTES = 16 * 1024
# Year 0001-01-01 .. 9999-12-31 in epoch seconds: what the ISO form can say, the bound of the
# epoch-milliseconds form too (a 5000-digit integer is not a time).
_MIN_SECONDS = Decimal(-62135596800)
_MAX_SECONDS = Decimal(253402300800)
_MICRO_DIGITS = 6

REQUIRED_FIELDS: tuple[str, ...] = (
    "transaction_id",
    "is_fraud",
    "labelled_at",
    "account_id",
    "event_time",
)
OPTIONAL_FIELDS: tuple[str, ...] = ("merchant_id",)

_WANT_ID = f"must be a string of 1..{ID_MAX_LEN} characters"
_WANT_MERCHANT = f"must be a string of at most {TEXT_MAX_LEN} characters, or absent"
_WANT_BOOL = "must be true, false, 1 or 0"
_WANT_TIME = (
    "must be integer epoch milliseconds or an ISO-8601 string YYYY-MM-DDTHH:MM[:SS[.fraction]] "
    "with a zone (Z, +HH:MM, +HHMM, +HH), in years 0001-9999"
)


class Label(msgspec.Struct, frozen=True, gc=False):
    """One valid label: the verdict on one transaction, and where it applies."""

    transaction_id: str
    is_fraud: bool
    labelled_at: Decimal  # epoch seconds, >= 0, a multiple of 1e-6, plain notation
    account_id: str
    merchant_id: str | None
    event_time: Decimal  # epoch seconds, the transaction's own time


class BadLabel(msgspec.Struct, frozen=True, gc=False):
    """A line that is not a valid label: `where` is `file:line`, `reason` what is wrong."""

    where: str
    reason: str


class _Bad(Exception):
    """Internal: carries a reason out of a nested check."""


# --- lines ------------------------------------------------------------------------------------


class _Unreadable(Exception):
    """The compressed stream is corrupt or truncated: the rest of the file cannot be read."""


# --- values -----------------------------------------------------------------------------------


def _utf8_safe(value: str) -> bool:
    """Whether the string has a UTF-8 form (a JSON `\\ud800` escape decodes to one that has
    none, and it would fail later as a Redis key)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _id(value: object, field: str) -> str:
    if value is None:
        raise _Bad(f"{field}: missing")
    if type(value) is not str or not 0 < len(value) <= ID_MAX_LEN or not _utf8_safe(value):
        raise _Bad(f"{field}: {_WANT_ID}")
    return value


def _merchant(value: object) -> str | None:
    if value is None or value == "":
        return None
    if type(value) is not str or len(value) > TEXT_MAX_LEN or not _utf8_safe(value):
        raise _Bad(f"merchant_id: {_WANT_MERCHANT}")
    return value


def _time(value: object, field: str) -> Decimal:
    if value is None:
        raise _Bad(f"{field}: missing")
    if type(value) is int and not -(10**18) < value < 10**18:
        raise _Bad(f"{field}: {_WANT_TIME}")  # before parse_event_time builds a huge Decimal
    seconds = parse_event_time(value)
    if seconds is None or not _MIN_SECONDS <= seconds < _MAX_SECONDS:
        raise _Bad(f"{field}: {_WANT_TIME}")
    return seconds


def _labelled_at(value: object) -> Decimal:
    """The time of the verdict, canonical: plain notation, no trailing fraction zeros."""
    seconds = _time(value, "labelled_at")
    if seconds < 0:
        raise _Bad("labelled_at: must be 1970-01-01T00:00:00Z or later")
    whole, _, fraction = format(seconds, "f").partition(".")
    fraction = fraction.rstrip("0")
    if len(fraction) > _MICRO_DIGITS:
        raise _Bad("labelled_at: at most 6 decimal places of a second (microseconds)")
    return Decimal(f"{whole}.{fraction}") if fraction else Decimal(whole)


def _verdict(value: object) -> bool:
    if value is None:
        raise _Bad("is_fraud: missing")
    if type(value) is bool:
        return value
    if type(value) is int and value in (0, 1):
        return value == 1
    if type(value) is str:
        text = value.strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
    raise _Bad(f"is_fraud: {_WANT_BOOL}")


def _label(get: Callable[[str], object]) -> Label:
    transaction_id = _id(get("transaction_id"), "transaction_id")
    is_fraud = _verdict(get("is_fraud"))
    labelled_at = _labelled_at(get("labelled_at"))
    account_id = _id(get("account_id"), "account_id")
    merchant_id = _merchant(get("merchant_id"))
    event_time = _time(get("event_time"), "event_time")
    if labelled_at < event_time:
        raise _Bad("labelled_at: before event_time (a verdict comes after its transaction)")
    return Label(transaction_id, is_fraud, labelled_at, account_id, merchant_id, event_time)


# --- formats ----------------------------------------------------------------------------------

_json = msgspec.json.Decoder(float_hook=Decimal)


def _from_json(line: bytes) -> Label:
    try:
        obj = _json.decode(line)
    except (msgspec.DecodeError, RecursionError, ValueError):
        raise _Bad("not a JSON object: invalid JSON") from None
    if type(obj) is not dict:
        raise _Bad("not a JSON object")
    return _label(obj.get)


def _csv_time(text: str) -> object:
    """A CSV cell: digits (optionally signed) are epoch milliseconds, anything else an ISO
    string, as a JSON integer and a JSON string would be."""
    stripped = text.strip()
    body = stripped[1:] if stripped[:1] in ("-", "+") else stripped
    if body.isascii() and body.isdigit() and len(body) <= 19:
        return int(stripped)
    return stripped or None


def _csv_cells(line: str) -> list[str]:
    try:
        return next(csv.reader([line], strict=True), [])
    except csv.Error as exc:
        raise _Bad(f"not a CSV row: {exc}") from None


class _CsvHeader:
    """Column positions by name, from the header row."""

    def __init__(self, cells: list[str]) -> None:
        names = [cell.strip().lower() for cell in cells]
        missing = [name for name in REQUIRED_FIELDS if name not in names]
        if missing:
            raise _Bad(f"header: missing column(s) {', '.join(missing)}")
        wanted = REQUIRED_FIELDS + OPTIONAL_FIELDS
        repeated = sorted({name for name in names if name in wanted and names.count(name) > 1})
        if repeated:
            raise _Bad(f"header: column(s) named twice: {', '.join(repeated)}")
        self.width = len(names)
        self.index = {name: names.index(name) for name in wanted if name in names}

    def label(self, cells: list[str]) -> Label:
        if len(cells) != self.width:
            raise _Bad(f"{len(cells)} columns, the header has {self.width}")
        cells_at = self.index

        def get(name: str) -> object:
            at = cells_at.get(name)
            if at is None:
                return None
            text = cells[at]
            if name in ("labelled_at", "event_time"):
                return _csv_time(text)
            if name == "is_fraud":
                return text if text.strip() else None
            return text if text != "" or name == "merchant_id" else None

        return _label(get)


def _format_of(name: str, first: bytes) -> str:
    """`csv` or `jsonl`: by the file's name, else by its first line."""
    base = name.lower().removesuffix(".gz")
    if base.endswith(".csv"):
        return "csv"
    if base.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return "jsonl" if first.lstrip(codecs.BOM_UTF8).lstrip().startswith(b"{") else "csv"


def read_labels(
    stream: BinaryIO | Any, name: str, not_after: Decimal | None = None
) -> Iterator[Label | BadLabel]:
    """Every line of a label file, in order, as a `Label` or a `BadLabel` (`name:line`).

    Blank lines are skipped. A CSV file's first non-blank line is its header; a header without
    the required columns is one BadLabel and the rest of the file is not read. A gzip stream
    that turns out corrupt or truncated ends the file with one BadLabel after the lines read.
    `not_after` (epoch seconds): a `labelled_at` later than it is bad (a clock far ahead would
    otherwise win over every later verdict). Only `stream`'s own I/O errors propagate.
    """
    line_no = 0
    try:
        lines = bounded_lines(gunzipped(stream, _Unreadable, gzip_if_named=name), MAX_LINE_BYTES)
        kind: str | None = None
        header: _CsvHeader | None = None
        for raw in lines:
            line_no += 1
            where = f"{name}:{line_no}"
            if raw is None:
                yield BadLabel(where, f"line longer than {MAX_LINE_BYTES} bytes")
                continue
            if line_no == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if not raw.strip():
                continue
            if kind is None:
                kind = _format_of(name, raw)
            try:
                if kind == "jsonl":
                    label = _from_json(raw)
                else:
                    try:
                        text = raw.decode().rstrip("\r")
                    except UnicodeDecodeError:
                        raise _Bad("not UTF-8 text") from None
                    cells = _csv_cells(text)
                    if header is None:
                        header = _CsvHeader(cells)
                        continue
                    label = header.label(cells)
                if not_after is not None and label.labelled_at > not_after:
                    raise _Bad("labelled_at: in the future")
                yield label
            except _Bad as bad:
                yield BadLabel(where, str(bad))
                if kind == "csv" and header is None:
                    return  # no header: no line after it can be read by name
    except _Unreadable as exc:
        yield BadLabel(f"{name}:{line_no + 1}", str(exc))
