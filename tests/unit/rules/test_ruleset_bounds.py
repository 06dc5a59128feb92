"""The limits of a rule set (docs/rules-as-data.md#limits): each one accepts a value at the
bound and refuses one past it with the bound named; rule sets at every bound judge worst-case
valid records without raising; and the bounded arithmetic of conditions is exact where the
docstring of consumer.rules.expressions says, rounds where it says, and fails only with
EvaluationError."""

from __future__ import annotations

import json
from decimal import Decimal, Inexact
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import structs

from bench.expressions import (
    BALANCE,
    TINY,
    TOP_AMOUNT,
    full_history,
    worst_record,
    worst_ruleset_text,
)
from consumer.records import Transaction
from consumer.rules import EMPTY_HISTORY
from consumer.rules.config import PARAMETER_FIELDS, PARAMETER_KINDS
from consumer.rules.exact import EXACT
from consumer.rules.expressions import (
    ARITHMETIC,
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_LIST_ITEMS,
    MAX_NODES,
    PRECISION,
    EvaluationError,
    ExpressionError,
    compile_expression,
)
from consumer.rules.features import Facts, FeaturePlan
from consumer.rules.ruleset import RuleSet, RuleSetError, judge_with_ruleset
from consumer.rules.ruleset_load import (
    MAX_BYTES,
    MAX_NESTING,
    MAX_RULES,
    MAX_TOTAL_NODES,
    MAX_VALUES,
    load_ruleset,
    ruleset_schema,
)
from consumer.settings.rules import RulesConfigError, load_rules_config

LIMITS = "docs/rules-as-data.md#limits"
E18 = Decimal("1e-18")


def loads(text: str, fmt: Any = "yaml") -> RuleSet:
    return load_ruleset(text.encode(), fmt, name="r.yaml")


def refused(text: str, fmt: Any = "yaml") -> str:
    with pytest.raises(RuleSetError) as caught:
        loads(text, fmt)
    return str(caught.value)


def with_rule(when: str, count: int = 1) -> str:
    rules = "".join(
        f"  - id: r{i}\n    description: d\n    severity: high\n    when: {json.dumps(when)}\n"
        for i in range(count)
    )
    return f"version: v1\ncustom:\n{rules}"


# --- parameters -------------------------------------------------------------------------------


def _edges(kind_name: str) -> tuple[list[Decimal], list[Decimal]]:
    """(values at the bounds, values just past them)."""
    kind = PARAMETER_KINDS[kind_name]
    step = Decimal(1) if kind.whole else E18
    add, subtract = EXACT.add, EXACT.subtract
    inside = [kind.high, add(kind.low, step) if kind.low_open else kind.low]
    outside = [add(kind.high, step), kind.low if kind.low_open else subtract(kind.low, step)]
    return inside, outside


# How each kind's upper bound is written in its messages.
HIGH_TEXT = {
    "amount": "1e15",
    "ratio": "1e6",
    "window": "2592000",
    "count": "100000",
    "distance": "20000",
    "speed": "100000",
}


PARAMETERS = [
    (rule, param, kind)
    for rule, params in PARAMETER_FIELDS.items()
    for param, (_, kind) in params.items()
]


def _read(config: Any, rule: str, param: str) -> Decimal:
    value = getattr(config, PARAMETER_FIELDS[rule][param][0])
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _expected(kind: str, value: Decimal) -> Decimal:
    """What the configuration holds: travel parameters are floats."""
    return Decimal(repr(float(value))) if PARAMETER_KINDS[kind].result == "float" else value


@pytest.mark.parametrize(("rule", "param", "kind"), PARAMETERS)
def test_each_parameter_takes_its_bounds_and_refuses_past_them(
    rule: str, param: str, kind: str
) -> None:
    inside, outside = _edges(kind)
    whole = PARAMETER_KINDS[kind].whole
    variable = f"FRAUD_RULE_{rule}_{param}".upper()
    for value in inside:
        text = f"{value:f}" if whole else f'"{value:f}"'
        config = loads(f"version: v1\nrules:\n  {rule}:\n    {param}: {text}\n").config
        assert _read(config, rule, param) == _expected(kind, value)
        assert load_rules_config({variable: f"{value:f}"}) == config
    for value in outside:
        for text in [f"{value:f}"] if whole else [f'"{value:f}"', f"{value:f}"]:
            message = refused(f"version: v1\nrules:\n  {rule}:\n    {param}: {text}\n")
            assert f"r.yaml:4: rules.{rule}.{param}: " in message, message
            bound = f"<= {HIGH_TEXT[kind]}"
            assert bound in message or "than the m" in message or "or equal to" in message, message
        with pytest.raises(RulesConfigError, match=variable):
            load_rules_config({variable: f"{value:f}"})


