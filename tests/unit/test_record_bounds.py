"""The bounds of docs/contract.md ("Bounds", issue #19): bounded numbers and strings.

`amount` and `account_balance` are multiples of 1e-18, `account_balance` lies in [-1e15, 1e15],
and the seven string fields the rules and the state use are at most 256 code points. Before
these bounds `"amount": 1e-99999999999` passed `0 < amount <= 1e9`, and every later exact sum
over its account's history (a custom `amount_sum_*` rule, the model's features,
`account_balance - amount`) needed 10^11 digits: MemoryError, and the account's records were
dead-lettered as `internal` for a day.

Each bound is checked just inside and just outside, on both decoder paths (msgspec's fast path,
with the standard path made unreachable, and the standard library's path alone); a property
test holds any JSON number literal in `amount` or `account_balance` to the bounds, decided
quickly, with cheap arithmetic afterwards; a backtest and the real processor run extreme but
valid records without an error, and the old killer is dead-lettered while the rest of its
account is judged normally.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Context, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer import records
from consumer.backtest.history import ReplayHistory
from consumer.backtest.inputs import RecordFile
from consumer.backtest.run import run_backtest
from consumer.cli import main
from consumer.model.features import MODEL_HORIZON_S, features_for
from consumer.records import (
    MAX_BALANCE,
    TEXT_MAX_LEN,
    InvalidRecord,
    Transaction,
    _parse_exact,
    parse_transaction,
)
from consumer.rules.exact import EXACT
from consumer.rules.ruleset_load import default_ruleset, load_ruleset
from tests.support.drive import drive, seq
from tests.support.memory_aws import raw_of

WANT_QUANTUM = "must be a multiple of 1e-18 (no non-zero digit past the 18th decimal place)"
WANT_BALANCE = "must be a number in -1e15..1e15"
WANT_TEXT = "must be a string of at most 256 characters"
TEXT_FIELDS = (
    "currency",
    "origin_country",
    "destination_country",
    "merchant_id",
    "merchant_category",
    "device_id",
    "ip_address",
)


def literal(**fields: str) -> bytes:
    """A valid record with some fields given as literal JSON text (numbers exactly as written)."""
    body = {
        "transaction_id": '"tx-1"',
        "account_id": '"acct-1"',
        "amount": "12.5",
        "timestamp": '"2026-11-24T09:00:00Z"',
        **fields,
    }
    return ("{" + ", ".join(f'"{k}": {v}' for k, v in body.items()) + "}").encode()


def _fast_only(data: bytes) -> Transaction | InvalidRecord:
    """parse_transaction with the standard path unreachable: msgspec's path decides alone."""
    saved = records._parse_exact

    def unreachable(data: bytes) -> Transaction | InvalidRecord:
        raise AssertionError(f"the standard decoder was used: {data[:80]!r}")

    records._parse_exact = unreachable
    try:
        return parse_transaction(data)
    finally:
        records._parse_exact = saved


PATHS: dict[str, Callable[[bytes], Transaction | InvalidRecord]] = {
    "fast": _fast_only,
    "standard": _parse_exact,
}


@pytest.fixture(params=list(PATHS))
def parse(request: pytest.FixtureRequest) -> Callable[[bytes], Transaction | InvalidRecord]:
    return PATHS[request.param]


def _shown(value: object) -> tuple[str, str]:
    return type(value).__name__, str(value)


def _own(text: str) -> Decimal:
    """The exact Decimal a number literal stands for (an integer literal is a JSON integer)."""
    return Decimal(json.loads(text, parse_float=Decimal))


# --- amount: a multiple of 1e-18 ------------------------------------------------------------------

