"""The lines' JSON (consumer/batch/lines.py `to_json`): msgspec's fast encoder writes exactly the
text simplejson writes, for any value a line can hold, and leaves to simplejson what it cannot."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import simplejson
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.batch import lines as outputs
from consumer.batch.lines import to_json


def reference(value: dict[str, Any]) -> str:
    return simplejson.dumps(value, use_decimal=True, separators=(",", ":"), ensure_ascii=True)


# Decimals as the parser makes them: from any finite literal, trailing zeros and exponents kept.
decimals = st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: Decimal(str(d)))
literals = st.from_regex(
    r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
)
# Floats whose shortest form has no exponent in either encoder (the model's score, 0-100 to two
# places, is the only float a line holds); outside it the exponent is written differently.
plain_floats = st.floats(min_value=1e-4, max_value=1e16, exclude_max=True) | st.just(0.0)
# Mostly ASCII, as real lines are: those take the fast path, which is what is under test.
ascii_text = st.text(alphabet=st.characters(max_codepoint=127))
keys = ascii_text  # field names; non-ASCII text is in the values (and a parametrized case)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**80), max_value=10**80)
    | decimals
    | literals.map(Decimal)
    | plain_floats
    | plain_floats.map(lambda f: -f)
    | st.floats(min_value=0, max_value=100).map(lambda f: round(f, 2))
    | st.text()
    | ascii_text
    | ascii_text
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)
lines = st.dictionaries(keys, values, max_size=8)


@settings(max_examples=600)
@given(lines)
def test_the_fast_encoder_writes_what_simplejson_writes(line: dict[str, Any]) -> None:
    assert to_json(line) == reference(line)


@settings(max_examples=300)
@given(st.dictionaries(st.text(), st.floats(allow_nan=False, allow_infinity=False), max_size=4))
def test_any_finite_float_is_written_as_the_same_number(line: dict[str, float]) -> None:
    """Beyond 1e16 or below 1e-4 msgspec writes `1e16` / `0.00001` where simplejson writes
    `1e+16` / `1e-05`: the same numbers."""
    assert json.loads(to_json(line)) == json.loads(reference(line)) == line


@pytest.mark.parametrize(
    "line",
    [
        {"transaction": {"merchant": "Café"}},  # non-ASCII: escaped as simplejson does
        {"detail": "a\x7fb"},  # DEL, ASCII but escaped by simplejson
        {"emoji": "\U0001f600"},  # a surrogate pair
        {"Zoë": 1},  # a non-ASCII key
        {"amount": Decimal("1.50"), "big": 10**40, "tiny": Decimal("1E-7")},
        {"note": "NaN and Infinity inside a string"},
    ],
)
def test_lines_that_need_escapes_or_look_odd_are_still_the_same(line: dict[str, Any]) -> None:
    assert to_json(line) == reference(line)
    assert json.loads(to_json(line), parse_float=Decimal) == line


def test_the_fast_encoder_writes_the_usual_flagged_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The usual line really takes the fast path (else the property above proves nothing)."""
    calls: list[object] = []
    monkeypatch.setattr(outputs, "_reference_json", lambda value: calls.append(value) or "")
    line = {"transaction_id": "t-1", "amount": Decimal("12000.50"), "reasons": [{"rule": "x"}]}
    assert to_json(line) == '{"transaction_id":"t-1","amount":12000.50,"reasons":[{"rule":"x"}]}'
    assert calls == []
    to_json({"name": "Zoë"})
    assert len(calls) == 1  # non-ASCII: the reference path


def test_the_property_reaches_the_fast_path() -> None:
    """Most generated lines must be ones the fast path writes, or the property proves little."""
    fast = 0
    examples = 0

    @settings(max_examples=300, database=None)
    @given(lines)
    def count(line: dict[str, Any]) -> None:
        nonlocal fast, examples
        examples += 1
        encoded = outputs._fast_encode(line)
        fast += encoded.isascii() and not outputs._needs_reference(encoded)

    count()
    assert fast >= examples // 4, (fast, examples)


def test_a_non_finite_float_score_is_refused_as_before() -> None:
    for value in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValueError, match="not JSON compliant"):
            to_json({"transaction_id": "t-1", "model_score": value})


def test_a_non_finite_decimal_is_refused_as_before() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        to_json({"amount": Decimal("NaN")})
    with pytest.raises(ValueError, match="not JSON compliant"):
        to_json({"amount": Decimal("-Infinity")})
