"""The fast decoder (msgspec) must give exactly the standard path's answer (consumer/records.py).

`parse_transaction` tries msgspec first and falls back to the standard library's decoder with
exact decimals; `_parse_exact` is that reference alone. For any bytes, both must return the same
outcome: the same reason for an invalid record, and for a valid one the same fields, with
`Decimal`s that are equal *and* print the same (trailing zeros kept), and the same object as
received (`raw`) for the outputs.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import simplejson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import fields

from consumer import records
from consumer.records import InvalidRecord, Transaction, _parse_exact, parse_transaction
from tests.unit.test_fuzz_bad_input import EXAMPLES, any_record

SAME = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Every field of a Transaction but the object itself (compared separately, as the outputs write it).
FIELDS = tuple(f.name for f in fields(Transaction) if f.name != "raw")


def _shown(value: object) -> tuple[str, str]:
    """A field as the outputs would show it: its type and its text (Decimal('1.50') != '1.5')."""
    return type(value).__name__, str(value)


def assert_same_outcome(data: bytes) -> Transaction | InvalidRecord:
    fast = parse_transaction(data)
    exact = _parse_exact(data)
    if isinstance(exact, InvalidRecord):
        assert fast == exact, data
        return fast
    assert isinstance(fast, Transaction), (data, fast)
    for name in FIELDS:
        assert _shown(getattr(fast, name)) == _shown(getattr(exact, name)), (name, data)
    assert fast.raw == exact.raw
    assert simplejson.dumps(fast.raw, use_decimal=True) == simplejson.dumps(
        exact.raw, use_decimal=True
    )
    return fast


def record(**overrides: Any) -> bytes:
    body: dict[str, Any] = {
        "transaction_id": "t1",
        "account_id": "a1",
        "amount": 12.5,
        "timestamp": "2026-03-02T09:00:00.000Z",
    }
    body.update(overrides)
    return simplejson.dumps(body, use_decimal=True).encode()


@SAME
@given(any_record)
def test_fast_and_exact_paths_agree_on_any_record(data: bytes) -> None:
    assert_same_outcome(data)


numeric_literals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.integers(min_value=-(10**25), max_value=10**25).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.from_regex(r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][-+]?[0-9]{1,4})?", fullmatch=True),
)


@SAME
@given(
    st.sampled_from(["amount", "account_balance", "latitude", "longitude", "timestamp"]),
    numeric_literals,
    st.sampled_from(["", " ", "\n"]),
)
def test_fast_and_exact_paths_agree_on_any_number_literal(key: str, literal: str, ws: str) -> None:
    text = record().decode()
    if key in ("latitude", "longitude"):
        other = "longitude" if key == "latitude" else "latitude"
        text = text[:-1] + f', "{other}": 1.5, "{key}":{ws}{literal}{ws}}}'
    elif key in ("amount", "timestamp"):
        text = text.replace(f'"{key}": ', f'"{key}":{ws}{literal}{ws}, "was_{key}": ', 1)
    else:
        text = text[:-1] + f', "{key}":{ws}{literal}{ws}}}'
    assert_same_outcome(text.encode())


@pytest.mark.parametrize(
    "data",
    [
        record(amount=Decimal("1.50")),  # trailing zero kept
        b'{"transaction_id":"t","account_id":"a","amount":1.50,"timestamp":0}',
        b'{"transaction_id":"t","account_id":"a","amount":10000.001,"timestamp":0}',
        b'{"transaction_id":"t","account_id":"a","amount":10000.00000000000000001,"timestamp":0}',
        b'{"transaction_id":"t","account_id":"a","amount":1e-400,"timestamp":0}',
        # The bounds: the killer, the finest step and just past it, a zero of tiny exponent.
        b'{"transaction_id":"t","account_id":"a","amount":1e-99999999999,"timestamp":0}',
        b'{"transaction_id":"t","account_id":"a","amount":1e-18,"timestamp":0}',
        b'{"transaction_id":"t","account_id":"a","amount":1.5e-18,"timestamp":0}',
        b'{"transaction_id":"t","account_id":"a","amount":12.50000000000000000000,"timestamp":0}',
        b'{"transaction_id":"t","account_id":"a","amount":1,"timestamp":0,'
        b'"account_balance":0e-99999999999}',
        b'{"transaction_id":"t","account_id":"a","amount":1,"timestamp":0,'
        b'"account_balance":-1000000000000000.000000000000000001}',
        b'{"transaction_id":"t","account_id":"a","amount":1,"timestamp":0,"device_id":"'
        + b"\\u00e9" * 257
        + b'"}',
        b'{"transaction_id":"t","account_id":"a","amount":18446744073709551616,"timestamp":0}',
        b'{"transaction_id":"t","account_id":"a","amount":5,"timestamp":18446744073709551616}',
        b'{"transaction_id":"t","account_id":"a","amount":5,"timestamp":1.0}',
        b'{"transaction_id":"t","account_id":"a","amount":5,"timestamp":0,'
        b'"latitude":90.00000000000000001,"longitude":0}',
        b'{"transaction_id":"t","account_id":"a","amount":5,"timestamp":0,'
        b'"latitude":-90.0,"longitude":180.0}',
        # The key spelled with an escape, and a nested "amount" with another literal.
        b'{"transaction_id":"t","account_id":"a","\\u0061mount":2.5,"timestamp":0,'
        b'"extra":{"amount":3.50}}',
        b'{"transaction_id":"t","account_id":"a","amount":2.5,"timestamp":0,'
        b'"extra":{"amount":3.50}}',
        b'{"transaction_id":"t","account_id":"a","amount":2.5,"amount":2.50,"timestamp":0}',
        b'{"transaction_id":"t","account_id":"a","amount":2.5,"timestamp":0,"big":1e400}',
        b'{"transaction_id":"t","account_id":"a","amount":2.5,"timestamp":0,"s":"\\ud800"}',
        b'\xef\xbb\xbf{"transaction_id":"t","account_id":"a","amount":2.5,"timestamp":0}',
        b'{"transaction_id":"t","account_id":"a","amount":2.5,"timestamp":0,"n":NaN}',
        b'{"transaction_id":"t","account_id":"a","amount":2.5,"timestamp":0,"x":'
        + b"[" * 70
        + b"]" * 70
        + b"}",
        b'{"transaction_id":"t","account_id":"a","amount":2.5,"timestamp":"1969-12-31T23:59:59.25Z"}',
        b'{"transaction_id":"t","account_id":"a","amount":2.5,"timestamp":"2026-03-02T09:00:00.1+01:00",'
        b'"account_created_at":"2021-02-14T08:14:20.000Z"}',
    ],
)
def test_fast_and_exact_paths_agree_on_the_hard_cases(data: bytes) -> None:
    assert_same_outcome(data)


def test_the_fast_path_decides_an_ordinary_record(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_exact_path(data: bytes) -> None:
        raise AssertionError("the standard decoder was used")

    monkeypatch.setattr(records, "_parse_exact", no_exact_path)
    parsed = parse_transaction(record(account_balance=Decimal("100.10"), latitude=1.5, longitude=2))
    assert isinstance(parsed, Transaction)
    assert str(parsed.amount) == "12.5" and str(parsed.account_balance) == "100.10"
    assert str(parsed.raw["account_balance"]) == "100.10"


# Timestamps: the usual 24-character form takes a memoised shortcut (records._second_start);
# any string must get the regex path's answer, digit for digit.
canonical_times = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)
).map(lambda d: f"{d.year:04d}-{d:%m-%dT%H:%M:%S}.{d.microsecond // 1000:03d}Z")
# The usual form with one character replaced: a letter, another script's digit, a sign, ...
mangled_times = st.tuples(
    canonical_times, st.integers(0, 23), st.sampled_from(list("09Z.:-+T \u0663\uff11x"))
).map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + 1 :])


@SAME
@given(st.one_of(canonical_times, mangled_times, st.text(min_size=24, max_size=24)))
def test_the_timestamp_shortcut_agrees_with_the_regex_path(value: str) -> None:
    shortcut = records.parse_event_time(value)
    regex = records._parse_iso(value)
    assert _shown(shortcut) == _shown(regex), value


def test_the_timestamp_shortcut_is_taken_for_the_usual_form(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records._second_start.cache_clear()
    assert str(records.parse_event_time("2026-03-02T09:00:17.123Z")) == "1772442017.123"
    monkeypatch.setattr(records, "_parse_iso", lambda value: pytest.fail("regex path used"))
    assert str(records.parse_event_time("2026-03-02T09:00:17.456Z")) == "1772442017.456"


def test_creation_times_do_not_crowd_the_shared_seconds_out() -> None:
    """Each account has its own creation second; only the stream's event seconds are kept."""
    records._second_start.cache_clear()
    for account in range(50):
        created = f"2020-01-01T00:{account:02d}:00.000Z"
        parsed = parse_transaction(record(account_id=f"a{account}", account_created_at=created))
        assert isinstance(parsed, Transaction)
        assert parsed.account_created_at == records._parse_iso(created)
    assert records._second_start.cache_info().currsize == 1