AMOUNTS_INSIDE = [
    "1e-18",
    "0.000000000000000001",
    "10e-19",  # 1.0E-18: the value counts, not the exponent as written
    "0.1e-17",
    "12.50000000000000000000",  # zeros past the 18th place are fine (held with 18)
    "12.500000000000000001",
    "999999999.999999999999999999",
    "1.000000000000000000000000000000e-5",
    "1E+3",
    "1.5e2",
    "1e9",
    "1E+9",
    "0.01e11",
    "1000000000",
    "1000000000.000000000000000000000000",
]
AMOUNTS_OUTSIDE = [
    "1e-19",
    "0.0000000000000000001",
    "12.5000000000000000001",
    "999999999.9999999999999999999",
    "1.5e-18",
    "123.45e-30",
    "0.00000000000000000099",
    "1e-99999999999",  # the killer
    "1e-999999999999999999",
]


@pytest.mark.parametrize("lit", AMOUNTS_INSIDE)
def test_amount_inside_the_bounds_is_kept_exactly(
    parse: Callable[[bytes], Transaction | InvalidRecord], lit: str
) -> None:
    t = parse(literal(amount=lit))
    assert isinstance(t, Transaction), t
    assert _shown(t.amount) == _shown(_held(_own(lit)))  # the literal's value, kept exactly
    assert _shown(t.raw["amount"]) == _shown(json.loads(lit, parse_float=Decimal))


