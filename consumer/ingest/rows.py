"""A file's rows to the contract's record bytes, each validated exactly as the stream would.

Why it is shaped like this:
- **One validator.** A row becomes the bytes a producer would put, and those bytes go through
  `consumer.records.parse_transaction` (and the future-timestamp check of
  `consumer.batch.timeliness`, with the time of the ingest as the arrival): a row is rejected
  here exactly when the workers would dead-letter it, with the same reason.
- **Exact decimals.** A decimal cell is written into the record as the literal it spells (only a
  `,` separator becomes `.`), never through a float: `10000.001` stays `10000.001` and `5.00`
  keeps its two places. A JSON Lines row is put as its own bytes, untouched.
- **No card numbers in reasons.** A reason is what is wrong, never the value; and any run of 12
  or more digits (a card or account number) that still reaches one is masked to its last four.
- **Anything may be in a file**: every row yields an `Accepted` or a `Rejected`; only the
  source's own failures (`SourceError`) and a header that lacks a mapped column
  (`MappingError`) raise.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from consumer.batch.timeliness import too_far_ahead
from consumer.ingest.entries import Entry
from consumer.ingest.mapping import CONTRACT_FIELDS, ColumnSpec, IngestMapping, MappingError
from consumer.ingest.source import MAX_LINE_BYTES, decompressed, lines
from consumer.records import Transaction, parse_transaction

__all__ = [
    "DEFAULT_MAX_AHEAD_S",
    "FORMATS",
    "Accepted",
    "Rejected",
    "detect_format",
    "mask_numbers",
    "read_rows",
]

FORMATS = ("csv", "jsonl")
DEFAULT_MAX_AHEAD_S = 86400  # the workers' FRAUD_TIMESTAMP_MAX_AHEAD_S default
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_EPOCH_MS = re.compile(r"-?[0-9]{1,16}")
_EPOCH_S = re.compile(r"-?[0-9]{1,13}(?:\.[0-9]{1,30})?")
_LONG_NUMBER = re.compile(r"[0-9]{12,}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Accepted:
    """A row the stream would judge: its line number and the entry to put (key = account)."""

    row: int
    entry: Entry


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row the stream would dead-letter (or that cannot become a record): its line number
    in the file (1 = the first line, a CSV header included) and why."""

    row: int
    reason: str


class _Bad(Exception):
    """Internal: a reason for the row at hand."""


def mask_numbers(text: str) -> str:
    """Every run of 12+ digits (a card or account number) masked to its last four."""
    return _LONG_NUMBER.sub(lambda m: "*" * (len(m.group()) - 4) + m.group()[-4:], text)


def detect_format(name: str, first_line: bytes) -> str:
    """`csv` or `jsonl`: by the name (`.csv`, `.jsonl`/`.ndjson`/`.json`, before `.gz`), else
    by the first line (an object: JSON Lines)."""
    base = name.lower().removesuffix(".gz")
    if base.endswith(".csv"):
        return "csv"
    if base.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return "jsonl" if first_line.lstrip(codecs.BOM_UTF8).lstrip().startswith(b"{") else "csv"


def _validated(data: bytes, now_ms: int, max_ahead_s: int) -> Transaction:
    parsed = parse_transaction(data)
    if not isinstance(parsed, Transaction):
        raise _Bad(parsed.reason)
    ahead = too_far_ahead(parsed, now_ms, max_ahead_s)
    if ahead is not None:
        raise _Bad(ahead)
    return parsed


def _entry(data: bytes, txn: Transaction) -> Entry:
    try:
        return Entry(data, txn.account_id)
    except ValueError as exc:  # larger than a Kinesis record
        raise _Bad(str(exc)) from None


# --- cells to JSON ------------------------------------------------------------------------------


def _timestamp(spec: ColumnSpec, text: str) -> str:
    """The JSON for a timestamp cell: an ISO string or epoch milliseconds as the contract has
    them; a strptime pattern's time written as ISO-8601 with its zone's offset."""
    fmt = spec.time_format
    if fmt == "iso8601":
        return json.dumps(text, ensure_ascii=False)
    if fmt == "epoch_ms":
        if not _EPOCH_MS.fullmatch(text):
            raise _Bad(f"{spec.field}: not epoch milliseconds (an integer)")
        return str(int(text))
    if fmt == "epoch_s":
        if not _EPOCH_S.fullmatch(text):
            raise _Bad(f"{spec.field}: not epoch seconds (a plain decimal number)")
        seconds = Decimal(text)
        millis = seconds.scaleb(3)
        if millis == millis.to_integral_value():
            return str(int(millis))
        whole = int(seconds.to_integral_value(rounding=ROUND_FLOOR))
        fraction = format(seconds - whole, "f").partition(".")[2].rstrip("0")
        try:
            at = _EPOCH + timedelta(seconds=whole)
        except OverflowError:
            raise _Bad(f"{spec.field}: epoch seconds out of range") from None
        return json.dumps(f"{at:%Y-%m-%dT%H:%M:%S}.{fraction}Z")
    try:
        at = datetime.strptime(text, fmt)
    except ValueError:
        raise _Bad(f"{spec.field}: does not match the format {fmt!r}") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=spec.zone)
    try:
        return json.dumps(at.isoformat())
    except (OverflowError, ValueError):
        raise _Bad(f"{spec.field}: not a time of its zone") from None


