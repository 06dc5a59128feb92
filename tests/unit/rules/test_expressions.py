"""The `when` language (consumer.rules.expressions): what it refuses, where it says the problem
is, and what an accepted condition means (exact numbers, absent values, lists, countries)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.records import Transaction, parse_transaction
from consumer.rules import EMPTY_HISTORY, AccountHistory, HistoryEntry
from consumer.rules.expressions import MAX_DEPTH, ExpressionError, compile_expression
from consumer.rules.features import FEATURES, Facts, FeaturePlan

BASE_MS = 1795510800000  # 2026-11-24T09:00:00Z


def txn(**fields: Any) -> Transaction:
    """A parsed transaction; numbers given as str are written as JSON literals."""
    obj: dict[str, Any] = {
        "transaction_id": "t-1",
        "account_id": "acct-1",
        "timestamp": BASE_MS,
        "amount": "100",
    }
    obj.update(fields)
    parts = []
    for key, value in obj.items():
        literal = value if key in ("amount", "account_balance") else json.dumps(value)
        parts.append(f"{json.dumps(key)}: {literal}")
    parsed = parse_transaction(("{" + ", ".join(parts) + "}").encode())
    assert isinstance(parsed, Transaction), parsed
    return parsed


def holds(source: str, t: Transaction, history: AccountHistory = EMPTY_HISTORY) -> bool:
    expression = compile_expression(source)
    facts = Facts(t, history, FeaturePlan.for_names(frozenset(expression.names)))
    result = expression.test(facts)
    assert isinstance(result, bool)
    return result


def refusal(source: str) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source)
    return caught.value


# --- refusals, and where they point -----------------------------------------------------------

# (source, a fragment of the reason, the text the caret must underline)
REFUSED = [
    ("amout > 5000", "unknown field 'amout' (did you mean 'amount'?)", "amout"),
    ("amount > 5 and txn_cnt_1h > 3", "unknown field 'txn_cnt_1h'", "txn_cnt_1h"),
    ("account_id == 'x'", "unknown field 'account_id'", "account_id"),
    ("len(channel) > 3", "function calls are not allowed", "len(channel)"),
    (
        '__import__("os").system("ls")',
        "function calls are not allowed",
        '__import__("os").system("ls")',
    ),
    ("amount > 1 and max(amount, 2) > 1", "function calls are not allowed", "max(amount, 2)"),
    ("amount.real > 5", "attribute access (.) is not allowed", "amount.real"),
    ("new_device and ().__class__", "attribute access (.) is not allowed", "().__class__"),
    ('channel[0] == "o"', "subscripts ([...]) are not allowed", "channel[0]"),
    ("lambda: True", "lambdas are not allowed", "lambda: True"),
    ("[x for x in [1]]", "comprehensions are not allowed", "[x for x in [1]]"),
    ("new_device or {x for x in [1]}", "comprehensions are not allowed", "{x for x in [1]}"),
    ("amount if new_device else 0", "conditional expressions", "amount if new_device else 0"),
    ("(x := 5) > 1", "assignments (:=) are not allowed", "x := 5"),
    ('channel == f"on{1}"', "f-strings are not allowed", 'f"on{1}"'),
    ("{1: 2} == 1", "dictionaries are not allowed", "{1: 2}"),
    ("[1, 2] == 1", "a list is only allowed after `in`", "[1, 2]"),
    ("(yield 5)", "yield is not allowed", "yield 5"),
    ("amount ** 2 > 5", "operator ** is not allowed", "amount ** 2"),
    ("amount % 2 == 0", "operator % is not allowed", "amount % 2"),
    ("new_device | new_country", "operator | is not allowed", "new_device | new_country"),
    ("~amount > 1", "operator ~ is not allowed", "~amount"),
    ("channel > 5", "cannot compare a string (may be absent) with a number", "channel > 5"),
    ('amount == "5"', "cannot compare a number with a string", 'amount == "5"'),
    ('channel > "a"', "> needs numbers", 'channel > "a"'),
    ("new_device < true", "< needs numbers", "new_device < true"),
    ("amount and new_device", "`and` needs true or false, but this is a number", "amount"),
    ("new_device or channel", "`or` needs true or false, but this is a string", "channel"),
    ("not amount", "`not` needs true or false", "amount"),
    ("currency + 1 == 2", "`+` needs numbers, but this is a string", "currency"),
    ("-channel == 1", "unary - needs numbers", "channel"),
    ("amount", "must be true or false; this is a number", "amount"),
    ("amount + 1", "must be true or false; this is a number", "amount + 1"),
    ('channel == "onlin"', "channel is never 'onlin'", '"onlin"'),
    ('"web" == channel', "channel is never 'web'", '"web"'),
    ('channel in ["online", "atm2"]', "channel is never 'atm2'", '"atm2"'),
    ('amount in ["a"]', "cannot look for a number in a list with a string", '"a"'),
    ("channel in merchant_id", "needs a literal list on its right", "merchant_id"),
    ('channel in ("online")', "needs a literal list on its right", '"online"'),
    ("amount in [1, account_balance]", "holds literals only", "account_balance"),
    ("amount is None", "never absent", "amount is None"),
    ("account_balance == None", "using `is None`", "None"),
    ("account_balance is 5", "only tests for absence", "5"),
    ("amount / 0 > 1", "division by zero", "amount / 0"),
    ("amount > 1j", "imaginary numbers are not allowed", "1j"),
    ('channel == b"x"', "byte strings are not allowed", 'b"x"'),
    ("amount > > 5", "syntax error", ">"),
    ("(amount > 5", "syntax error: '(' was never closed", "("),
    ("amount > 5)", "syntax error: unmatched ')'", ")"),
    ('amount > 5 # and channel == "atm"', "comments (#) are not allowed", '# and channel == "atm"'),
]


@pytest.mark.parametrize(("source", "reason", "spot"), REFUSED)
def test_refused_with_the_reason_and_a_caret_under_the_spot(
    source: str, reason: str, spot: str
) -> None:
    error = refusal(source)
    assert reason in error.reason
    start = source.rindex(spot) if spot in (">", ")") else source.index(spot)
    assert error.offset == start, (error.offset, start, str(error))
    assert (error.line, error.column) == (1, start + 1)
    text_line, caret_line = error.excerpt.split("\n")
    assert text_line == "    " + source
    assert caret_line == "    " + " " * start + "^" * len(spot)
    assert str(error).startswith(f"line 1, column {start + 1}: ")


def test_a_spot_on_a_later_line_of_a_multi_line_condition() -> None:
    error = refusal('amount > 1000\n  and chanel == "online"\n  and new_device')
    assert (error.line, error.column, error.offset) == (2, 7, 20)
    assert "unknown field 'chanel' (did you mean 'channel'?)" in error.reason
    assert error.excerpt == '      and chanel == "online"\n          ^^^^^^'


def test_columns_count_characters_not_bytes() -> None:
    error = refusal('merchant_category == "café ☕" and amout > 1')
    assert error.column == 'merchant_category == "café ☕" and '.__len__() + 1
    assert error.excerpt.split("\n")[1].index("^") - 4 == error.column - 1


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("", "the condition is empty"),
        ("  \n ", "the condition is empty"),
        ("amount > 1 and " * 200 + "new_device", "longer than 2000 characters"),
        ("not " * (MAX_DEPTH + 5) + "new_device", f"nested more than {MAX_DEPTH} levels deep"),
        ("amount > 1\0", "a NUL character is not allowed"),
        ("amount > 5and new_device", "syntax error: invalid decimal literal"),
    ],
)
def test_refused_shapes(source: str, reason: str) -> None:
    assert reason in refusal(source).reason


def test_no_python_is_ever_run() -> None:
    # Each would have a side effect if evaluated; each is refused before anything runs.
    for source in (
        '__import__("os").system("touch /tmp/pwned")',
        "open('/etc/passwd').read() == ''",
        "().__class__.__bases__[0].__subclasses__()",
        "exec('1')",
        "globals()",
    ):
        with pytest.raises(ExpressionError):
            compile_expression(source)


# --- meaning ----------------------------------------------------------------------------------


def test_numbers_are_exact_decimals() -> None:
    assert holds("amount > 10000", txn(amount="10000.001"))
    assert not holds("amount > 10000", txn(amount="10000.000"))
    assert holds("amount == 0.1 + 0.2", txn(amount="0.3"))  # false in binary floats
    assert holds("amount <= 5.00", txn(amount="5.00"))
    assert holds("amount == 1_000", txn(amount="1000"))
    assert holds("amount == 1e3", txn(amount="1000"))
    assert holds(  # 29 digits: a 28-digit context would round the product
        "amount * 30 == 29999999999.999999999999999970",
        txn(amount="999999999.999999999999999999"),
    )
    assert holds("-amount < -99.99", txn(amount="100"))
    assert holds("amount - 0.01 == 99.99", txn(amount="100"))


def test_division_rounds_to_34_digits_and_is_absent_on_zero() -> None:
    assert holds("amount / account_balance > 0.9", txn(amount="950", account_balance="1000"))
    # 100 / 3 keeps 34 digits (33.33...33, 32 of them after the point): times 3, 1e-32 short.
    assert holds("amount - amount / 3 * 3 == 0.00000000000001 * 0.000000000000000001", txn())
    # A zero divisor at run time makes the value absent, so every comparison is false.
    assert not holds("amount / account_balance > 0", txn(account_balance="0"))
    assert not holds("amount / account_balance <= 0", txn(account_balance="0"))


def test_absent_values_make_comparisons_false() -> None:
    bare = txn()
    assert not holds("account_balance > 0", bare)
    assert not holds("account_balance <= 0", bare)
    assert not holds("account_balance != 5", bare)
    assert not holds("account_balance * 2 > 1", bare)
    assert not holds('channel not in ["atm"]', bare)
    assert not holds('channel in ["atm"]', bare)
    assert not holds("origin_country != destination_country", txn(origin_country="DE"))
    assert holds("not (account_balance > 0)", bare)
    assert holds("account_balance is None", bare)
    assert holds("account_balance is null", bare)
    assert not holds("account_balance is not None", bare)
    assert holds("account_balance is not None", txn(account_balance="1"))
    assert holds('channel != "atm"', txn(channel="online"))


def test_chained_comparisons() -> None:
    assert holds("1 < amount <= 100", txn(amount="100"))
    assert not holds("1 < amount < 100", txn(amount="100"))
    assert not holds("0 < account_balance < amount", txn())
    assert holds("0 < account_balance < amount", txn(account_balance="50"))


def test_lists_countries_and_channels() -> None:
    fr = txn(destination_country="fr", origin_country="DE", channel="online")
    assert holds('destination_country == "FR"', fr)
    assert holds('destination_country == "fr"', fr)  # countries compare case-insensitively
    assert holds('"fr" == destination_country', fr)
    assert holds('destination_country in ["es", "fr"]', fr)
    assert holds('destination_country not in ("es", "it")', fr)
    assert holds('channel in {"online", "atm"}', fr)
    assert not holds('channel == "atm"', fr)
    assert holds("amount in [99, 100.00, 101]", fr)
    assert holds("amount not in [-1, 5.5]", fr)


def test_booleans() -> None:
    t = txn()
    for source in ("true", "True", "not false", "true and not False", "first_transaction"):
        assert holds(source, t)
    assert holds("first_transaction == true", t)
    assert not holds("first_transaction != True", t)


def test_or_and_and_short_circuit_so_history_features_stay_uncomputed() -> None:
    expression = compile_expression("first_transaction or txn_count_24h > 3")
    assert expression.names == ("first_transaction", "txn_count_24h")
    facts = Facts(txn(), EMPTY_HISTORY, FeaturePlan.for_names(frozenset(expression.names)))
    assert expression.test(facts) is True
    assert "txn_count_24h" not in facts.values


def test_floats_mix_with_exact_numbers() -> None:
    located = txn(latitude=52.52, longitude=13.405, timestamp=BASE_MS + 3_600_000)
    paris = HistoryEntry((1, 0), Decimal(BASE_MS // 1000), Decimal(1), 48.8566, 2.3522)
    history = AccountHistory(recent=[paris], has_earlier=True)
    assert holds("877 < km_from_last < 879", located, history)
    assert holds("km_from_last / 2 > 438.5", located, history)
    assert holds("speed_kmh_from_last == km_from_last", located, history)  # one hour apart
    assert holds("latitude * 2 > 105.03", located)


# --- robustness: any accepted condition evaluates to a bool and never raises ------------------

NAMES = sorted(FEATURES)
LITERALS = ["0", "1", "-1", "5.00", "1e3", "0.1", '"online"', '"FR"', '"x"', "true", "None"]


def _expressions() -> st.SearchStrategy[str]:
    atoms = st.sampled_from(NAMES) | st.sampled_from(LITERALS)

    def combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        binary = st.tuples(
            children,
            st.sampled_from(
                ["and", "or", "==", "!=", "<", ">=", "+", "-", "*", "/", "is", "is not", "in"]
            ),
            children,
        ).map(lambda p: f"({p[0]} {p[1]} {p[2]})")
        lists = st.lists(st.sampled_from(LITERALS), max_size=3).map(lambda xs: f"[{', '.join(xs)}]")
        member = st.tuples(children, st.sampled_from(["in", "not in"]), lists).map(
            lambda p: f"({p[0]} {p[1]} {p[2]})"
        )
        unary = st.tuples(st.sampled_from(["not ", "-"]), children).map(lambda p: f"{p[0]}({p[1]})")
        return binary | member | unary

    return st.recursive(atoms, combine, max_leaves=8)


NUMBER_NAMES = sorted(n for n, f in FEATURES.items() if f.type.kind == "number")
STRING_NAMES = sorted(n for n, f in FEATURES.items() if f.type.kind == "string")
BOOL_NAMES = sorted(n for n, f in FEATURES.items() if f.type.kind == "bool")
NULLABLE = sorted(n for n, f in FEATURES.items() if f.type.nullable)


def _numbers() -> st.SearchStrategy[str]:
    atoms = st.sampled_from(NUMBER_NAMES) | st.sampled_from(["0", "1", "-2", "5.00", "1e3", "0.1"])
    return st.recursive(
        atoms,
        lambda c: st.tuples(c, st.sampled_from(["+", "-", "*", "/"]), c).map(
            lambda p: f"({p[0]} {p[1]} {p[2]})"
        ),
        max_leaves=4,
    )


def _conditions() -> st.SearchStrategy[str]:
    """Well-typed conditions, so most are accepted and evaluated."""
    ordered = st.tuples(
        _numbers(), st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), _numbers()
    ).map(" ".join)
    chained = st.tuples(_numbers(), _numbers(), _numbers()).map(
        lambda p: f"{p[0]} < {p[1]} <= {p[2]}"
    )
    strings = st.tuples(
        st.sampled_from(STRING_NAMES),
        st.sampled_from(["==", "!="]),
        st.sampled_from(STRING_NAMES) | st.just('"FR"'),
    ).map(" ".join)
    member = st.tuples(st.sampled_from(NUMBER_NAMES), st.sampled_from(["in", "not in"])).map(
        lambda p: f"{p[0]} {p[1]} [0, 1, 4.99, 100]"
    )
    absent = st.tuples(st.sampled_from(NULLABLE), st.sampled_from(["is", "is not"])).map(
        lambda p: f"{p[0]} {p[1]} None"
    )
    atoms = ordered | chained | strings | member | absent | st.sampled_from(BOOL_NAMES)
    return st.recursive(
        atoms,
        lambda c: (
            st.tuples(c, st.sampled_from(["and", "or"]), c).map(lambda p: f"({p[0]} {p[1]} {p[2]})")
            | c.map(lambda x: f"not ({x})")
        ),
        max_leaves=6,
    )


SAMPLES = [
    (txn(), EMPTY_HISTORY),
    (
        txn(
            amount="5000.5",
            account_balance="0",
            channel="online",
            origin_country="DE",
            destination_country="FR",
            latitude=52.52,
            longitude=13.405,
            device_id="d",
            account_created_at=BASE_MS - 86_400_000,
        ),
        AccountHistory(
            recent=[
                # Same instant: an infinite speed; then an unlocated one.
                HistoryEntry((1, 0), Decimal(BASE_MS // 1000), Decimal("4.99"), 48.85, 2.35, "FR"),
                HistoryEntry(
                    (2, 0), Decimal(BASE_MS // 1000 - 30), Decimal("10"), None, None, None
                ),
                HistoryEntry((3, 0), Decimal(BASE_MS // 1000 - 1), Decimal("1"), 52.5, 13.4, "DE"),
            ],
            has_earlier=True,
        ),
    ),
]


def _evaluates_to_a_bool(source: str) -> str | None:
    """None when accepted (and every evaluation gave a bool), else the refusal's reason."""
    try:
        expression = compile_expression(source)
    except ExpressionError as error:
        assert 0 <= error.offset <= len(source)
        assert "^" in error.excerpt
        return error.reason
    for t, history in SAMPLES:
        facts = Facts(t, history, FeaturePlan.for_names(frozenset(expression.names)))
        assert isinstance(expression.test(facts), bool)
    return None


@settings(max_examples=300, deadline=None)
@given(source=_expressions())
def test_any_condition_is_refused_cleanly_or_evaluates_to_a_bool(source: str) -> None:
    _evaluates_to_a_bool(source)


@settings(max_examples=300, deadline=None)
@given(source=_conditions())
def test_well_typed_conditions_are_accepted_and_evaluate_to_a_bool(source: str) -> None:
    # Only a constant zero divisor, or a channel compared with a country code, is refused.
    refused = _evaluates_to_a_bool(source)
    assert refused is None or refused == "division by zero" or "channel is never" in refused