def _held(value: Decimal) -> Decimal:
    """The Decimal of a valid literal as the record holds it: as written, or with exactly 18
    decimal places where it was written with more (all zeros past the 18th), or is a zero with
    a positive exponent."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    held = exponent < -18 or (not value and exponent > 0)  # a zero is held at 1e-18 too
    return value.quantize(Decimal("1e-18"), context=Context(prec=40)) if held else value


@pytest.mark.parametrize("field", ["amount", "account_balance"])
def test_a_million_trailing_zeros_are_held_as_18_decimal_places(
    parse: Callable[[bytes], Transaction | InvalidRecord], field: str
) -> None:
    """`1.` and a million zeros is a multiple of 1e-18, but kept as written every later exact
    sum of its account would be a million digits long (seconds per record for 24 h): the
    record holds the same value with 18 decimal places, and passes the literal through."""
    lit = "1." + "0" * 1_000_000
    started = time.monotonic()
    t = parse(literal(**{field: lit}))
    assert isinstance(t, Transaction), t
    value = getattr(t, field)
    assert str(value) == "1.000000000000000000"
    assert value == 1
    assert len(str(EXACT.add(value, t.amount))) < 40
    assert len(str(t.raw[field])) > 1_000_000  # passed through as received
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("lit", AMOUNTS_OUTSIDE)
def test_amount_past_the_18th_decimal_place_is_invalid(
    parse: Callable[[bytes], Transaction | InvalidRecord], lit: str
) -> None:
    assert parse(literal(amount=lit)) == InvalidRecord(f"amount: {WANT_QUANTUM}")


@pytest.mark.parametrize("lit", ["1e999999999", "1e10", "1000000000.000000000000000001", "-1e-19"])
def test_amount_out_of_range_keeps_its_reason(
    parse: Callable[[bytes], Transaction | InvalidRecord], lit: str
) -> None:
    assert parse(literal(amount=lit)) == InvalidRecord("amount: must be a number > 0 and <= 1e9")


# --- account_balance: in [-1e15, 1e15], a multiple of 1e-18 ---------------------------------------

BALANCES_INSIDE = [
    "1e15",
    "-1e15",
    "1E+15",
    "1000000000000000",
    "-1000000000000000",
    "1000000000000000.000000000000000000000",
    "999999999999999.999999999999999999",
    "-999999999999999.999999999999999999",
    "0",
    "-0",
    "0.000000000000000000",
    "0e999999999",
    "1e-18",
    "-1e-18",
    "-250.75",
    "12.50000000000000000000",
]
BALANCES_OUT_OF_RANGE = [
    "1000000000000000.000000000000000001",
    "-1000000000000000.000000000000000001",
    "1000000000000001",
    "-1000000000000001",
    "1e16",
    "-1e16",
    "1.0000000000000001e15",
    "1e999999999",
    "-1e999999999",
    "9" * 4300,
]
BALANCES_TOO_FINE = [
    "1e-19",
    "-1e-19",
    "0.0000000000000000001",
    "999999999999999.9999999999999999999",
    "1e-99999999999",
    "-1e-99999999999",
]


@pytest.mark.parametrize("lit", BALANCES_INSIDE)
def test_balance_inside_the_bounds_is_kept_exactly(
    parse: Callable[[bytes], Transaction | InvalidRecord], lit: str
) -> None:
    t = parse(literal(account_balance=lit))
    assert isinstance(t, Transaction), t
    assert _shown(t.account_balance) == _shown(_held(_own(lit)))
    assert _shown(t.raw["account_balance"]) == _shown(json.loads(lit, parse_float=Decimal))


@pytest.mark.parametrize("lit", BALANCES_OUT_OF_RANGE)
def test_balance_out_of_range_is_invalid(
    parse: Callable[[bytes], Transaction | InvalidRecord], lit: str
) -> None:
    assert parse(literal(account_balance=lit)) == InvalidRecord(f"account_balance: {WANT_BALANCE}")


@pytest.mark.parametrize("lit", BALANCES_TOO_FINE)
def test_balance_past_the_18th_decimal_place_is_invalid(
    parse: Callable[[bytes], Transaction | InvalidRecord], lit: str
) -> None:
    assert parse(literal(account_balance=lit)) == InvalidRecord(f"account_balance: {WANT_QUANTUM}")


@pytest.mark.parametrize(
    ("lit", "held"),
    [
        ("0e-99999999999", "0E-18"),
        ("-0e-99999999999", "-0E-18"),
        ("0.0000000000000000000000", "0E-18"),
        ("0e-19", "0E-18"),
        ("0E+99999999999", "0E-18"),  # a huge exponent on zero, the other way round
        ("-0e+19", "-0E-18"),
    ],
)
def test_a_zero_balance_with_a_tiny_exponent_is_held_as_0e_18(
    parse: Callable[[bytes], Transaction | InvalidRecord], lit: str, held: str
) -> None:
    """Zero is a multiple of 1e-18 however it is written, but `balance - amount` takes the
    smaller exponent: 0e-99999999999 would expand the amount to 10^11 digits. The value is
    held with exponent -18 (equal, sign kept); the record passes through as received."""
    t = parse(literal(account_balance=lit))
    assert isinstance(t, Transaction), t
    assert str(t.account_balance) == held
    assert t.account_balance == 0
    assert str(t.raw["account_balance"]) == str(Decimal(lit))
    assert str(EXACT.subtract(t.account_balance, t.amount)) == "-12.500000000000000000"


def test_an_integer_balance_is_bounded_too(
    parse: Callable[[bytes], Transaction | InvalidRecord],
) -> None:
    for value, valid in [
        (10**15, True),
        (-(10**15), True),
        (10**15 + 1, False),
        (-(10**15) - 1, False),
    ]:
        t = parse(literal(account_balance=str(value)))
        if valid:
            assert isinstance(t, Transaction) and t.account_balance == value
        else:
            assert t == InvalidRecord(f"account_balance: {WANT_BALANCE}")
    assert MAX_BALANCE == 10**15


# --- strings: at most 256 code points ------------------------------------------------------------


def _json_text(value: str, escaped: bool) -> str:
    return json.dumps(value, ensure_ascii=escaped)


@pytest.mark.parametrize("field", TEXT_FIELDS)
@pytest.mark.parametrize("char", ["x", "é", "\U0001f600", "中"])
@pytest.mark.parametrize("escaped", [False, True])
def test_strings_of_256_code_points_are_valid_257_are_not(
    parse: Callable[[bytes], Transaction | InvalidRecord], field: str, char: str, escaped: bool
) -> None:
    inside = parse(literal(**{field: _json_text(char * TEXT_MAX_LEN, escaped)}))
    assert isinstance(inside, Transaction), inside
    assert inside.raw[field] == char * TEXT_MAX_LEN
    outside = parse(literal(**{field: _json_text(char * (TEXT_MAX_LEN + 1), escaped)}))
    assert outside == InvalidRecord(f"{field}: {WANT_TEXT}")


def test_ids_and_pass_through_fields_keep_their_own_limits(
    parse: Callable[[bytes], Transaction | InvalidRecord],
) -> None:
    t = parse(literal(note=json.dumps("n" * 100_000), channel='"online"'))
    assert isinstance(t, Transaction)  # unlisted fields are not bounded
    assert parse(literal(transaction_id=json.dumps("t" * 129))) == InvalidRecord(
        "transaction_id: must be a string of 1..128 characters"
    )


def test_a_wrong_type_keeps_its_reason(
    parse: Callable[[bytes], Transaction | InvalidRecord],
) -> None:
    for field in TEXT_FIELDS:
        assert parse(literal(**{field: "7"})) == InvalidRecord(f"{field}: must be a string")


def test_the_first_bad_field_names_the_reason(
    parse: Callable[[bytes], Transaction | InvalidRecord],
) -> None:
    long = json.dumps("x" * 300)
    both = literal(amount="1e-19", account_balance="1e16", device_id=long)
    assert parse(both) == InvalidRecord(f"amount: {WANT_QUANTUM}")
    assert parse(literal(account_balance="1e16", device_id=long)) == InvalidRecord(
        f"account_balance: {WANT_BALANCE}"
    )


# --- adversarial literals are decided quickly -----------------------------------------------------

ADVERSARIAL = [
    "1e-99999999999",
    "-1e-99999999999",
    "1e999999999",
    "0e-99999999999",
    "0e999999999999999999",
    "1e-999999999999999999",
    "1e-9999999999999999999999999999",
    "1e9999999999999999999999999999",
    "0." + "0" * 100_000 + "1",
    "1." + "0" * 100_000,
    "9" * 4300,
    "9" * 100_000 + ".5",
]


@pytest.mark.parametrize("lit", ADVERSARIAL, ids=lambda lit: lit[:24])
@pytest.mark.parametrize("field", ["amount", "account_balance"])
def test_adversarial_literals_are_decided_in_milliseconds(field: str, lit: str) -> None:
    """On both entry points (msgspec refuses an exponent Decimal cannot hold and leaves it to
    the standard path, which names it: not valid JSON)."""
    data = literal(**{field: lit})
    outcomes: list[object] = []
    for parse in (parse_transaction, _parse_exact):
        started = time.perf_counter()
        result = parse(data)
        elapsed = time.perf_counter() - started
        assert elapsed < 0.5, elapsed  # a few ms; MemoryError or seconds before the bounds
        if isinstance(result, Transaction):
            _assert_cheap_arithmetic(result, len(lit))
            outcomes.append((_shown(result.amount), _shown(result.account_balance)))
        else:
            assert result.reason.startswith((f"{field}:", "not valid JSON")), result.reason
            outcomes.append(result.reason)
    assert outcomes[0] == outcomes[1]


def _assert_cheap_arithmetic(t: Transaction, literal_length: int) -> None:
    """What the rules and the model do next runs with operands no longer than the literal."""
    bound = literal_length + 40
    amount = t.amount
    results = [EXACT.add(amount, Decimal("0.01")), EXACT.multiply(amount, Decimal("0.9"))]
    if t.account_balance is not None:
        results.append(EXACT.subtract(t.account_balance, amount))
        results.append(EXACT.multiply(Decimal("0.9"), t.account_balance))
    for value in results:  # (a zero may keep a large positive exponent: it costs nothing)
        assert len(value.as_tuple().digits) <= bound, (amount, t.account_balance)


# --- property: any number literal -----------------------------------------------------------------

BOUNDS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def number_literals(draw: st.DrawFn) -> tuple[str, int, int]:
    """A JSON number literal, its value as (integer coefficient, exponent) computed apart."""
    negative = draw(st.booleans())
    whole = draw(
        st.sampled_from(["0", "1", "9"]) | st.from_regex(r"[1-9][0-9]{0,30}", fullmatch=True)
    )
    fraction = draw(st.none() | st.from_regex(r"[0-9]{1,40}", fullmatch=True))
    exponent: int | None = draw(
        st.none()
        | st.integers(-40, 40)
        | st.sampled_from([-99999999999, 999999999, -(10**18), 10**18 - 1, -(10**30), 10**30])
        | st.integers(-(10**20), 10**20)
    )
    text = ("-" if negative else "") + whole
    if fraction is not None:
        text += "." + fraction
    if exponent is not None:
        style = draw(st.sampled_from(["e", "E", "e+", "E+"]))
        text += (style if exponent >= 0 else style[0]) + str(exponent)
    digits = whole + (fraction or "")
    coefficient = int(digits) * (-1 if negative else 1)
    scale = (exponent or 0) - len(fraction or "")
    return text, coefficient, scale


def _expected(field: str, text: str, coefficient: int, scale: int) -> str | None:
    """The reason the record must get (None: valid), worked out on the literal's digits alone:
    never 10**scale, which for `1e-99999999999` is the very number the bounds keep out."""
    try:
        Decimal(text)
    except ArithmeticError:  # an exponent past what Decimal holds (about 10**18)
        return "not valid JSON: a number is too large"
    digits = str(abs(coefficient)).rstrip("0")
    scale += len(str(abs(coefficient))) - len(digits)  # trailing zeros moved to the exponent
    leading = scale + len(digits) - 1  # the exponent of the leading digit

    def at_most(power: int) -> bool:  # |value| <= 10**power, for a non-zero value
        return leading < power or (leading == power and digits == "1")

    multiple = coefficient == 0 or scale >= -18
    if field == "amount":
        if not (coefficient > 0 and at_most(9)):
            return "amount: must be a number > 0 and <= 1e9"
    elif coefficient != 0 and not at_most(15):
        return f"account_balance: {WANT_BALANCE}"
    return None if multiple else f"{field}: {WANT_QUANTUM}"


@BOUNDS
@given(number_literals(), st.sampled_from(["amount", "account_balance"]))
def test_any_number_literal_validates_within_the_bounds_or_is_refused_quickly(
    number: tuple[str, int, int], field: str
) -> None:
    """Any literal: decided on both paths in well under a second, never an exception; a valid
    one is within the bounds, is the literal's own Decimal, and later arithmetic stays small."""
    text, coefficient, scale = number
    data = literal(**{field: text})
    started = time.perf_counter()
    fast = parse_transaction(data)
    standard = _parse_exact(data)
    assert time.perf_counter() - started < 1.0
    expected = _expected(field, text, coefficient, scale)
    if expected is not None:
        assert fast == standard == InvalidRecord(expected), text
        return
    assert isinstance(fast, Transaction) and isinstance(standard, Transaction), (text, fast)
    for result in (fast, standard):
        value = result.amount if field == "amount" else result.account_balance
        assert value is not None
        # At most 18 decimal places of value, and a bounded magnitude.
        assert value == value.quantize(Decimal("1e-18"), context=EXACT)
        if field == "amount":
            assert 0 < value <= 10**9
        else:
            assert -MAX_BALANCE <= value <= MAX_BALANCE
        # The literal's exact Decimal; written with more than 18 decimal places (only zeros past
        # the 18th), held with exactly 18: the same value, sign kept.
        assert _shown(value) == _shown(_held(_own(text)))
        if not value and _own(text).as_tuple().exponent < -18:  # type: ignore[operator]
            assert str(value) == ("-0E-18" if text.startswith("-") else "0E-18")
        _assert_cheap_arithmetic(result, len(text))
    assert _shown(fast.amount) == _shown(standard.amount)
    assert _shown(fast.account_balance) == _shown(standard.account_balance)