@pytest.mark.parametrize(("rule", "param", "kind"), PARAMETERS)
def test_at_most_18_decimal_places(rule: str, param: str, kind: str) -> None:
    if PARAMETER_KINDS[kind].whole:
        return
    high = PARAMETER_KINDS[kind].high
    fine = EXACT.subtract(high, E18)
    config = loads(f'version: v1\nrules:\n  {rule}:\n    {param}: "{fine:f}"\n').config
    assert _read(config, rule, param) == _expected(kind, fine)
    past = EXACT.subtract(high, E18 / 10)
    for text in (f'"{past:f}"', f"{past:f}", f"{high:f}.{'0' * 19}"):
        message = refused(f"version: v1\nrules:\n  {rule}:\n    {param}: {text}\n")
        assert "with at most 18 decimal places" in message, message


def test_the_toml_file_has_the_same_bounds(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[rules.velocity]\nwindow_s = "2592000"\nmax_count = 100000\n')
    config = load_rules_config({"FRAUD_RULES_FILE": str(rules)})
    assert (config.velocity_window_s, config.velocity_max_count) == (Decimal(2592000), 100000)
    for body, named in [
        ('[rules.velocity]\nwindow_s = "2592001"\n', "rules.velocity.window_s: must be seconds"),
        ("[rules.velocity]\nwindow_s = 1e-300000000\n", "rules.velocity.window_s"),
        ("[rules.velocity]\nmax_count = 100001\n", "rules.velocity.max_count: must be a whole"),
        ("[rules.velocity]\nmax_count = " + "9" * 5000 + "\n", "an integer with too many digits"),
        ("[rules.velocity]\nmax_count = 2026-02-30\n", "Invalid date"),
        ("[rules.velocity]\nmax_count = 2026-02-28\n", "rules.velocity.max_count: must be"),
        ("[rules.high_amount]\nthreshold = inf\n", "rules.high_amount.threshold: must be"),
        ("[rules.high_amount]\nthreshold = nan\n", "rules.high_amount.threshold: must be"),
        ("[rules.high_amount]\nthreshold = [1, 2]\n", "rules.high_amount.threshold: must be"),
        ("[rules.high_amount]\nthreshold = {a = 1}\n", "rules.high_amount.threshold: must be"),
        ('[rules.high_amount]\nthreshold = "1.0000000000000000001"\n', "decimal places"),
        ("[rules.impossible_travel]\nmax_speed_kmh = 29\n", "km/h >= 30"),
        ("[rules.high_amount]\nseverity = 5\n", "rules.high_amount.severity: must be one of"),
        ("[rules.high_amount]\nenabled = 5\n", "rules.high_amount.enabled: must be true or"),
        ("rules = 5\n", "rules must be a table"),
        ("[rules]\nvelocity = 5\n", "[rules.velocity] must be a table"),
        ("a = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ]:
        rules.write_text(body)
        with pytest.raises(RulesConfigError) as caught:
            load_rules_config({"FRAUD_RULES_FILE": str(rules)})
        assert named in str(caught.value), (body[:60], str(caught.value))
    rules.write_bytes(b"[rules.velocity]\nmax_count = 3 # \xff\n")
    with pytest.raises(RulesConfigError, match="not UTF-8"):
        load_rules_config({"FRAUD_RULES_FILE": str(rules)})
    rules.write_bytes(b"#" * (1 << 20) + b"\n")
    with pytest.raises(RulesConfigError, match="larger than"):
        load_rules_config({"FRAUD_RULES_FILE": str(rules)})
    with pytest.raises(RulesConfigError, match="FRAUD_RULES_FILE: cannot read"):
        load_rules_config({"FRAUD_RULES_FILE": str(tmp_path)})  # a directory


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "",
        " ",
        "1e999999999",
        "-5",
        "0x10",
        "\uff11\uff12",
        "\u0663",
        "1_000",
        "9" * 5000,
        "NaN",
    ],
)
def test_a_bad_variable_is_refused_naming_it(value: str) -> None:
    for key in ("FRAUD_RULE_VELOCITY_MAX_COUNT", "FRAUD_RULE_HIGH_AMOUNT_THRESHOLD"):
        with pytest.raises(RulesConfigError, match=key):
            load_rules_config({key: value})


def test_the_schema_states_the_same_bounds() -> None:
    schema = ruleset_schema()
    defs = schema["$defs"]
    for name, kind in PARAMETER_KINDS.items():
        definition = defs[name]
        number = definition if kind.whole else definition["anyOf"][1]
        assert number["maximum"] == kind.high, name
        low_key = "exclusiveMinimum" if kind.low_open else "minimum"
        assert number[low_key] == kind.low, name
        assert isinstance(number["maximum"], int), "an int: compared exactly with Decimals"
    rules = schema["properties"]["rules"]["properties"]
    for rule, params in PARAMETER_FIELDS.items():
        for param, (_, kind) in params.items():
            assert rules[rule]["properties"][param] == {"$ref": f"#/$defs/{kind}"}
    assert schema["properties"]["custom"]["maxItems"] == MAX_RULES
    assert defs["custom_rule"]["properties"]["when"]["maxLength"] == MAX_LENGTH
    # The limits only the loader checks are stated in the descriptions people read.
    custom = schema["properties"]["custom"]["description"]
    assert f"at most {MAX_RULES}," in custom
    assert f"at most {MAX_TOTAL_NODES} expression nodes in all" in custom
    when = defs["custom_rule"]["properties"]["when"]["description"]
    assert f"{MAX_NODES} expression nodes, {MAX_LIST_ITEMS} items in a list" in when


# --- conditions -------------------------------------------------------------------------------


def expression_refusal(source: str) -> str:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source)
    return caught.value.reason


