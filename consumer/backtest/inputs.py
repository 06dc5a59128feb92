"""Records for a backtest, in file order: the producer's replay format or CSV, plain or gzip.

Formats (chosen by the name: `.csv` / `.csv.gz` is CSV, anything else JSON Lines; gzip by its
magic bytes, whatever the name):

- **Replay JSON Lines** (load_test/producer.py): one object a line, `{"data": "<record text>"}`
  or `{"data_b64": "<base64>"}`, optional `partition_key` and other keys (ignored). A line that
  is a JSON object without either key is taken as the record itself. Blank lines are skipped.
- **CSV with a header**: one row per transaction, columns named as the contract's fields. An
  empty cell is an absent field; `amount`, `account_balance`, `latitude`, `longitude` are
  written into the record as the number literal of the cell (exact: the text, never a float);
  `timestamp` / `account_created_at` as an integer when the cell is all digits (epoch ms), else
  as text; an `expected_rules` cell (the label) as a JSON list, or rule ids separated by `;`
  (an empty cell in that column is the empty label: no rule should fire).

Each record is yielded as the bytes the stream would have received, so the same
`parse_transaction` validates it; a line that cannot even be read as a record is yielded as a
`BadLine` with its reason (counted as invalid, never a crash). Records are numbered from 1 in
file order (blank lines and the CSV header are not records).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import msgspec
from isal import igzip, igzip_lib

from consumer.errors import FraudstreamError

LABEL = "expected_rules"
_NUMBER_FIELDS = frozenset({"amount", "account_balance", "latitude", "longitude"})
_TIME_FIELDS = frozenset({"timestamp", "account_created_at"})
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_DIGITS = re.compile(r"-?[0-9]+")


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that is not a record at all, and why (the run counts it by its record number)."""

    reason: str


Item = bytes | BadLine

# What reading a damaged file raises: a cut gzip stream (EOFError), a bad CRC or header
# (gzip.BadGzipFile, an OSError), a corrupt deflate stream (IsalError), any other I/O error.
# (isal's stub declares IsalError as an instance; it is the class.)
_CORRUPT_DEFLATE = cast(type[Exception], igzip_lib.IsalError)
READ_ERRORS: tuple[type[Exception], ...] = (OSError, EOFError, _CORRUPT_DEFLATE)


class UnreadableInput(FraudstreamError, OSError):
    """A READ_ERRORS error met by one part's process, raised again in the parent (an OSError,
    so the CLI reports it as it reports the same error in one process)."""


class RecordFile:
    """An input file opened for reading; `position()` is how far into the file (bytes on disk,
    for a progress bar) and `size` the file's size."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.size = self.path.stat().st_size
        self._raw: IO[bytes] = self.path.open("rb")
        magic = self._raw.read(2)
        self._raw.seek(0)
        self.stream: IO[bytes] = self._raw
        if magic == b"\x1f\x8b":
            # ISA-L's inflate (python-isal): the same bytes as the gzip module's, for less CPU
            # (docs/rules-as-data.md#speed). Buffered on top: line iteration over a bare gzip
            # file object is slower.
            unzipped = igzip.IGzipFile(fileobj=self._raw, mode="rb")  # type: ignore[no-untyped-call]
            self.stream = cast(IO[bytes], io.BufferedReader(unzipped, 1 << 20))
        name = self.path.name.lower().removesuffix(".gz")
        self.is_csv = name.endswith(".csv")

    def position(self) -> int:
        return self.size if self._raw.closed else self._raw.tell()

    def items(self, part: Part = None) -> Iterator[tuple[int, Item]]:
        """(record number from 0, record) in file order; with `part`, only that part's."""
        return csv_items(self.stream, part) if self.is_csv else jsonl_items(self.stream, part)

    def close(self) -> None:
        self.stream.close()
        self._raw.close()

    def __enter__(self) -> RecordFile:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


Part = tuple[int, int] | None  # (this part, parts): only the records of accounts hashed here


def part_of(account_id: bytes, parts: int) -> int:
    """Which of `parts` an account's records go to (stable across processes and runs)."""
    return zlib.crc32(account_id) % parts


# The account id as the replay format escapes it inside "data", and in a bare record line.
_ACCOUNT_ESCAPED = re.compile(rb'\\"account_id\\":\s*\\"([^"\\]+)\\"')
_ACCOUNT_BARE = re.compile(rb'"account_id":\s*"([^"\\]+)"')


def _route_key(raw: bytes) -> bytes:
    """The account id of a line, found without parsing it when the usual layout allows."""
    match = _ACCOUNT_ESCAPED.search(raw) or _ACCOUNT_BARE.search(raw)
    if match is not None:
        return match.group(1)
    item = _jsonl_item(raw)  # rare: parse it (every process decides the same)
    if type(item) is bytes:
        try:
            account = json.loads(item).get("account_id")
        except (ValueError, RecursionError, AttributeError):
            return b""
        if type(account) is str:
            return account.encode("utf-8", "surrogatepass")
    return b""