@BOUNDS
@given(st.sampled_from(TEXT_FIELDS), st.text(min_size=250, max_size=262))
def test_any_string_is_bounded_at_256_code_points(field: str, value: str) -> None:
    data = literal(**{field: json.dumps(value)})  # ensure_ascii: escapes, lone surrogates too
    result = parse_transaction(data)
    if isinstance(result, Transaction):
        assert len(value) <= TEXT_MAX_LEN
        assert result.raw[field] == value
    elif len(value) > TEXT_MAX_LEN:
        assert result.reason in (f"{field}: {WANT_TEXT}",) or result.reason.startswith(
            "not valid JSON: lone surrogate"
        )
    else:
        assert result.reason.startswith("not valid JSON: lone surrogate"), result.reason


# --- end to end: backtest and the processor -------------------------------------------------------

RULES = """
version: "bounds-1"
custom:
  - id: sum_1h
    description: more than 5000 within an hour
    severity: high
    when: amount_sum_1h > 5000
  - id: overdraft
    description: more than the balance
    severity: medium
    when: account_balance - amount < 0
  - id: spent_24h
    description: anything spent in a day, by an account of any age
    severity: low
    shadow: true
    when: amount_sum_24h * 2 > 0 and account_age_s > 0
"""
BASE_MS = 1_795_500_000_000  # 2026-11-24T06:00:00Z