@pytest.mark.parametrize(
    ("inside", "outside"),
    [
        ("1000000000000000", "1000000000000001"),
        ("1e15", "1.000000000000000001e15"),
        ("999999999999999.999999999999999999", "1000000000000000.000000000000000001"),
        ("0.000000000000000001", "0.0000000000000000001"),
        ("1e-18", "1e-19"),
        ("1.000000000000000000", "1.0000000000000000000"),  # places as written
    ],
)
def test_literals_are_within_1e15_with_at_most_18_places(inside: str, outside: str) -> None:
    for sign in ("", "-"):
        compile_expression(f"amount > {sign}{inside}")
        reason = expression_refusal(f"amount > {sign}{outside}")
        assert reason.startswith("a number in a condition is at most 1e15 in size"), reason
        assert LIMITS in reason


def test_the_condition_limits() -> None:
    compile_expression("amount > " + " " * (MAX_LENGTH - 10) + "1")
    assert f"longer than {MAX_LENGTH} characters" in expression_refusal(
        "amount > " + " " * (MAX_LENGTH - 9) + "1"
    )
    # `amount > 0 and ... ` : 1 + 3 per comparison; one more name and literal per `+`.
    at_limit = " and ".join(["amount > 0"] * 33)  # 1 + 99 = 100 nodes
    assert compile_expression(at_limit).nodes == MAX_NODES
    reason = expression_refusal(at_limit + " + 1")
    assert reason == (
        f"the condition has {MAX_NODES + 2} expression nodes; the limit is {MAX_NODES} ({LIMITS})"
    )
    members = ", ".join(str(i) for i in range(MAX_LIST_ITEMS))
    assert compile_expression(f"hour_of_day in [{members}]").nodes == 3
    reason = expression_refusal(f"hour_of_day in [{members}, 1]")
    assert (
        reason
        == f"the list has {MAX_LIST_ITEMS + 1} items; the limit is {MAX_LIST_ITEMS} ({LIMITS})"
    )
    deep = "not " * (MAX_DEPTH - 1) + "new_device"
    compile_expression(deep)
    assert f"nested more than {MAX_DEPTH} levels" in expression_refusal("not " + deep)


# --- the rule set -----------------------------------------------------------------------------


