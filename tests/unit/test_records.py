"""consumer.records against docs/contract.md ("A transaction" and its precise readings)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Context, Decimal
from typing import Any

import pytest
import simplejson
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.records import (
    InvalidRecord,
    Transaction,
    parse_event_time,
    parse_transaction,
)

# 2026-11-24T09:00:00Z
T0900Z = Decimal(1795510800)
# 2026-11-24T07:00:00Z
T0700Z = Decimal(1795503600)

BASE: dict[str, Any] = {
    "transaction_id": "tx-1",
    "account_id": "acct-1",
    "amount": 12.5,
    "timestamp": "2026-11-24T09:00:00Z",
}


def enc(obj: object) -> bytes:
    return json.dumps(obj).encode()


def with_(**fields: Any) -> bytes:
    """BASE with fields replaced; a value of `...` deletes the field."""
    obj = dict(BASE)
    for key, value in fields.items():
        if value is ...:
            obj.pop(key, None)
        else:
            obj[key] = value
    return enc(obj)


def literal(**fields: str) -> bytes:
    """BASE with fields given as literal JSON text (literals json.dumps cannot write: 1e9, 5.00)."""
    parts = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in BASE.items() if k not in fields]
    parts += [f"{json.dumps(k)}: {v}" for k, v in fields.items()]
    return ("{" + ", ".join(parts) + "}").encode()


def ok(data: bytes) -> Transaction:
    result = parse_transaction(data)
    assert isinstance(result, Transaction), result
    return result


def bad(data: bytes, field: str | None = None) -> str:
    result = parse_transaction(data)
    assert isinstance(result, InvalidRecord), result
    assert result.reason
    if field is not None:
        assert result.reason.startswith(f"{field}:"), result.reason
    return result.reason


# --- a valid record ------------------------------------------------------------------------------


def test_minimal_record_and_defaults() -> None:
    t = ok(enc(BASE))
    assert t.transaction_id == "tx-1"
    assert t.account_id == "acct-1"
    assert t.amount == Decimal("12.5")
    assert type(t.amount) is Decimal
    assert t.event_time == T0900Z
    assert t.currency == "USD"
    for name in (
        "account_balance",
        "origin_country",
        "destination_country",
        "latitude",
        "longitude",
        "merchant_id",
        "merchant_category",
        "channel",
        "device_id",
        "ip_address",
        "account_created_at",
    ):
        assert getattr(t, name) is None, name
    assert t.raw == {**BASE, "amount": Decimal("12.5")}


def test_full_record() -> None:
    obj = {
        **BASE,
        "currency": "EUR",
        "account_balance": 5000.00,
        "origin_country": "us",
        "destination_country": "Gb",
        "latitude": 40.7128,
        "longitude": -74.006,
        "merchant_id": "m-1",
        "merchant_category": "5411",
        "channel": "online",
        "device_id": "dev-1",
        "ip_address": "203.0.113.7",
        "account_created_at": 1700000000000,
    }
    t = ok(enc(obj))
    assert t.currency == "EUR"
    assert t.account_balance == Decimal("5000.0")
    assert (t.origin_country, t.destination_country) == ("US", "GB")
    assert t.latitude == 40.7128 and type(t.latitude) is float
    assert t.longitude == -74.006 and type(t.longitude) is float
    assert t.merchant_id == "m-1"
    assert t.merchant_category == "5411"
    assert t.channel == "online"
    assert t.device_id == "dev-1"
    assert t.ip_address == "203.0.113.7"
    assert t.account_created_at == Decimal(1700000000)
    # raw keeps what was received: the country case, numbers as exact literals
    assert t.raw["origin_country"] == "us"
    assert t.raw["latitude"] == Decimal("40.7128")


def test_transaction_is_frozen() -> None:
    t = ok(enc(BASE))
    with pytest.raises(AttributeError):
        t.amount = Decimal(1)  # type: ignore[misc]


def test_raw_keeps_exact_literals_and_unknown_fields() -> None:
    data = literal(
        amount="5.00",
        account_balance="1E+3",
        extra='{"nested": [1, 2.50, "x", null, true]}',
        count="7",
        note='"h\\u00e9llo \\ud83d\\ude00"',
    )
    t = ok(data)
    assert str(t.raw["amount"]) == "5.00"
    assert str(t.amount) == "5.00"
    assert str(t.raw["account_balance"]) == "1E+3"
    assert t.account_balance == Decimal(1000)
    assert t.raw["extra"] == {"nested": [1, Decimal("2.50"), "x", None, True]}
    assert str(t.raw["extra"]["nested"][1]) == "2.50"
    assert type(t.raw["count"]) is int and t.raw["count"] == 7
    assert t.raw["note"] == "h\u00e9llo \U0001f600"


def test_accepts_bytearray_and_memoryview() -> None:
    data = enc(BASE)
    assert ok(bytearray(data)) == ok(data)  # type: ignore[arg-type]
    assert ok(memoryview(data)) == ok(data)  # type: ignore[arg-type]


# --- amount --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lit", "expected"),
    [
        ("1e9", Decimal("1e9")),
        ("1E+9", Decimal("1e9")),
        ("1000000000", Decimal(1000000000)),
        ("1000000000.00", Decimal(1000000000)),
        ("999999999.999999999999", Decimal("999999999.999999999999")),
        ("0.01", Decimal("0.01")),
        ("1e-18", Decimal("1e-18")),  # the finest step (1e-19: tests/unit/test_record_bounds.py)
        ("10000.001", Decimal("10000.001")),
        ("5.00", Decimal("5.00")),
        ("1", Decimal(1)),
    ],
)
def test_amount_valid(lit: str, expected: Decimal) -> None:
    t = ok(literal(amount=lit))
    assert t.amount == expected
    assert type(t.amount) is Decimal


def test_amount_is_exact_not_binary() -> None:
    assert ok(literal(amount="10000.001")).amount > 10000
    assert ok(literal(amount="0.1")).amount == Decimal("0.1")  # not 0.1000000000000000055...


@pytest.mark.parametrize(
    "lit",
    [
        "1000000000.01",
        "1000000000.0000000000000000000000000001",
        "1000000001",
        "1e10",
        "1e5000",
        "0",
        "0.0",
        "-0",
        "-0.0",
        "0e10",
        "-1",
        "-0.01",
        "true",
        "false",
        '"10"',
        '"1e3"',
        "[10]",
        '{"value": 10}',
    ],
)
def test_amount_invalid(lit: str) -> None:
    assert bad(literal(amount=lit), "amount") == "amount: must be a number > 0 and <= 1e9"


# --- required fields: missing, null, wrong type --------------------------------------------------

REQUIRED = ("transaction_id", "account_id", "amount", "timestamp")


@pytest.mark.parametrize("field", REQUIRED)
def test_required_field_absent(field: str) -> None:
    assert bad(with_(**{field: ...}), field) == f"{field}: missing"


@pytest.mark.parametrize("field", REQUIRED)
def test_required_field_null_is_missing(field: str) -> None:
    assert bad(with_(**{field: None}), field) == f"{field}: missing"


@pytest.mark.parametrize("field", ["transaction_id", "account_id"])
@pytest.mark.parametrize(
    "value",
    ["x", "a" * 128, "é" * 128, "\U0001f600" * 128, "中" * 64 + "b" * 64, " "],
)
def test_id_length_valid(field: str, value: str) -> None:
    assert getattr(ok(with_(**{field: value})), field) == value


@pytest.mark.parametrize("field", ["transaction_id", "account_id"])
@pytest.mark.parametrize(
    "value", ["", "a" * 129, "é" * 129, "\U0001f600" * 129, 123, 1.5, True, ["x"], {"x": 1}]
)
def test_id_invalid(field: str, value: object) -> None:
    assert bad(with_(**{field: value}), field) == f"{field}: must be a string of 1..128 characters"


def test_id_length_counts_code_points_not_bytes() -> None:
    value = "\U0001f600" * 128  # 512 UTF-8 bytes, 256 UTF-16 units, 128 code points
    assert len(value.encode()) == 512
    assert ok(with_(transaction_id=value)).transaction_id == value


# --- optional fields: null means absent ----------------------------------------------------------

OPTIONAL = (
    "currency",
    "account_balance",
    "origin_country",
    "destination_country",
    "merchant_id",
    "merchant_category",
    "channel",
    "device_id",
    "ip_address",
    "account_created_at",
)


@pytest.mark.parametrize("field", OPTIONAL)
def test_optional_field_null_is_absent(field: str) -> None:
    t = ok(with_(**{field: None}))
    expected = "USD" if field == "currency" else None
    assert getattr(t, field) == expected
    assert t.raw[field] is None  # passed through as received


def test_latitude_and_longitude_both_null_is_absent() -> None:
    t = ok(with_(latitude=None, longitude=None))
    assert t.latitude is None and t.longitude is None


@pytest.mark.parametrize(
    "field",
    [
        "currency",
        "origin_country",
        "destination_country",
        "merchant_id",
        "merchant_category",
        "device_id",
        "ip_address",
    ],
)
@pytest.mark.parametrize("value", [1, 1.5, True, False, ["x"], {"a": "b"}])
def test_string_fields_reject_other_types(field: str, value: object) -> None:
    assert bad(with_(**{field: value}), field) == f"{field}: must be a string"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("currency", "usd"),
        ("currency", "XXXX"),
        ("currency", ""),
        ("ip_address", "not-an-ip"),
        ("ip_address", "::1"),
        ("merchant_id", ""),
        ("device_id", "é" * 256),
    ],
)
def test_string_fields_checked_as_strings_only(field: str, value: str) -> None:
    assert getattr(ok(with_(**{field: value})), field) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [("us", "US"), ("Gb", "GB"), ("FR", "FR"), ("zzz", "ZZZ"), ("", "")],
)
def test_country_codes_upper_cased(value: str, expected: str) -> None:
    t = ok(with_(origin_country=value, destination_country=value))
    assert t.origin_country == expected
    assert t.destination_country == expected


@pytest.mark.parametrize("channel", ["card_present", "online", "atm", "transfer"])
def test_channel_valid(channel: str) -> None:
    assert ok(with_(channel=channel)).channel == channel


@pytest.mark.parametrize(
    "channel",
    ["ONLINE", "Online", " online", "online ", "web", "", "card present", 1, True, ["atm"]],
)
def test_channel_invalid(channel: object) -> None:
    assert bad(with_(channel=channel), "channel")


@pytest.mark.parametrize(
    ("lit", "expected"),
    [("0", Decimal(0)), ("-250.75", Decimal("-250.75")), ("1e12", Decimal("1e12"))],
)
def test_account_balance_any_number(lit: str, expected: Decimal) -> None:
    t = ok(literal(account_balance=lit))
    assert t.account_balance == expected
    assert type(t.account_balance) is Decimal


@pytest.mark.parametrize("lit", ["true", "false", '"100"', "[1]", "{}"])
def test_account_balance_invalid(lit: str) -> None:
    assert bad(literal(account_balance=lit), "account_balance")


# --- latitude / longitude ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lat", "lon"),
    [
        ("90", "180"),
        ("-90", "-180"),
        ("90.0", "180.000"),
        ("-90.00", "-180.0"),
        ("0", "0"),
        ("45.5", "-122.25"),
        ("89.99999999999999999999", "179.99999999999999999999"),
    ],
)
def test_coordinates_valid_bounds_inclusive(lat: str, lon: str) -> None:
    t = ok(literal(latitude=lat, longitude=lon))
    assert t.latitude == float(Decimal(lat))
    assert t.longitude == float(Decimal(lon))
    assert type(t.latitude) is float and type(t.longitude) is float


@pytest.mark.parametrize(
    ("lat", "lon", "field"),
    [
        ("90.0001", "0", "latitude"),
        ("-90.0001", "0", "latitude"),
        ("90.00000000000000000001", "0", "latitude"),  # rounds to 90.0 as a float
        ("0", "180.0001", "longitude"),
        ("0", "-180.0001", "longitude"),
        ("0", "180.00000000000000000001", "longitude"),
        ("1e400", "0", "latitude"),
        ("true", "0", "latitude"),
        ("0", "false", "longitude"),
        ('"45"', "0", "latitude"),
        ("0", '"45"', "longitude"),
        ("[1]", "0", "latitude"),
    ],
)
def test_coordinates_invalid(lat: str, lon: str, field: str) -> None:
    bad(literal(latitude=lat, longitude=lon), field)


def test_latitude_without_longitude() -> None:
    assert bad(with_(latitude=10), "longitude")
    assert bad(with_(latitude=10, longitude=None), "longitude")


def test_longitude_without_latitude() -> None:
    assert bad(with_(longitude=10), "latitude")
    assert bad(with_(latitude=None, longitude=10), "latitude")


# --- timestamps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-24T09:00:00Z", T0900Z),
        ("2026-11-24T09:00Z", T0900Z),
        ("2026-11-24T09:00:00+00:00", T0900Z),
        ("2026-11-24T09:00:00-00:00", T0900Z),
        ("2026-11-24T09:00:00+00", T0900Z),
        ("2026-11-24T09:00:00+02:00", T0700Z),
        ("2026-11-24T09:00:00+0200", T0700Z),
        ("2026-11-24T09:00:00+02", T0700Z),
        ("2026-11-24T09:00+02", T0700Z),
        ("2026-11-24T01:30:00-05:30", T0700Z),
        ("2026-11-24T01:30:00-0530", T0700Z),
        ("2026-11-25T06:59:00+23:59", T0700Z),
        ("2026-11-23T07:01:00-23:59", T0700Z),
        ("2026-11-24T09:00:00.5Z", T0900Z + Decimal("0.5")),
        ("2026-11-24T09:00:00.000Z", T0900Z),
        ("2026-11-24T09:00:00.123456789Z", Decimal("1795510800.123456789")),
        ("2026-11-24T09:00:00.123456789012Z", Decimal("1795510800.123456789012")),
        (
            "2026-11-24T09:00:00.123456789012345678901234567890123+02:00",
            Decimal("1795503600.123456789012345678901234567890123"),
        ),
        ("1970-01-01T00:00:00Z", Decimal(0)),
        ("1969-12-31T23:59:59.75Z", Decimal("-0.25")),
        ("1970-01-01T00:00:00.25+00:01", Decimal("-59.75")),
        ("2024-02-29T00:00:00Z", Decimal(1709164800)),
        ("2000-02-29T12:00:00Z", Decimal(951825600)),
        ("0001-01-01T00:00:00Z", Decimal(-62135596800)),
        ("9999-12-31T23:59:59Z", Decimal(253402300799)),
        ("2026-12-31T23:59:59-01:00", Decimal(1798761599) + 3600),
        (1795510800000, T0900Z),
        (1795510800123, Decimal("1795510800.123")),
        (0, Decimal(0)),
        (-1, Decimal("-0.001")),
        (1, Decimal("0.001")),
    ],
)
def test_timestamp_valid(value: object, expected: Decimal) -> None:
    assert parse_event_time(value) == expected
    t = ok(with_(timestamp=value))
    assert t.event_time == expected
    assert type(t.event_time) is Decimal
    assert str(t.event_time) == str(parse_event_time(value))
    assert ok(with_(account_created_at=value)).account_created_at == expected


def test_timestamp_fraction_digits_kept_exactly() -> None:
    t = ok(with_(timestamp="2026-11-24T09:00:00.100000000000000000001Z"))
    assert t.event_time - T0900Z == Decimal("0.100000000000000000001")
    assert t.event_time != T0900Z + Decimal("0.1")
    assert str(t.event_time) == "1795510800.100000000000000000001"


def test_timestamp_huge_epoch_ms_is_exact() -> None:
    assert parse_event_time(10**40 + 1) == Decimal("1" + "0" * 37 + ".001")


INVALID_TIMESTAMPS: list[object] = [
    # impossible dates
    "2026-02-30T00:00:00Z",
    "2026-02-29T00:00:00Z",
    "1900-02-29T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-00-10T00:00:00Z",
    "2026-11-00T00:00:00Z",
    "2026-11-32T00:00:00Z",
    "0000-01-01T00:00:00Z",
    # hour 24, minute 60, leap second
    "2026-11-24T24:00:00Z",
    "2026-11-24T24:00Z",
    "2026-11-24T09:60:00Z",
    "2026-11-24T23:59:60Z",
    "2016-12-31T23:59:60Z",
    "2026-11-24T09:00:99Z",
    # zone missing or malformed
    "2026-11-24T09:00:00",
    "2026-11-24T09:00",
    "2026-11-24",
    "2026-11-24T09:00:00z",
    "2026-11-24T09:00:00+24:00",
    "2026-11-24T09:00:00+02:60",
    "2026-11-24T09:00:00+2:00",
    "2026-11-24T09:00:00+02:0",
    "2026-11-24T09:00:00+02:",
    "2026-11-24T09:00:00+020",
    "2026-11-24T09:00:00+02:00:00",
    "2026-11-24T09:00:00Z+02:00",
    "2026-11-24T09:00:00 Z",
    "2026-11-24T09:00:00\u221202:00",  # unicode minus sign
    "2026-11-24T09:00:00UTC",
    "2026-11-24T09:00:00GMT+2",
    # not the extended format with T
    "2026-11-24 09:00:00Z",
    "2026-11-24t09:00:00Z",
    "20261124T090000Z",
    "2026-11-24T0900Z",
    "2026-11-24T09Z",
    "2026-11-24T9:00:00Z",
    "26-11-24T09:00:00Z",
    "+2026-11-24T09:00:00Z",
    "12026-11-24T09:00:00Z",
    "2026-W48-2T09:00:00Z",
    "2026-328T09:00:00Z",
    # fractions
    "2026-11-24T09:00:00.Z",
    "2026-11-24T09:00:00,5Z",
    "2026-11-24T09:00.5Z",
    "2026-11-24T09:00:00.5.5Z",
    # surrounding junk, non-ASCII digits
    " 2026-11-24T09:00:00Z",
    "2026-11-24T09:00:00Z ",
    "2026-11-24T09:00:00Z\n",
    "\u0662\u0660\u0662\u0666-11-24T09:00:00Z",
    "2026-11-24T09:00:00\uff3a",
    # numeric strings and non-integer numbers
    "1795500000000",
    "1795500000",
    "",
    "now",
    1.5,
    Decimal("1.5"),
    Decimal("1795500000000.0"),
    Decimal("1E+12"),
    1.0,
    True,
    False,
    None,
    [],
    {},
    [1795500000000],
    b"2026-11-24T09:00:00Z",
]


@pytest.mark.parametrize("value", INVALID_TIMESTAMPS)
def test_parse_event_time_invalid(value: object) -> None:
    assert parse_event_time(value) is None


@pytest.mark.parametrize(
    "value", [v for v in INVALID_TIMESTAMPS if v is not None and not isinstance(v, bytes | float)]
)
def test_timestamp_invalid_in_record(value: object) -> None:
    if isinstance(value, Decimal):  # a float literal, written exactly
        assert bad(literal(timestamp=str(value)), "timestamp")
        assert bad(literal(account_created_at=str(value)), "account_created_at")
    else:
        assert bad(with_(timestamp=value), "timestamp")
        assert bad(with_(account_created_at=value), "account_created_at")


@pytest.mark.parametrize("lit", ["1795500000000.0", "1.7955e12", "1E3", "1.5", "-0.0"])
def test_timestamp_float_literals_invalid(lit: str) -> None:
    assert bad(literal(timestamp=lit), "timestamp")


def test_timestamp_integer_literal_valid() -> None:
    assert ok(literal(timestamp="1795500000000")).event_time == Decimal(1795500000)
    assert ok(literal(timestamp="-0")).event_time == 0


# --- JSON-level invalidity -----------------------------------------------------------------------

VALID = enc(BASE)


@pytest.mark.parametrize(
    ("data", "starts"),
    [
        (b"\xef\xbb\xbf" + VALID, "not valid JSON"),  # UTF-8 BOM
        (VALID[:-1] + b"\xff}", "not valid UTF-8"),
        (b'{"transaction_id": "\xc3\x28"}', "not valid UTF-8"),
        (b'{"x": "\xc0\xaf"}', "not valid UTF-8"),  # overlong encoding
        (b'{"x": "\xed\xa0\x80"}', "not valid UTF-8"),  # encoded surrogate
        (b'{"x": "\xf4\x90\x80\x80"}', "not valid UTF-8"),  # above U+10FFFF
        (b'{"x": "\xe2\x82"}', "not valid UTF-8"),  # truncated sequence
        (json.dumps(BASE).encode("utf-16"), "not valid"),
        (json.dumps(BASE).encode("utf-16-le"), "not valid"),
        (json.dumps(BASE).encode("utf-32"), "not valid"),
        (b"", "not valid JSON"),
        (b"   \n\t ", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"{}}", "not valid JSON"),
        (VALID + VALID, "not valid JSON"),
        (VALID + b"\n" + VALID, "not valid JSON"),
        (VALID + b"x", "not valid JSON"),
        (b"\xc2\xa0" + VALID, "not valid JSON"),  # NBSP is not JSON whitespace
        (VALID + b"\x0c", "not valid JSON"),  # nor is form feed
        (b"{'transaction_id': 'x'}", "not valid JSON"),
        (b'{"a": 1,}', "not valid JSON"),
        (b'{"a": "line\nbreak"}', "not valid JSON"),  # raw control character in a string
        (b'{"a": 01}', "not valid JSON"),
        (b'{"a": .5}', "not valid JSON"),
        (b'{"a": +1}', "not valid JSON"),
        (b'{"a": 0x10}', "not valid JSON"),
        (b"// c\n{}", "not valid JSON"),
    ],
)
def test_not_valid_json(data: bytes, starts: str) -> None:
    assert bad(data).startswith(starts)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("field", ["amount", "latitude", "extra"])
def test_non_standard_constants_are_invalid_json(token: str, field: str) -> None:
    reason = bad(literal(**{field: token}))
    assert reason.startswith("not valid JSON"), reason
    assert token in reason


def test_nan_inside_nested_unknown_field_is_invalid_json() -> None:
    assert bad(literal(extra='{"a": [1, NaN]}')).startswith("not valid JSON")


def test_bom_reason() -> None:
    assert "byte-order mark" in bad(b"\xef\xbb\xbf" + VALID)


@pytest.mark.parametrize("digits", [4301, 5000, 100_000])
@pytest.mark.parametrize("field", ["amount", "timestamp", "extra"])
def test_huge_integer_literal_is_invalid_json(digits: int, field: str) -> None:
    assert bad(literal(**{field: "9" * digits})).startswith("not valid JSON")


def test_integer_at_the_digit_limit_is_parsed() -> None:
    # 4300 digits is the interpreter's limit; it parses, then fails the range check as an amount.
    bad(literal(amount="9" * 4300), "amount")
    t = ok(literal(extra="9" * 4300))
    assert t.raw["extra"] == int("9" * 4300)


@pytest.mark.parametrize(
    "lit",
    [
        "1e5000",
        "1" * 100_000 + ".5",
        "1e999999999999999999",
        "1e9999999999999999999999999999",
        "1e-9999999999999999999999999999",
        "-1e9999999999999999999999999999",
    ],
)
def test_huge_decimal_literals_never_crash(lit: str) -> None:
    for field in ("amount", "account_balance", "latitude", "timestamp", "extra"):
        result = parse_transaction(literal(**{field: lit}))
        assert isinstance(result, Transaction | InvalidRecord)


@pytest.mark.parametrize("depth", [1_000, 100_000, 1_000_000])
def test_deep_nesting_is_invalid_not_a_crash(depth: int) -> None:
    for opener, closer in (("[", "]"), ('{"a":', "}")):
        nested = opener * depth + "1" + closer * depth
        result = parse_transaction(literal(extra=nested))
        assert isinstance(result, Transaction | InvalidRecord)
        if depth >= 100_000:
            assert isinstance(result, InvalidRecord)
            assert result.reason.startswith("not valid JSON")
        result = parse_transaction(nested.encode())
        assert isinstance(result, InvalidRecord)


def test_moderate_nesting_in_unknown_field_is_kept() -> None:
    t = ok(literal(extra="[" * 50 + "]" * 50))
    assert isinstance(t.raw["extra"], list)


# Nesting is capped at 64 levels (the object itself is level 1), so the raw object can always be
# re-encoded (simplejson recurses per level). `extra` is level 2: n containers in it make 1 + n.
DEEP = "not valid JSON: nested deeper than 64 levels"


def _nest(levels: int, kind: str) -> str:
    """JSON text of `levels` nested containers around 1: arrays, objects, or both alternating."""
    openers = {"array": ["["], "object": ['{"k": '], "mixed": ["[", '{"k": ']}[kind]
    closers = {"[": "]", '{"k": ': "}"}
    chain = [openers[i % len(openers)] for i in range(levels)]
    return "".join(chain) + "1" + "".join(closers[o] for o in reversed(chain))


@pytest.mark.parametrize("kind", ["array", "object", "mixed"])
def test_nesting_64_levels_is_valid_and_re_encodes(kind: str) -> None:
    t = ok(literal(extra=_nest(63, kind)))
    assert simplejson.loads(simplejson.dumps(t.raw, use_decimal=True), use_decimal=True) == t.raw
    # 64 at the top level too: the object, then 63 more levels.
    ok(
        b'{"transaction_id": "tx-1", "account_id": "a", "amount": 1, "timestamp": 0, "x": '
        + _nest(63, kind).encode()
        + b"}"
    )


@pytest.mark.parametrize("kind", ["array", "object", "mixed"])
@pytest.mark.parametrize("levels", [64, 65, 100, 500, 900])
def test_nesting_beyond_64_levels_is_invalid(kind: str, levels: int) -> None:
    assert bad(literal(extra=_nest(levels, kind))) == DEEP


def test_nesting_depth_counts_the_deepest_branch_only() -> None:
    # Many shallow containers side by side are fine; one deep branch among them is not.
    wide = "[" + ", ".join(["[]", "{}", '{"a": [1]}'] * 40) + "]"
    ok(literal(extra=wide))
    assert bad(literal(extra="[" + wide + ", " + _nest(63, "mixed") + "]")) == DEEP
    ok(literal(extra="[" + wide + ", " + _nest(62, "mixed") + "]"))
    assert bad(literal(extra=_nest(30, "array"), other=_nest(64, "object"))) == DEEP


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    t = ok(with_(extra="[" * 100 + "{" * 100, merchant_id="{[" * 70))
    assert t.raw["extra"] == "[" * 100 + "{" * 100
    ok(literal(extra='["' + "[" * 100 + '", ' + _nest(62, "array") + "]"))


def test_deep_top_level_value_that_is_not_an_object() -> None:
    assert bad(_nest(65, "array").encode()) == DEEP
    assert bad(_nest(64, "array").encode()) == "not a JSON object: got an array"


# A lone surrogate escape decodes to a string with no UTF-8 form (it would crash the worker when
# used as a Redis key); only a high surrogate escape directly followed by a low one is a character.
def members(text: str) -> bytes:
    """BASE with `text`, literal JSON members (keys written as is), added at the end."""
    return VALID[:-1] + b", " + text.encode() + b"}"


def _lone(escape: str, where: str) -> str:
    return f"not valid JSON: lone surrogate escape ({escape.lower()}) in {where}"


LONE_SURROGATES = ["\\ud800", "\\udbff", "\\udc00", "\\udfff", "\\uD83D", "\\uDE00"]


@pytest.mark.parametrize("esc", LONE_SURROGATES)
def test_lone_surrogate_in_a_string_value_is_invalid(esc: str) -> None:
    assert bad(literal(extra=f'"{esc}"')) == _lone(esc, "a string")
    assert bad(literal(extra=f'"abc{esc}def"')) == _lone(esc, "a string")
    assert bad(literal(merchant_id=f'"m-{esc}"')) == _lone(esc, "a string")
    assert bad(literal(transaction_id=f'"{esc}"')) == _lone(esc, "a string")


@pytest.mark.parametrize("esc", LONE_SURROGATES)
def test_lone_surrogate_in_a_key_is_invalid(esc: str) -> None:
    assert bad(members(f'"x{esc}": 1')) == _lone(esc, "a key")
    assert bad(members(f'"{esc}": "ok"')) == _lone(esc, "a key")
    assert bad(literal(extra=f'{{"{esc}": 1}}')) == _lone(esc, "a key")


@pytest.mark.parametrize("esc", LONE_SURROGATES)
def test_lone_surrogate_in_a_nested_unknown_field_is_invalid(esc: str) -> None:
    assert bad(literal(extra=f'[1, {{"a": [null, "x{esc}y"]}}]')) == _lone(esc, "a string")
    assert bad(literal(extra=f'{{"a": {{"b": [{{"c{esc}": 0}}]}}}}')) == _lone(esc, "a key")
    assert bad(literal(extra=_nest(60, "mixed").replace("1", f'"{esc}"'))) == _lone(esc, "a string")


@pytest.mark.parametrize(
    ("text", "lone"),
    [
        ('"\\ud83d\\u0041"', "\\ud83d"),  # high then not-a-low
        ('"\\ud83d\\ud83d\\ude00"', "\\ud83d"),  # first high unpaired, then a proper pair
        ('"\\ude00\\ud83d"', "\\ude00"),  # low before high is not a pair
        ('"\\ud83d"', "\\ud83d"),
        ('"x\\ud83d"', "\\ud83d"),  # high at the end of the string
        ('"\\ud83d x \\ude00"', "\\ud83d"),  # not adjacent
        ('"\\\\\\ud800"', "\\ud800"),  # escaped backslash, then a real escape
    ],
)
def test_surrogate_escapes_that_do_not_pair(text: str, lone: str) -> None:
    assert bad(literal(extra=text)) == _lone(lone, "a string")


@pytest.mark.parametrize("pair", ["\\ud83d\\ude00", "\\uD83D\\uDE00", "\\ud83D\\uDe00"])
def test_paired_surrogate_escapes_are_valid_and_kept(pair: str) -> None:
    t = ok(members(f'"extra": "a{pair}b", "k{pair}": ["{pair}"], "merchant_id": "{pair}"'))
    assert t.raw["extra"] == "a\U0001f600b"
    assert t.raw["k\U0001f600"] == ["\U0001f600"]
    assert t.merchant_id == "\U0001f600"
    simplejson.dumps(t.raw, use_decimal=True, ensure_ascii=False).encode("utf-8")


def test_escaped_backslash_before_ud800_text_is_valid() -> None:
    # JSON "\\ud800" is a backslash followed by the five characters ud800: no surrogate at all.
    t = ok(members('"extra": "\\\\ud800", "merchant_id": "\\\\uDC00\\\\", "\\\\ud800": 1'))
    assert t.raw["extra"] == "\\ud800"
    assert t.merchant_id == "\\uDC00\\"
    assert t.raw["\\ud800"] == 1
    t = ok(literal(extra='"\\\\\\\\ud800 \\\\\\ud83d\\ude00"'))
    assert t.raw["extra"] == "\\\\ud800 \\\U0001f600"


@pytest.mark.parametrize(
    ("data", "got"),
    [
        (b"[]", "an array"),
        (b"[" + VALID + b"]", "an array"),
        (b'"x"', "a string"),
        (b"1", "a number"),
        (b"1.5", "a number"),
        (b"true", "a boolean"),
        (b"null", "null"),
    ],
)
def test_not_an_object(data: bytes, got: str) -> None:
    assert bad(data) == f"not a JSON object: got {got}"


def test_whitespace_around_object_is_fine() -> None:
    assert ok(b" \t\r\n" + VALID + b"\r\n\t ") == ok(VALID)


def test_empty_object_names_first_missing_field() -> None:
    assert bad(b"{}") == "transaction_id: missing"


# --- duplicate keys ------------------------------------------------------------------------------


def test_duplicate_keys_last_wins() -> None:
    base = b'{"transaction_id": "tx-1", "account_id": "acct-1", "timestamp": 0'
    t = ok(base + b', "amount": -5, "amount": 7.25}')
    assert t.amount == Decimal("7.25")
    assert t.raw["amount"] == Decimal("7.25")
    assert bad(base + b', "amount": 7.25, "amount": -5}', "amount")
    assert bad(base + b', "amount": 7.25, "amount": null}', "amount") == "amount: missing"
    t = ok(base + b', "amount": 1, "transaction_id": "tx-2", "channel": "bogus", "channel": "atm"}')
    assert t.transaction_id == "tx-2"
    assert t.channel == "atm"
    assert list(t.raw).count("channel") == 1


def test_invalid_record_repr_and_equality() -> None:
    assert InvalidRecord("x: y") == InvalidRecord("x: y")
    with pytest.raises(AttributeError):
        InvalidRecord("x").reason = "y"  # type: ignore[misc]


# --- never raises: fuzz --------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)

FIELDS = (*REQUIRED, *OPTIONAL, "latitude", "longitude")

# Per field: values near the contract's edges, valid and not, so that many drawn records are valid.
_PLAUSIBLE: dict[str, list[object]] = {
    "transaction_id": ["tx-1", "x" * 128, "\U0001f600" * 128, "x" * 129, ""],
    "account_id": ["acct-1", "é" * 128, "é" * 129],
    "amount": [1, 12.5, 1_000_000_000, 1000000000.01, 0, -1, True],
    "timestamp": [
        "2026-11-24T09:00:00Z",
        "2026-11-24T09:00:00.123456789+02:00",
        "2026-11-24T09:00+0530",
        "2026-02-30T00:00:00Z",
        "1795500000000",
        1795500000000,
        1.5,
    ],
    "currency": ["USD", "eur", None, 1],
    "account_balance": [0, -10.5, 1e12, None, "1"],
    "origin_country": ["us", "GB", None, 1],
    "destination_country": ["fr", "GB", None, []],
    "merchant_id": ["m-1", None, 7],
    "merchant_category": ["5411", None],
    "channel": ["card_present", "online", "atm", "transfer", "ONLINE", None],
    "device_id": ["dev-1", None, False],
    "ip_address": ["203.0.113.7", "nope", None],
    "account_created_at": ["2020-01-01T00:00:00Z", 1577836800000, None, "2020-01-01"],
    "latitude": [90, -90, 90.0001, 0, None],
    "longitude": [180, -180, 180.0001, 0, None],
}


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    obj: dict[str, Any] = dict(BASE) if draw(st.booleans()) else {}
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        if draw(st.integers(0, 5)):
            obj[field] = draw(st.sampled_from(_PLAUSIBLE[field]))
        else:
            obj[field] = draw(json_values)
    return obj


class _DecimalEncoder(json.JSONEncoder):
    def default(self, o: object) -> object:
        if isinstance(o, Decimal):
            return float(o)
        return super().default(o)


def _dumps(value: object) -> bytes:
    return json.dumps(value, cls=_DecimalEncoder).encode()  # ensure_ascii: lone surrogates escaped


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=256))
def test_fuzz_arbitrary_bytes_never_raise(data: bytes) -> None:
    assert isinstance(parse_transaction(data), Transaction | InvalidRecord)


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_fuzz_arbitrary_json_values_never_raise(value: object) -> None:
    assert isinstance(parse_transaction(_dumps(value)), Transaction | InvalidRecord)


@settings(max_examples=400, deadline=None)
@given(records())
def test_fuzz_records_never_raise_and_valid_ones_hold_invariants(obj: dict[str, Any]) -> None:
    result = parse_transaction(_dumps(obj))
    assert isinstance(result, Transaction | InvalidRecord)
    if isinstance(result, Transaction):
        assert 1 <= len(result.transaction_id) <= 128
        assert 1 <= len(result.account_id) <= 128
        assert 0 < result.amount <= 1_000_000_000
        assert type(result.event_time) is Decimal
        assert (result.latitude is None) == (result.longitude is None)
        if result.latitude is not None and result.longitude is not None:
            assert -90 <= result.latitude <= 90
            assert -180 <= result.longitude <= 180
        assert result.channel in (None, "card_present", "online", "atm", "transfer")
        # What the worker does next: re-encode the raw object, use its strings as UTF-8.
        simplejson.dumps(result.raw, use_decimal=True, ensure_ascii=False).encode("utf-8")
    else:
        field = result.reason.split(":", 1)[0]
        assert field in FIELDS or result.reason.startswith("not ")


# Strings of surrogates (paired or not), backslashes and the letters of an escape.
_surrogate_soup = st.lists(
    st.sampled_from(["a", "\ud800", "\udbff", "\udc00", "\udfff", "\ud83d", "\ude00", "\\", "u"]),
    max_size=8,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(key=_surrogate_soup, value=_surrogate_soup, nested=st.booleans())
def test_fuzz_surrogate_escapes_valid_iff_utf8_encodable(
    key: str, value: str, nested: bool
) -> None:
    obj: dict[str, Any] = dict(BASE)
    obj[key] = {"n": [value]} if nested else value
    data = json.dumps(obj).encode()  # ensure_ascii: every surrogate written as an escape
    decoded = json.loads(data)  # what the escapes mean: adjacent high-low pairs joined
    try:
        json.dumps(decoded, ensure_ascii=False).encode("utf-8")
        encodable = True
    except UnicodeEncodeError:
        encodable = False
    result = parse_transaction(data)
    if encodable:
        assert isinstance(result, Transaction), result
    else:
        assert isinstance(result, InvalidRecord)
        assert result.reason.startswith("not valid JSON: lone surrogate escape (\\ud")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_fuzz_parse_event_time_never_raises(value: str) -> None:
    result = parse_event_time(value)
    assert result is None or type(result) is Decimal


@settings(max_examples=500, deadline=None)
@given(
    st.decimals(
        min_value=Decimal("-1e12"), max_value=Decimal("1e12"), allow_nan=False, allow_infinity=False
    )
)
def test_fuzz_amount_compares_exactly(value: Decimal) -> None:
    result = parse_transaction(literal(amount=str(value)))
    if 0 < value <= Decimal("1e9") and Context(prec=100).remainder(value, Decimal("1e-18")) == 0:
        assert isinstance(result, Transaction)
        assert result.amount == value
    else:
        assert isinstance(result, InvalidRecord)


@settings(max_examples=500, deadline=None)
@given(
    naive=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    offset_minutes=st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
    style=st.sampled_from(["colon", "basic", "hours", "z"]),
    extra_digits=st.text(alphabet="0123456789", max_size=20),
)
def test_fuzz_iso_timestamps_exact(
    naive: datetime, offset_minutes: int, style: str, extra_digits: str
) -> None:
    if style == "z":
        offset_minutes = 0
    if style == "hours":  # whole hours only, keeping the sign
        offset_minutes = int(offset_minutes / 60) * 60
    sign = "-" if offset_minutes < 0 else "+"
    oh, om = divmod(abs(offset_minutes), 60)
    zone = {
        "colon": f"{sign}{oh:02d}:{om:02d}",
        "basic": f"{sign}{oh:02d}{om:02d}",
        "hours": f"{sign}{oh:02d}",
        "z": "Z",
    }[style]
    fraction = f"{naive.microsecond:06d}{extra_digits}"
    value = (
        f"{naive.year:04d}-{naive.month:02d}-{naive.day:02d}T"
        f"{naive.hour:02d}:{naive.minute:02d}:{naive.second:02d}.{fraction}{zone}"
    )
    delta = naive.replace(microsecond=0) - datetime(1970, 1, 1) - timedelta(minutes=offset_minutes)
    whole = delta.days * 86400 + delta.seconds
    expected = Decimal(f"{whole * 10 ** len(fraction) + int(fraction)}E-{len(fraction)}")
    assert parse_event_time(value) == expected