def _record(n: int, account: str, amount: str, seconds: int, **literals: str) -> str:
    body = {
        "transaction_id": json.dumps(f"{account}-{n}"),
        "account_id": json.dumps(account),
        "amount": amount,
        "timestamp": str(BASE_MS + seconds * 1000),
        **literals,
    }
    return "{" + ",".join(f'"{k}":{v}' for k, v in body.items()) + "}"


def _extreme_records() -> list[str]:
    """Valid records at the edges of every bound, on one account (history sums included)."""
    s256 = {
        field: json.dumps(c * 256)
        for field, c in zip(TEXT_FIELDS, "CxyM\U0001f600d中", strict=True)
    }
    created = {"account_created_at": '"0001-01-01T00:00:00Z"'}
    return [
        _record(
            0,
            "E",
            "999999999.999999999999999999",
            0,
            account_balance="1000000000000000",
            latitude="90",
            longitude="-180",
            **s256,
            **created,
        ),
        _record(
            1,
            "E",
            "1e-18",
            100,
            account_balance="-1e15",
            latitude="-90",
            longitude="180",
            **created,
        ),
        _record(
            2, "E", "12.50000000000000000000", 200, account_balance="0e-99999999999", **created
        ),
        _record(
            3,
            "E",
            "1E+9",
            300,
            account_balance="-0e-99999999999",
            timestamp='"2026-11-24T06:05:00.123456789012345678901234567890Z"',
        ),
        _record(4, "E", "1.5e2", 400, account_balance="999999999999999.999999999999999999"),
        _record(
            5,
            "E",
            "0.000000000000000001",
            500,
            account_balance="-999999999999999.999999999999999999",
        ),
        _record(
            6,
            "E",
            "1000000000.000000000000000000000",
            600,
            account_balance="0.00000000000000000000000",
            **created,
        ),
    ]