def jsonl_items(lines: IO[bytes], part: Part = None) -> Iterator[tuple[int, Item]]:
    """(record number from 0, record) for each non-blank line; with `part`, only its own."""
    index = -1
    item_of = _jsonl_item
    if part is None:
        for raw in lines:
            item = item_of(raw)
            if item is not None:
                index += 1
                yield index, item
        return
    mine, parts = part
    crc32 = zlib.crc32
    for raw in lines:
        if not raw.strip():
            continue
        index += 1
        if crc32(_route_key(raw)) % parts == mine:
            item = item_of(raw)
            if item is not None:
                yield index, item


class _ReplayLine(msgspec.Struct):
    """The two keys of a replay line that matter; msgspec skips the others unread."""

    data: str | None = None
    data_b64: str | None = None


_decode_replay_line = msgspec.json.Decoder(_ReplayLine).decode


def _jsonl_item(raw: bytes) -> Item | None:
    """One line: the record's bytes, a BadLine, or None for a blank line.

    The usual line (a UTF-8 JSON object whose "data" / "data_b64" are strings or null) is
    decoded by msgspec, quicker than `json.loads` into a dict (docs/rules-as-data.md#speed);
    anything msgspec refuses (blank, not an object, other types, NaN, other encodings, lone
    surrogates) takes `_jsonl_item_lenient`, which decides as `json.loads` does and words the
    reasons."""
    try:
        line = _decode_replay_line(raw)
    except (msgspec.MsgspecError, ValueError):
        return _jsonl_item_lenient(raw)
    return _item(line.data, line.data_b64, raw)


def _jsonl_item_lenient(raw: bytes) -> Item | None:
    """`_jsonl_item` for any line, through `json.loads`."""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        if not raw.strip():
            return None
        return BadLine(f"replay line: not valid JSON: {exc}")
    if type(obj) is dict:
        data, b64 = obj.get("data"), obj.get("data_b64")
        if (data is None or type(data) is str) and (b64 is None or type(b64) is str):
            return _item(data, b64, raw)
        if type(data) is str:
            return _item(data, None, raw)
    return BadLine('replay line: expected {"data": ...} or {"data_b64": ...}')


def _item(data: str | None, b64: str | None, raw: bytes) -> Item:
    """The record a replay object holds: "data" when a string, else "data_b64" decoded, else
    (neither key) the line itself."""
    if data is not None:
        try:
            return data.encode()
        except UnicodeEncodeError:
            return BadLine('replay line: "data" is not encodable as UTF-8')
    if b64 is not None:
        try:
            return base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            return BadLine(f'replay line: "data_b64" is not valid base64: {exc}')
    return raw.rstrip(b"\r\n")  # the record itself


def csv_items(stream: IO[bytes], part: Part = None) -> Iterator[tuple[int, Item]]:
    """(record number from 0, record) for each non-empty row; with `part`, only its own."""
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="", errors="strict")
    try:
        yield from _csv_rows(csv.reader(text), part)
    finally:
        text.detach()  # the file stays open: its owner closes it


def _csv_rows(reader: Any, part: Part) -> Iterator[tuple[int, Item]]:
    try:
        header = next(reader)
    except StopIteration:
        return
    except (UnicodeDecodeError, csv.Error) as exc:
        if part is None or part[0] == 0:
            yield 0, BadLine(f"unreadable CSV header: {exc}")
        return
    header = [name.strip().removeprefix("\ufeff") for name in header]
    if len(set(header)) != len(header):
        if part is None or part[0] == 0:
            yield 0, BadLine("CSV header names a column twice; nothing read")
        return
    encoders = [_encoder(name) for name in header]
    width = len(header)
    account = header.index("account_id") if "account_id" in header else None
    index = -1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except (UnicodeDecodeError, csv.Error) as exc:
            index += 1
            if part is None or part[0] == 0:
                reason = f"unreadable CSV (line {reader.line_num}; the rest is skipped): {exc}"
                yield index, BadLine(reason)
            return  # the reader cannot resynchronise after a decoding error
        if not row:
            continue
        index += 1
        if part is not None:
            key = row[account] if account is not None and len(row) == width else ""
            if part_of(key.encode("utf-8", "surrogatepass"), part[1]) != part[0]:
                continue
        if len(row) != width:
            yield index, BadLine(f"CSV row with {len(row)} cells, the header has {width}")
            continue
        parts = [
            encode(cell)
            for encode, cell, name in zip(encoders, row, header, strict=True)
            if cell != "" or name == LABEL
        ]
        yield index, ("{" + ",".join(parts) + "}").encode()


def _encoder(name: str) -> Callable[[str], str]:
    key = json.dumps(name) + ":"
    if name in _NUMBER_FIELDS:
        return lambda cell: key + (cell if _JSON_NUMBER.fullmatch(cell) else json.dumps(cell))
    if name in _TIME_FIELDS:
        return lambda cell: key + (cell if _DIGITS.fullmatch(cell) else json.dumps(cell))
    if name == LABEL:
        return lambda cell: key + _label(cell)
    return lambda cell: key + json.dumps(cell)


def _label(cell: str) -> str:
    if cell.lstrip().startswith("["):
        return cell
    return json.dumps([rule.strip() for rule in cell.split(";") if rule.strip()])