def test_the_rule_set_limits() -> None:
    assert len(loads(with_rule("amount > 0", MAX_RULES)).custom) == MAX_RULES
    message = refused(with_rule("amount > 0", MAX_RULES + 1))
    assert (
        f"r.yaml:3: custom: {MAX_RULES + 1} items; the limit is {MAX_RULES} ({LIMITS})" in message
    )
    at_total = " and ".join(["amount > 0"] * 33)  # 100 nodes a rule
    total = MAX_TOTAL_NODES // MAX_NODES
    assert sum(r.when.nodes for r in loads(with_rule(at_total, total)).custom) == MAX_TOTAL_NODES
    message = refused(
        with_rule(at_total, total)
        + with_rule("new_device", 1).split("custom:\n")[1].replace("r0", "last")
    )
    expected = (
        f"r.yaml:3: custom: the custom rules have {MAX_TOTAL_NODES + 1} expression nodes in all;"
        f" the limit is {MAX_TOTAL_NODES} ({LIMITS})"
    )
    assert expected in message, message


def test_the_file_limits() -> None:
    body = b'version: "v1"\n'
    padded = body + b"#" * (MAX_BYTES - len(body) - 1) + b"\n"
    assert len(padded) == MAX_BYTES
    assert load_ruleset(padded, "yaml").version == "v1"
    with pytest.raises(RuleSetError, match=f"larger than {MAX_BYTES} bytes"):
        load_ruleset(padded + b"\n", "yaml")
    nested = "[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1)  # the root mapping is level 1
    assert "nested deeper" not in refused(f"version: v1\ndescription: {nested}\n")
    assert "nested deeper than 8 levels" in refused(f"version: v1\ndescription: [{nested}]\n")
    # The root, `version`, "v1", `description` and the list: 5 values; then the items.
    items = ", ".join(["0"] * (MAX_VALUES - 5))
    assert "more than" not in refused(f"version: v1\ndescription: [{items}]\n")
    assert f"more than {MAX_VALUES} values" in refused(f"version: v1\ndescription: [{items}, 0]\n")
    as_json = f'{{"version": "v1", "description": [{items}, 0]}}'
    assert f"more than {MAX_VALUES} values" in refused(as_json, "json")


# --- the worst accepted rule sets judge worst-case records ------------------------------------

RECORDS = {
    "amount 1e9, balance -1e15": worst_record(TOP_AMOUNT, "-" + BALANCE),
    "amount 1e-18, balance 1e15": worst_record(TINY, BALANCE),
    "amount 1e9 as written, balance 0": worst_record("1000000000", "0"),
}


@pytest.mark.parametrize("kind", ["names", "arithmetic", "lists", "small"])
@pytest.mark.parametrize("order", ["ascending", "late", "shuffled"])
def test_the_worst_rule_sets_judge_worst_records_without_raising(kind: str, order: str) -> None:
    ruleset = loads(worst_ruleset_text(kind))
    assert ruleset.config.velocity_window_s == PARAMETER_KINDS["window"].high
    for name, txn in RECORDS.items():
        history = full_history(txn, 200, order)
        decision = judge_with_ruleset(txn, history, ruleset)
        assert not getattr(decision, "rule_errors", ()), (name, decision)
        assert len(decision.custom) + len(decision.shadow) == len(ruleset.custom), name
        assert decision.contract.flagged


def test_a_rule_set_at_every_limit_at_once_loads_and_judges() -> None:
    """MAX_RULES rules, MAX_TOTAL_NODES nodes, a list at MAX_LIST_ITEMS, a literal at each
    bound, the contract parameters at theirs."""
    members = ", ".join(str(i) for i in range(MAX_LIST_ITEMS))
    heavy = [
        f"account_age_s not in [{members}]",
        "amount * account_balance / 0.000000000000000001 != 0.5",
        "amount_sum_24h - -999999999999999.999999999999999999 > 0.000000000000000001",
    ]
    conditions = heavy + ["amount > 0"] * (MAX_RULES - len(heavy))
    text = worst_ruleset_text("small").split("custom:")[0] + "custom:\n"
    for index, when in enumerate(conditions):
        text += f"  - id: r{index}\n    description: d\n    severity: low\n"
        text += f"    when: {json.dumps(when)}\n"
    ruleset = loads(text)
    assert len(ruleset.custom) == MAX_RULES
    for txn in RECORDS.values():
        decision = judge_with_ruleset(txn, full_history(txn, 100, "late"), ruleset)
        assert not getattr(decision, "rule_errors", ())
        assert len(decision.custom) == MAX_RULES