def _killer_records() -> list[str]:
    """Account K: a good record, the old killer, then good ones a sum must see correctly."""
    return [
        _record(0, "K", "3000", 0, account_balance="10000"),
        _record(1, "K", "1e-99999999999", 60, account_balance="10000"),
        _record(2, "K", "3000", 120, account_balance="2000"),
        _record(3, "K", "0.01", 180, account_balance="0e-99999999999"),
        _record(4, "O", "20", 240),  # another account in between
        _record(5, "K", "1", 1000, account_balance="100"),
    ]


def _write_replay(path: Path, texts: list[str]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for text in texts:
            handle.write(json.dumps({"data": text}) + "\n")
    return path


def _backtest_cli(
    capsys: pytest.CaptureFixture[str], rules: Path, data: Path
) -> tuple[int, dict[str, Any], str]:
    code = main(
        ["backtest", "--no-progress", "--json", "--rules", str(rules), "--input", str(data)]
    )
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else {}), err


def _decisions(data: Path, rules_text: str) -> dict[str, tuple[str, ...]]:
    with RecordFile(data) as source:
        result = run_backtest(
            source.items(),
            load_ruleset(rules_text.encode(), "yaml"),
            default_ruleset(),
            keep_decisions=True,
        )
    assert result.decisions is not None
    return {txn_id: new for _, txn_id, new, _ in result.decisions}