def _cell_json(spec: ColumnSpec, text: str, decimal_separator: str) -> str:
    kind = spec.type
    if kind == "string":
        return json.dumps(text, ensure_ascii=False)
    if kind == "decimal":
        literal = text
        if decimal_separator == "," and "." not in literal:
            literal = literal.replace(",", ".", 1)
        if not _JSON_NUMBER.fullmatch(literal):
            raise _Bad(f"{spec.field}: not a decimal number")
        return literal
    if kind == "integer":
        if not _INTEGER.fullmatch(text):
            raise _Bad(f"{spec.field}: not an integer")
        return text
    if kind == "boolean":
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return "true"
        if lowered in ("false", "0", "no"):
            return "false"
        raise _Bad(f"{spec.field}: not a boolean (true, false, 1, 0, yes, no)")
    return _timestamp(spec, text)


class _CsvRows:
    """A mapping bound to a file's header: cells by position, each row to record bytes."""

    def __init__(self, mapping: IngestMapping, header: list[str], name: str) -> None:
        names = [cell.strip() for cell in header]
        positions: dict[str, int] = {}
        for spec in mapping.specs:
            if spec.column is None:
                continue
            where = "fields" if spec.field in CONTRACT_FIELDS else "extra"
            count = names.count(spec.column)
            if count == 0:
                raise MappingError(
                    f"{where}.{spec.field}.column: no column {spec.column!r} in the header of "
                    f"{name} (it has {len(names)} columns)"
                )
            if count > 1:
                raise MappingError(
                    f"{where}.{spec.field}.column: {spec.column!r} is named {count} times in "
                    f"the header of {name}"
                )
            positions[spec.column] = names.index(spec.column)
        self._mapping = mapping
        self._positions = positions
        self.width = len(names)

    def record(self, cells: list[str]) -> bytes:
        if len(cells) != self.width:
            raise _Bad(f"{len(cells)} cells, the header has {self.width}")
        options = self._mapping.csv
        parts: list[str] = []
        for spec in self._mapping.specs:
            if spec.column is None:
                text = spec.value or ""
            else:
                text = cells[self._positions[spec.column]]
                if options.strip:
                    text = text.strip()
                if text in options.null_values:
                    continue  # absent, as a JSON null would be
            parts.append(
                f"{json.dumps(spec.field)}:{_cell_json(spec, text, options.decimal_separator)}"
            )
        return ("{" + ",".join(parts) + "}").encode("utf-8")


def _csv_cells(line: bytes, delimiter: str) -> list[str]:
    try:
        text = line.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError as exc:
        raise _Bad(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        return next(csv.reader([text], delimiter=delimiter, strict=True), [])
    except csv.Error as exc:
        raise _Bad(f"not a CSV row: {exc}") from None


def read_rows(
    stream: Any,
    name: str,
    *,
    mapping: IngestMapping | None,
    fmt: str | None = None,
    max_ahead_s: int = DEFAULT_MAX_AHEAD_S,
    clock: Callable[[], float] = time.time,
) -> Iterator[Accepted | Rejected]:
    """Every row of the source, in order, as `Accepted` (its entry, key = account_id) or
    `Rejected` (row number, reason). Blank lines are skipped. A CSV file's first non-blank line
    is its header, bound to `mapping` (a CSV without one, or a header lacking a mapped column,
    raises `MappingError` before any row is yielded); JSON Lines rows are put as they are.
    `fmt` forces `csv` or `jsonl`; else `detect_format`."""
    row = 0
    kind = fmt
    bound: _CsvRows | None = None
    for raw in lines(decompressed(stream, name)):
        row += 1
        if raw is None:
            yield Rejected(row, f"line longer than {MAX_LINE_BYTES} bytes")
            continue
        if row == 1:
            raw = raw.removeprefix(codecs.BOM_UTF8)
        if not raw.strip():
            continue
        if kind is None:
            kind = detect_format(name, raw)
        try:
            if kind == "jsonl":
                data = raw.rstrip(b"\r")
            else:
                if mapping is None:
                    raise MappingError(f"{name} is CSV: it needs a mapping (--mapping)")
                if bound is None:
                    try:
                        header = _csv_cells(raw, mapping.csv.delimiter)
                    except _Bad as bad:
                        raise MappingError(f"{name}: header row: {bad}") from None
                    bound = _CsvRows(mapping, header, name)
                    continue
                data = bound.record(_csv_cells(raw, mapping.csv.delimiter))
            txn = _validated(data, int(clock() * 1000), max_ahead_s)
            yield Accepted(row, _entry(data, txn))
        except _Bad as bad:
            yield Rejected(row, mask_numbers(str(bad)))