# --- the arithmetic ---------------------------------------------------------------------------

# A number within the record and literal bounds: a multiple of 1e-18 within +-1e15.
bounded = st.integers(-(10**33), 10**33).map(lambda n: Decimal(n).scaleb(-18, EXACT))


@settings(max_examples=500)
@given(bounded, bounded, bounded, bounded)
def test_sums_and_products_of_two_bounded_numbers_are_exact(
    a: Decimal, b: Decimal, c: Decimal, d: Decimal
) -> None:
    exact = Fraction(a) * Fraction(b) + Fraction(c) * Fraction(d) - Fraction(a) - Fraction(d)
    context = ARITHMETIC.copy()
    context.clear_flags()
    product = context.subtract(
        context.subtract(context.add(context.multiply(a, b), context.multiply(c, d)), a), d
    )
    assert Fraction(product) == exact
    assert not context.flags[Inexact]
    assert Fraction(context.add(a, b)) == Fraction(a) + Fraction(b)


def _with(txn: Transaction, **fields: Any) -> Transaction:
    return structs.replace(txn, **fields)


def holds(source: str, txn: Transaction) -> bool:
    expression = compile_expression(source)
    facts = Facts(txn, EMPTY_HISTORY, FeaturePlan.for_names(frozenset(expression.names)))
    result = expression.test(facts)
    assert isinstance(result, bool)
    return result


def test_conditions_compute_in_the_bounded_context() -> None:
    base = worst_record()
    tiny = _with(
        base,
        amount=Decimal("1.000000000000000001"),
        account_balance=Decimal("1.000000000000000001"),
    )
    # 1.000000000000000002000000000000000001: 37 digits, exact here (34 would round it away).
    assert holds("amount * account_balance > 1.000000000000000002", tiny)
    assert holds(
        "amount + account_balance - 1e15 == 999999999.999999999999999998",
        _with(base, amount=Decimal(TOP_AMOUNT), account_balance=Decimal(BALANCE)),
    )
    # A product of three long numbers needs 103 digits: rounded to 72, never an error.
    three = _with(base, amount=Decimal(TOP_AMOUNT), account_balance=Decimal(BALANCE))
    assert holds("amount * account_balance * account_balance > 0", three)
    assert PRECISION == 72


def test_long_operands_are_rounded_before_arithmetic_and_compared_exactly() -> None:
    base = worst_record()
    created = EXACT.subtract(base.event_time, Decimal("86400." + "7" * 100))  # 105 digits
    long_age = _with(base, account_created_at=created)
    assert holds("account_age_s > 86400.777777777777777777", long_age)  # exact comparison
    assert holds("account_age_s + 0 != account_age_s", long_age)  # the sum is rounded to 72
    short_age = _with(base, account_created_at=EXACT.subtract(base.event_time, Decimal("86400.5")))
    assert holds("account_age_s + 0 == account_age_s", short_age)
    zeros = _with(base, amount=Decimal("5." + "0" * 10_000))  # trailing zeros as written
    assert holds("amount * amount * amount == 125", zeros)


def test_evaluation_error_is_the_one_exception_a_condition_raises() -> None:
    base = worst_record()
    # An age of 1e-999990 s: only a record with a million-digit fraction could give it.
    extreme = _with(base, account_created_at=EXACT.subtract(base.event_time, Decimal("1e-999990")))
    expression = compile_expression("amount / account_age_s / account_age_s > 1")
    facts = Facts(extreme, EMPTY_HISTORY, FeaturePlan.for_names(frozenset(expression.names)))
    with pytest.raises(EvaluationError, match="Overflow"):
        expression.test(facts)
    assert issubclass(EvaluationError, ArithmeticError)
    # The same rule in a rule set: counted as not fired, the others still decide.
    ruleset = loads(
        with_rule("amount / account_age_s / account_age_s > 1")
        + "  - id: other\n    description: d\n    severity: low\n    when: amount > 0\n"
    )
    decision = judge_with_ruleset(extreme, EMPTY_HISTORY, ruleset)
    assert [reason.rule for reason in decision.custom] == ["other"]
    # Without arithmetic there is nothing to guard: the compiled closure itself.
    plain = compile_expression("amount > 5")
    assert plain.test.__name__ != "test"