def test_backtest_of_extreme_but_valid_records_runs_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    data = _write_replay(tmp_path / "extreme.jsonl", _extreme_records())
    code, report, err = _backtest_cli(capsys, rules, data)
    assert code == 0, err
    assert "Traceback" not in err and "Error" not in err
    assert report["records"] == report["judged"] == 7
    assert report["invalid"]["count"] == 0
    # The shadow rule multiplies a day's sum and reads account_age_s (created in year 1).
    [shadow] = [row for row in report["rules"] if row["rule"] == "spent_24h"]
    assert shadow["shadow_hits"]["new"] == 4
    assert _decisions(data, RULES) == {
        "E-0": ("high_amount", "cross_border", "sum_1h"),  # 256-character countries differ
        "E-1": ("impossible_travel", "sum_1h", "overdraft"),  # pole to pole; -1e15 - 1e-18 < 0
        "E-2": ("sum_1h", "overdraft"),  # 0 - 12.5 < 0, the zero written as 0e-99999999999
        "E-3": ("high_amount", "low_balance_high_amount", "sum_1h", "overdraft"),  # 1e9 > 0.9*-0
        "E-4": ("sum_1h",),
        "E-5": ("sum_1h", "overdraft"),
        "E-6": ("high_amount", "low_balance_high_amount", "sum_1h", "overdraft"),
    }


def test_model_features_of_extreme_records_are_cheap() -> None:
    history = ReplayHistory(Decimal(MODEL_HORIZON_S))
    for text in _extreme_records():
        txn = parse_transaction(text.encode())
        assert isinstance(txn, Transaction)
        seen = history.observe(txn)
        assert seen is not None
        started = time.perf_counter()
        row = features_for(txn, seen)
        assert time.perf_counter() - started < 0.5
        assert len(row) > 10


def test_backtest_dead_letters_the_old_killer_and_judges_its_account_normally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    data = _write_replay(tmp_path / "killer.jsonl", _killer_records())
    started = time.perf_counter()
    code, report, err = _backtest_cli(capsys, rules, data)
    assert time.perf_counter() - started < 30
    assert code == 0, err
    assert "Traceback" not in err and "MemoryError" not in err
    assert report["records"] == 6 and report["judged"] == 5
    assert report["invalid"]["count"] == 1
    assert report["invalid"]["reasons"] == [
        {"reason": f"amount: {WANT_QUANTUM}", "count": 1, "records": [2]}
    ]
    assert _decisions(data, RULES) == {
        "K-0": (),
        "K-2": ("low_balance_high_amount", "sum_1h", "overdraft"),  # 3000 + 3000 in the hour
        "K-3": ("sum_1h", "overdraft"),  # 6000.01; 0 - 0.01 < 0
        "O-4": (),
        "K-5": ("sum_1h",),  # 3000 + 3000 + 0.01 + 1
    }


def test_the_processor_dead_letters_the_old_killer_and_judges_its_account(
    redis_conn: Any, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    batch = [text.encode() for text in _killer_records()]
    out = drive([batch], redis_conn, ruleset=str(rules))
    assert out.checkpoints == [seq(len(batch))]
    [letter] = out.dead_letters
    assert letter["error"] == f"amount: {WANT_QUANTUM}"
    assert raw_of(letter) == batch[1]
    flagged = {line["transaction_id"]: [r["rule"] for r in line["reasons"]] for line in out.flagged}
    assert flagged == {
        "K-2": ["low_balance_high_amount", "sum_1h", "overdraft"],
        "K-3": ["sum_1h", "overdraft"],
        "K-5": ["sum_1h"],
    }


def test_the_processor_judges_extreme_but_valid_records_without_internal_errors(
    redis_conn: Any, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    batch = [text.encode() for text in _extreme_records()]
    out = drive([batch], redis_conn, ruleset=str(rules), arrival_ms=BASE_MS + 3_600_000)
    assert out.dead_letters == []  # no `internal:` letter, no other
    assert out.checkpoints == [seq(len(batch))]
    assert len(out.flagged) == len(batch)
