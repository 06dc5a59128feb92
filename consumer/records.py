"""Decode and validate one Kinesis record into a `Transaction` (docs/contract.md, "A transaction").

Every record passes through here before anything else looks at it, so this module has two jobs
that pull against each other: it must be exact and it must be fast. Exact, because thresholds
compare the decimal literal the producer wrote (`10000.001 > 10000`), so numbers are parsed to
`Decimal`, never `float`, and timestamps keep every digit of their fraction. Fast, because it runs
once per record on the hot path, so the JSON decoder and the timestamp regex are built once and
the checks are straight-line code.

It also never raises for any input: a poison record (bad UTF-8, a BOM, `NaN`, a 5000-digit integer,
100 000 levels of nesting, an impossible date) becomes an `InvalidRecord` naming the field and the
reason, which the caller writes to the dead-letter output; it must never stop a shard.

Bounded numbers. What the rules do later with a valid record's numbers runs in an exact decimal
context (consumer/rules/exact.py), where a sum is as long as its operands' digits from the highest
to the lowest exponent: `100 + 1e-99999999999` would need 10^11 digits (MemoryError), and every
later record of the account would fail the same way. So `amount` and `account_balance` must be
multiples of 1e-18 and the balance lies in [-1e15, 1e15] (docs/contract.md, "Bounds"). The check
looks at the exponent, never at an expanded value: one quantize to 1e-18 in a context that traps
Inexact, after the magnitude is known to be bounded, so `1e-99999999999` is refused as cheaply as
any other value (measured: docs/benchmarks.md#record-decoding). A value that passes is kept as the
exact Decimal of its literal (`12.50` stays `12.50`), except where the literal has more than 18
decimal places, all zeros past the 18th (`12.50000000000000000000`, or `1.` and a million zeros,
which would make every later sum of the account a million digits long), or is a zero written with an
exponent below -18 (`0e-99999999999`): those are held with exactly 18 decimal places, the same value
(the `raw` literal is passed through unchanged). The string fields the rules and the state use
(`currency`, the country codes, `merchant_id`, `merchant_category`, `device_id`, `ip_address`) are
at most 256 code points.

A valid record must also survive what the worker does with it next: its raw object is re-encoded
as JSON (simplejson, which recurses) and its strings become UTF-8 Redis keys. So two things the
decoder accepts are invalid here: a lone surrogate escape (`"\\ud800"` decodes to a string that
has no UTF-8 form) and nesting deeper than `MAX_DEPTH` levels. Both checks run only when a cheap
test on the raw text says they could matter, so a typical record hardly pays for them.

Two decoders, one answer. The standard library's decoder (numbers as `Decimal`) defines every result
and every error message; in front of it msgspec, a faster C decoder, decodes the text with the same
exact numbers (its float hook receives each literal's own digits, so `Decimal("1.50")` keeps its
trailing zero). Whenever msgspec refuses the text, or it nests deeper than MAX_DEPTH, the standard
path decides and names the reason; a property test holds the two paths to the same answer for any
bytes (tests/unit/test_records_fast_path.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    Context,
    Decimal,
    Inexact,
    InvalidOperation,
    Rounded,
)
from functools import lru_cache
from typing import Any, NoReturn

import msgspec

__all__ = [
    "CHANNELS",
    "ID_MAX_LEN",
    "MAX_AMOUNT",
    "MAX_BALANCE",
    "MAX_DEPTH",
    "QUANTUM",
    "TEXT_MAX_LEN",
    "InvalidRecord",
    "Transaction",
    "parse_event_time",
    "parse_transaction",
]

ID_MAX_LEN = 128
MAX_AMOUNT = Decimal(1_000_000_000)
# Bounds (docs/contract.md): |account_balance| <= 1e15; amounts and balances are multiples of
# QUANTUM; the other string fields are at most TEXT_MAX_LEN code points.
MAX_BALANCE = Decimal(10**15)
QUANTUM = Decimal("1e-18")
TEXT_MAX_LEN = 256
# Deepest nesting of a record's JSON value; the object itself is level 1. Far below the recursion
# limit, so re-encoding the raw object (simplejson recurses once per level) cannot overflow.
MAX_DEPTH = 64
CHANNELS: frozenset[str] = frozenset({"card_present", "online", "atm", "transfer"})

# Integers: compared exactly, and faster than Decimal with Decimal.
_LAT_MIN, _LAT_MAX = -90, 90
_LON_MIN, _LON_MAX = -180, 180
_ZERO = Decimal(0)

# Arithmetic in this context is exact: the precision and exponent range are the largest the
# decimal module allows, and the operands are small, so nothing is ever rounded.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)

# Quantizing to QUANTUM in this context raises Inexact exactly when a non-zero digit lies past
# the 18th decimal place, whatever the exponent (1e-99999999999 is cheap: the coefficient is
# shifted out, not expanded). Called only once the magnitude is within the bounds, so the
# result has at most 34 digits and never exceeds the precision.
# Rounded is trapped too: it signals a literal with more than 18 decimals that are all zeros
# (`1.` and a million zeros is a multiple of 1e-18, but every later sum of its account would
# carry the million digits): such a value is held quantized (`_trimmed`), the same number.
_quantize = Context(
    prec=40, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[Inexact, InvalidOperation, Rounded]
).quantize
_trimmed = Context(prec=40, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[]).quantize
_MIN_BALANCE = -MAX_BALANCE
_INT_MAX_AMOUNT = 1_000_000_000
_INT_MAX_BALANCE = 10**15

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# YYYY-MM-DDTHH:MM[:SS[.fraction]] then Z | ±HH:MM | ±HHMM | ±HH. ASCII digits only: [0-9], not
# \d, which also matches other scripts' digits. `T` and `Z` upper case, as the contract writes them.
_ISO_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(?:\.([0-9]+))?)?"
    r"(?:Z|([+-])([0-9]{2})(?::?([0-9]{2}))?)"
)
_iso_match = _ISO_RE.fullmatch


class _NonStandardConstant(ValueError):
    """`NaN`, `Infinity` or `-Infinity` in the JSON text."""


def _reject_constant(name: str) -> NoReturn:
    raise _NonStandardConstant(f"non-standard constant {name}")


# Built once: json.loads(..., parse_float=...) would build a new decoder for every record.
# Integers stay `int`; every other number becomes the exact `Decimal` of its literal.
_decode = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant).decode
# The fast path: the same values (integers as int, other numbers as the Decimal of their literal).
_fast_decode = msgspec.json.Decoder(float_hook=Decimal).decode

# A lone surrogate (U+D800..U+DFFF) can only come from a `\uXXXX` escape: the strict UTF-8 decode
# rejects encoded ones, and the decoder joins a high-low pair of escapes into one code point.
_surrogate = re.compile(r"[\ud800-\udfff]").search


def _lone_surrogate(value: object) -> str | None:
    """The reason if a key or string anywhere in the decoded `value` holds a lone surrogate.

    Iterative, so it is safe at any depth.
    """
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        node = pop()
        if type(node) is dict:
            for key, item in node.items():
                if (m := _surrogate(key)) is not None:
                    return _surrogate_reason(m.group(), "a key")
                t = type(item)
                if t is str:
                    if (m := _surrogate(item)) is not None:
                        return _surrogate_reason(m.group(), "a string")
                elif t is dict or t is list:
                    push(item)
        elif type(node) is list:
            for item in node:
                t = type(item)
                if t is str:
                    if (m := _surrogate(item)) is not None:
                        return _surrogate_reason(m.group(), "a string")
                elif t is dict or t is list:
                    push(item)
        elif type(node) is str and (m := _surrogate(node)) is not None:
            return _surrogate_reason(m.group(), "a string")
    return None


def _surrogate_reason(char: str, where: str) -> str:
    return f"not valid JSON: lone surrogate escape (\\u{ord(char):04x}) in {where}"


def _deeper_than_max(value: object) -> bool:
    """Whether the decoded `value` nests deeper than MAX_DEPTH levels. Iterative, no recursion."""
    stack: list[tuple[object, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if type(node) is dict:
            children: Iterable[object] = node.values()
        elif type(node) is list:
            children = node
        else:
            continue
        if depth > MAX_DEPTH:
            return True
        depth += 1
        for child in children:
            t = type(child)
            if t is dict or t is list:
                push((child, depth))
    return False


class Transaction(msgspec.Struct, frozen=True, gc=False):
    """A valid transaction. `raw` is the JSON object as received, for pass-through to outputs.

    A msgspec Struct: built in C, once per record (cheaper than a frozen dataclass:
    docs/benchmarks.md#record-decoding).
    `gc=False`: it holds strings, numbers and a decoded JSON object, which cannot form a
    reference cycle, so the cyclic collector need not track it (nor the other per-record
    value objects: history entries, decisions, positions)."""

    transaction_id: str
    account_id: str
    amount: Decimal
    event_time: Decimal
    currency: str
    account_balance: Decimal | None
    origin_country: str | None
    destination_country: str | None
    latitude: float | None
    longitude: float | None
    merchant_id: str | None
    merchant_category: str | None
    channel: str | None
    device_id: str | None
    ip_address: str | None
    account_created_at: Decimal | None
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class InvalidRecord:
    """A record the contract calls invalid; `reason` names the field and what is wrong with it."""

    reason: str


def parse_event_time(value: object) -> Decimal | None:
    """Exact epoch seconds (UTC) of a `timestamp` / `account_created_at` value, or None if invalid.

    Accepted: a JSON integer (`int`, not `bool`) of epoch milliseconds, or an ISO-8601 extended
    string `YYYY-MM-DDTHH:MM[:SS[.fraction]]` with a zone `Z`, `±HH:MM`, `±HHMM` or `±HH`. The
    fraction is kept to full precision and the offset is applied exactly. Rejected: float literals
    (`1.0`, `1e3`, which the decoder hands over as `Decimal`), numeric strings, impossible dates,
    year 0000, hour 24, leap second 60, zone offsets with hours > 23 or minutes > 59.

    Never raises; returns None for anything it does not accept.
    """
    if type(value) is int:
        # Exact: scaleb in the unbounded context only moves the exponent.
        return Decimal(value).scaleb(-3, _EXACT)
    if type(value) is not str:
        return None
    if len(value) == 24 and value[19] == "." and value[23] == "Z":
        # The usual form, YYYY-MM-DDTHH:MM:SS.mmmZ: a shortcut with the same answer.
        seconds = _second_start(value[:19])
        millis = value[20:23]
        if seconds is not None and millis.isascii() and millis.isdigit():
            return Decimal(f"{seconds}.{millis}")
    return _parse_iso(value)


@lru_cache(maxsize=8192)
def _second_start(prefix: str) -> int | None:
    """Epoch seconds of a `YYYY-MM-DDTHH:MM:SS` (UTC) at or after 1970, or None when it is not
    one (the regex path then decides). Memoised: a stream's records share their seconds, so a
    record usually pays for two slices and a digit check. (isdigit alone also takes other
    scripts' digits; isascii narrows it to 0-9.)"""
    seconds = _parse_iso(prefix + "Z")
    if seconds is None or seconds < 0:
        return None
    return int(seconds)


def _parse_iso(value: str) -> Decimal | None:
    """parse_event_time for any string: the regex, every form the contract accepts."""
    m = _iso_match(value)
    if m is None:
        return None
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = m.groups()
    hh = int(hour)
    mm = int(minute)
    ss = int(second) if second is not None else 0
    if hh > 23 or mm > 59 or ss > 59:
        return None
    days = _days_since_epoch(year, month, day)
    if days is None:
        return None
    seconds = days * 86400 + hh * 3600 + mm * 60 + ss
    if sign is not None:
        oh = int(off_h)
        om = int(off_m) if off_m is not None else 0
        if oh > 23 or om > 59:
            return None
        offset = oh * 3600 + om * 60
        seconds = seconds - offset if sign == "+" else seconds + offset
    if fraction is None:
        return Decimal(seconds)
    if seconds >= 0:  # one exact Decimal from its digits
        return Decimal(f"{seconds}.{fraction}")
    # Before 1970 the fraction counts up from a negative whole: added in the unbounded context.
    return _EXACT.add(Decimal(seconds), Decimal("0." + fraction))


@lru_cache(maxsize=4096)
def _days_since_epoch(year: str, month: str, day: str) -> int | None:
    """Days from 1970-01-01 to a calendar date given as digits; None for an impossible date or
    year 0000 (outside the proleptic Gregorian range). Memoised: a stream's dates repeat."""
    try:
        return date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None


# An account's creation time is the same string in every one of its records: parsed once per
# account while the account is active. Straight to the regex path: each account has its own
# creation second, which would only push the stream's shared seconds out of _second_start.
_created_at = lru_cache(maxsize=32_768)(_parse_iso)
# Only strings up to this long go through that cache: a fraction has no length bound, and 32,768
# cached megabyte strings (with their Decimals) would hold tens of GB. A usual value is 20-35.
_CACHED_TIME_MAX_LEN = 64

# Messages, built once.
_WANT_ID = "must be a string of 1..128 characters"
_WANT_AMOUNT = "must be a number > 0 and <= 1e9"
_WANT_QUANTUM = "must be a multiple of 1e-18 (no non-zero digit past the 18th decimal place)"
_WANT_BALANCE = "must be a number in -1e15..1e15"
_WANT_TEXT = f"must be a string of at most {TEXT_MAX_LEN} characters"
_WANT_TIME = (
    "must be an ISO-8601 string YYYY-MM-DDTHH:MM[:SS[.fraction]] with a zone "
    "(Z, +HH:MM, +HHMM, +HH) or integer epoch milliseconds"
)


_JSON_TYPE_NAMES: dict[type, str] = {
    list: "an array",
    str: "a string",
    int: "a number",
    Decimal: "a number",
    bool: "a boolean",
    type(None): "null",
}


def _is_number(value: object) -> bool:
    t = type(value)
    return t is int or t is Decimal  # bool is a subclass of int, but `type` is exact


class _Bad(Exception):
    """Internal: carries an invalid-record reason out of a nested check."""


# Optional string fields checked last, in this order (the first wrong one names the reason).
_OPTIONAL_TEXT = ("merchant_id", "merchant_category", "device_id", "ip_address")


def parse_transaction(data: bytes) -> Transaction | InvalidRecord:
    """Decode one Kinesis record's data and validate it (docs/contract.md, "A transaction").

    Never raises for any `bytes` (or `bytearray` / `memoryview`) input: everything the contract
    calls invalid, including text the JSON parser cannot handle, comes back as an InvalidRecord.
    """
    if type(data) is not bytes:
        data = bytes(data)
    # Brackets counted on the raw bytes (string contents included): deep nesting takes the
    # standard path, which names it.
    if data.count(b"{") + data.count(b"[") <= MAX_DEPTH:
        obj = _decoded_fast(data)
        if type(obj) is dict:
            try:
                return _validate(obj)
            except _Bad as exc:
                return InvalidRecord(str(exc))
    return _parse_exact(data)


def _decoded_fast(data: bytes) -> object:
    """msgspec's value for `data`, or None when it refuses the text (DecodeError, invalid UTF-8,
    anything): then the standard path decides, and names what is wrong."""
    try:
        return _fast_decode(data)
    except Exception:
        return None


def _parse_exact(data: bytes) -> Transaction | InvalidRecord:
    """The reference path: the standard library's decoder with exact numbers, every check."""
    try:
        text = str(data, "utf-8")  # strict: invalid UTF-8 and encoded surrogates are errors
    except UnicodeDecodeError as exc:
        return InvalidRecord(f"not valid UTF-8: {exc.reason} at byte {exc.start}")
    if text.startswith("\ufeff"):
        return InvalidRecord("not valid JSON: starts with a UTF-8 byte-order mark")
    try:
        obj = _decode(text)
    except _NonStandardConstant as exc:
        return InvalidRecord(f"not valid JSON: {exc}")
    except RecursionError:
        return InvalidRecord("not valid JSON: nested too deeply")
    except ValueError as exc:  # JSONDecodeError, or an integer literal past the digit limit
        # The digit-limit message ends in advice for Python programmers, not for producers.
        return InvalidRecord(f"not valid JSON: {str(exc).partition('; use sys.')[0]}")
    except ArithmeticError:  # decimal.InvalidOperation: an exponent beyond what Decimal holds
        return InvalidRecord("not valid JSON: a number is too large")
    # Each precise check runs only when a cheap test on the raw text says it could matter: more
    # than MAX_DEPTH brackets (string contents included), and an escape \ud... or \uD... (or text
    # merely looking like one, as in an escaped backslash before "ud"); the memchr for a backslash
    # first keeps the common case, a record without escapes, nearly free.
    if text.count("{") + text.count("[") > MAX_DEPTH and _deeper_than_max(obj):
        return InvalidRecord(f"not valid JSON: nested deeper than {MAX_DEPTH} levels")
    if "\\" in text and ("\\ud" in text or "\\uD" in text):
        reason = _lone_surrogate(obj)
        if reason is not None:
            return InvalidRecord(reason)
    if type(obj) is not dict:
        return InvalidRecord(f"not a JSON object: got {_JSON_TYPE_NAMES.get(type(obj), 'a value')}")
    try:
        return _validate(obj)
    except _Bad as exc:
        return InvalidRecord(str(exc))


def _validate(obj: dict[str, Any]) -> Transaction:
    get = obj.get

    transaction_id = get("transaction_id")
    if transaction_id is None:
        raise _Bad("transaction_id: missing")
    if type(transaction_id) is not str or not 0 < len(transaction_id) <= ID_MAX_LEN:
        raise _Bad(f"transaction_id: {_WANT_ID}")

    account_id = get("account_id")
    if account_id is None:
        raise _Bad("account_id: missing")
    if type(account_id) is not str or not 0 < len(account_id) <= ID_MAX_LEN:
        raise _Bad(f"account_id: {_WANT_ID}")

    amount = get("amount")
    if amount is None:
        raise _Bad("amount: missing")
    if type(amount) is Decimal:
        if not _ZERO < amount <= MAX_AMOUNT:
            raise _Bad(f"amount: {_WANT_AMOUNT}")
        try:  # the magnitude is bounded now: a cheap quantize, whatever the exponent
            _quantize(amount, QUANTUM)
        except Rounded:  # only zeros past the 18th decimal place: the same value, 18 places
            amount = _trimmed(amount, QUANTUM)
        except ArithmeticError:
            raise _Bad(f"amount: {_WANT_QUANTUM}") from None
    elif type(amount) is int:  # a whole number: a multiple of 1e-18 already
        if not 0 < amount <= _INT_MAX_AMOUNT:
            raise _Bad(f"amount: {_WANT_AMOUNT}")
        amount = Decimal(amount)
    else:
        raise _Bad(f"amount: {_WANT_AMOUNT}")

    timestamp = get("timestamp")
    if timestamp is None:
        raise _Bad("timestamp: missing")
    event_time = parse_event_time(timestamp)
    if event_time is None:
        raise _Bad(f"timestamp: {_WANT_TIME}")

    currency = get("currency")
    if currency is None:
        currency = "USD"
    elif type(currency) is not str:
        raise _Bad("currency: must be a string")
    elif len(currency) > TEXT_MAX_LEN:
        raise _Bad(f"currency: {_WANT_TEXT}")

    account_balance = get("account_balance")
    if account_balance is not None:
        if type(account_balance) is Decimal:
            # adjusted() is the exponent of the leading digit: below 15, |balance| < 1e15.
            if account_balance.adjusted() > 14 and not (
                _MIN_BALANCE <= account_balance <= MAX_BALANCE
            ):
                raise _Bad(f"account_balance: {_WANT_BALANCE}")
            try:
                quantized = _quantize(account_balance, QUANTUM)
            except Rounded:  # only zeros past the 18th decimal place, as for amount
                quantized = account_balance = _trimmed(account_balance, QUANTUM)
            except ArithmeticError:
                raise _Bad(f"account_balance: {_WANT_QUANTUM}") from None
            if not account_balance and not -18 <= account_balance.adjusted() <= 0:
                # A zero (adjusted() is its exponent) written as 0e-99999999999 or 0E+99999999999
                # is a multiple of 1e-18, but arithmetic and formatting would carry that
                # exponent: held as 0E-18, the same value (sign kept; raw keeps the literal).
                account_balance = quantized
        elif type(account_balance) is int:
            if not -_INT_MAX_BALANCE <= account_balance <= _INT_MAX_BALANCE:
                raise _Bad(f"account_balance: {_WANT_BALANCE}")
            account_balance = Decimal(account_balance)
        else:
            raise _Bad("account_balance: must be a number")

    # Optional strings checked inline, not by a call each (docs/benchmarks.md#record-decoding).
    origin_country = get("origin_country")
    if origin_country is not None:
        if type(origin_country) is not str:
            raise _Bad("origin_country: must be a string")
        if len(origin_country) > TEXT_MAX_LEN:
            raise _Bad(f"origin_country: {_WANT_TEXT}")
        origin_country = origin_country.upper()
    destination_country = get("destination_country")
    if destination_country is not None:
        if type(destination_country) is not str:
            raise _Bad("destination_country: must be a string")
        if len(destination_country) > TEXT_MAX_LEN:
            raise _Bad(f"destination_country: {_WANT_TEXT}")
        destination_country = destination_country.upper()

    lat = get("latitude")
    lon = get("longitude")
    latitude: float | None = None
    longitude: float | None = None
    if lat is not None or lon is not None:
        if lat is None:
            raise _Bad("latitude: missing (latitude and longitude go together)")
        if lon is None:
            raise _Bad("longitude: missing (latitude and longitude go together)")
        if not _is_number(lat) or not _LAT_MIN <= lat <= _LAT_MAX:
            raise _Bad("latitude: must be a number in -90..90")
        if not _is_number(lon) or not _LON_MIN <= lon <= _LON_MAX:
            raise _Bad("longitude: must be a number in -180..180")
        latitude = float(lat)
        longitude = float(lon)

    channel = get("channel")
    if channel is not None and (type(channel) is not str or channel not in CHANNELS):
        raise _Bad("channel: must be one of card_present, online, atm, transfer")

    account_created_at = get("account_created_at")
    if account_created_at is not None:
        account_created_at = (
            _created_at(account_created_at)
            if type(account_created_at) is str and len(account_created_at) <= _CACHED_TIME_MAX_LEN
            else parse_event_time(account_created_at)
        )
        if account_created_at is None:
            raise _Bad(f"account_created_at: {_WANT_TIME}")

    for key in _OPTIONAL_TEXT:
        value = get(key)
        if value is not None:
            if type(value) is not str:
                raise _Bad(f"{key}: must be a string")
            if len(value) > TEXT_MAX_LEN:
                raise _Bad(f"{key}: {_WANT_TEXT}")

    return Transaction(  # positional, in field order: faster than keywords
        transaction_id,
        account_id,
        amount,
        event_time,
        currency,
        account_balance,
        origin_country,
        destination_country,
        latitude,
        longitude,
        get("merchant_id"),
        get("merchant_category"),
        channel,
        get("device_id"),
        get("ip_address"),
        account_created_at,
        obj,
    )


# -- where a record sits in the stream ----------------------------------------------------------

Position = tuple[int, int]
"""(sequence number, sub-sequence number) as integers: tuple order is stream order within a shard.
The state store keys replay-determinism on it (a transaction sees only facts from earlier
positions)."""


def position_of(sequence_number: str, sub_sequence_number: int) -> Position:
    return int(sequence_number), sub_sequence_number


class RecordPosition(msgspec.Struct, frozen=True, gc=False):
    """Where a record sits in the stream, as the daemon gave it: what checkpoints name, what an
    S3 object's key and partition are derived from (so a replay rewrites the same object), and
    what every output line carries."""

    shard_id: str
    sequence_number: str
    sub_sequence_number: int
    arrival_ms: int

    @property
    def position(self) -> Position:
        """Its order within the shard, as the state store compares it."""
        return position_of(self.sequence_number, self.sub_sequence_number)

    @property
    def arrival(self) -> datetime:
        return datetime.fromtimestamp(self.arrival_ms / 1000, tz=UTC)

    @property
    def object_name(self) -> str:
        suffix = f".{self.sub_sequence_number}" if self.sub_sequence_number else ""
        return f"{self.shard_id}-{self.sequence_number}{suffix}.jsonl.gz"
