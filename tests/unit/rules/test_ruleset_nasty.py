"""Whatever a rule-set file holds, loading it gives a RuleSet or a RuleSetError naming the file
(and the line and column where the text has them), within a second, never another exception:
a hot reload that raised anything else would stop the processor on every worker.

- a corpus of nasty files (tests/unit/rules/data/nasty_rulesets/), every one refused; the spot and
  the reason are checked for each file listed in SPOTS, and any file dropped into the folder is
  checked for the rest;
- generated files too large for the repository;
- hypothesis: arbitrary bytes, valid files with nasty fragments spliced in, and documents
  built from valid structure and nasty values, rendered as YAML and as JSON; every accepted
  rule set is then judged on worst-case records without an exception;
- `fraudstream backtest` refuses each corpus file with exit code 2 and the message, no traceback.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import consumer.rules.ruleset_load as ruleset_load
from bench.expressions import full_history, worst_record
from consumer.cli import main
from consumer.rules.features import FEATURES, Facts
from consumer.rules.ruleset import RuleSet, RuleSetError, judge_with_ruleset
from consumer.rules.ruleset_load import (
    MAX_BYTES,
    MAX_VALUES,
    load_ruleset,
    ruleset_from_document,
)

ROOT = Path(__file__).resolve().parents[3]
CORPUS = Path(__file__).resolve().parent / "data" / "nasty_rulesets"
FILES = sorted(path for path in CORPUS.iterdir() if path.suffix in (".yaml", ".yml", ".json"))
EXAMPLE = (ROOT / "docs" / "rules.example.yaml").read_text()

# A second of CPU time per load, whatever the file: what a processor can afford at a reload.
BUDGET_S = 1.0

# file -> (where the message says the problem is, a fragment of the reason). The spot is
# "L:C" (line and column), "L" (line: a key path follows) or "" (the file as a whole).
SPOTS: dict[str, tuple[str, str]] = {
    "date_unquoted.yaml": ("1:10", "'2026-02-30' reads as a date in YAML"),
    "date_valid_unquoted.yaml": ("1:10", "reads as a date in YAML"),
    "datetime_unquoted.yaml": ("2:14", "reads as a date in YAML"),
    "timestamp_tag.yaml": ("1:10", "the tag !!timestamp is not allowed"),
    "int_tag_bad_text.yaml": ("4:16", "the tag !!int is not allowed"),
    "float_tag_bad_text.yaml": ("4:16", "the tag !!float is not allowed"),
    "bool_tag_bad_text.yaml": ("4:14", "the tag !!bool is not allowed"),
    "int_5000_digits.yaml": ("4:16", "a number of 5000 characters"),
    "decimal_5000_digits.yaml": ("4:16", "a number of 5002 characters"),
    "sexagesimal_int.yaml": ("4:15", "'1:30:00' reads as a base-60 number"),
    "sexagesimal_float.yaml": ("4:16", "'1:30.5' reads as a base-60 number"),
    "sexagesimal_description.yaml": ("2:14", "'10:30' reads as a base-60 number"),
    "octal_leading_zero.yaml": ("4:16", "'017' has a leading zero (YAML 1.1 reads 0100 as"),
    "octal_0o.yaml": ("4:16", "'0o17' has a leading zero"),
    "hex.yaml": ("4:16", "'0x1F' is a hexadecimal number"),
    "binary_number.yaml": ("4:16", "'0b101' is a binary number"),
    "underscores.yaml": ("4:16", "'1_000' has _ separators"),
    "inf.yaml": ("4:16", "'.inf' is not a finite number"),
    "negative_inf.yaml": ("4:16", "'-.Inf' is not a finite number"),
    "nan.yaml": ("4:16", "'.nan' is not a finite number"),
    "deep_flow_2000.yaml": ("2:", "not valid YAML"),
    "deep_flow_200.yaml": ("2:21", "nested deeper than 8 levels"),
    "deep_block_200.yaml": ("10:17", "nested deeper than 8 levels"),
    "deep_mapping_50.yaml": ("10:17", "nested deeper than 8 levels"),
    "fold_overflow.yaml": ("6:20", "a number in a condition is at most 1e15 in size"),
    "exponent_huge_add.yaml": ("6:20", "a number in a condition is at most 1e15 in size"),
    "exponent_huge_mul_shadow.yaml": ("7:20", "a number in a condition is at most 1e15"),
    "exponent_tiny_add.yaml": ("6:20", "with at most 18 decimal places"),
    "exponent_beyond_decimal.yaml": ("6:20", "a number in a condition is at most 1e15"),
    "literal_too_large.yaml": ("6:20", "a number in a condition is at most 1e15"),
    "literal_too_many_places.yaml": ("6:20", "with at most 18 decimal places"),
    "literal_int_long.yaml": ("6:20", "a number in a condition is at most 1e15"),
    "division_by_zero_literal.yaml": ("6:11", "division by zero"),
    "when_nul_escape.yaml": ("6", "column 11 of the condition: a NUL character"),
    "when_bom_inside.yaml": ("6:17", "invalid non-printable character U+FEFF"),
    "when_deep_parens.yaml": ("6:", "too many nested parentheses"),
    "when_power.yaml": ("6:11", "operator ** is not allowed"),
    "when_call.yaml": ("6:11", "function calls are not allowed"),
    "window_tiny.yaml": ("4", "rules.velocity.window_s: 1E-300000000 is not a window in seconds"),
    "window_tiny_string.yaml": ("4", "'1e-300000000' is not a window in seconds >= 1"),
    "window_zero_point_five.yaml": ("4", "window_s: must be seconds >= 1 and <= 2592000"),
    "window_31_days.yaml": ("4", "2678400 is not a window in seconds"),
    "count_huge.yaml": ("4", "100001 is greater than the maximum of 100000"),
    "threshold_too_large.yaml": ("4", "is not an amount > 0 and <= 1e15"),
    "threshold_19_places.yaml": ("4", "is not an amount > 0 and <= 1e15 with at most 18 decimal"),
    "threshold_exponent_number.yaml": ("4", "1E+16 is not an amount > 0 and <= 1e15"),
    "ratio_huge.yaml": ("4", "1E+300 is not a ratio > 0 and <= 1e6"),
    "speed_too_slow.yaml": ("4", "is not a speed in km/h >= 30"),
    "distance_too_far.yaml": ("4", "40000 is not a distance in km > 0 and <= 20000"),
    "model_threshold_tiny.yaml": ("4", "threshold: more than 18 decimal places"),
    "model_threshold_huge.yaml": ("4", "1E+300 is greater than the maximum of 100"),
    "anchor_only.yaml": ("2:14", "anchors (&name) are not allowed"),
    "alias_billion_laughs.yaml": ("2:4", "anchors (&name) are not allowed"),
    "merge_key.yaml": ("4:5", "merge keys (<<) are not allowed"),
    "python_object_tag.yaml": ("2:14", "the tag !!python/object/apply:os.system is not allowed"),
    "python_name_tag.yaml": ("2:14", "the tag !!python/name:os.system is not allowed"),
    "binary_tag.yaml": ("2:14", "the tag !!binary is not allowed"),
    "set_tag.yaml": ("2:14", "the tag !!set is not allowed"),
    "omap_tag.yaml": ("2:8", "the tag !!omap is not allowed"),
    "local_tag.yaml": ("2:14", "the tag !custom is not allowed"),
    "tag_directive.yaml": ("3:10", "the tag tag:example.com,2000:v is not allowed"),
    "yaml_directive_2.yaml": ("1:1", "found incompatible YAML document"),
    "two_documents.yaml": ("2:1", "a rule set is one YAML document"),
    "duplicate_key.yaml": ("4:3", "duplicate key 'velocity'"),
    "key_int.yaml": ("3:3", "a key must be text; this one is a number"),
    "key_null.yaml": ("2:1", "a key must be text; this one is null"),
    "key_bool.yaml": ("4:5", "a key must be text; this one is true or false"),
    "key_complex.yaml": ("2:3", "a key must be text; this one is a list"),
    "key_mapping.yaml": ("2:3", "a key must be text; this one is a mapping"),
    "nul_in_value.yaml": ("2:15", "#x0000 is not allowed"),
    "control_char.yaml": ("2:15", "#x0007 is not allowed"),
    "crlf_with_error.yaml": ("4:16", "'0x10' is a hexadecimal number"),
    "cr_only_with_error.yaml": ("4", "max_count: 0 is less than the minimum of 1"),
    "bom_then_date.yaml": ("1:10", "'2026-01-01' reads as a date"),
    "bom_mid_key.yaml": ("2:2", "not valid YAML"),
    "lone_surrogate_escape.yaml": ("2:17", "found invalid Unicode character escape code"),
    "huge_string_10k.yaml": ("2", "description: 10000 characters; it must have at most 2000"),
    "huge_key.yaml": ("2:", "not valid YAML"),
    "unicode_rule_id.yaml": ("3", "custom[0].id: 'règle' does not match"),
    "unicode_version.yaml": ("1", "version: 'v1\\u2028' does not match"),
    "not_a_mapping.yaml": ("", "a rule set is a mapping"),
    "scalar.yaml": ("", "a rule set is a mapping"),
    "empty.yaml": ("", "a rule set is a mapping"),
    "only_comment.yaml": ("", "a rule set is a mapping"),
    "list_of_20k.yaml": ("2:10005", "more than 5000 values"),
    "values_6000.yaml": ("2500:10", "more than 5000 values"),
    "custom_not_list.yaml": ("2", "custom: {'id': 'r1'} is not of type 'array'"),
    "when_number.yaml": ("6", "custom[0].when: 5 is not of type 'string'"),
    "when_list.yaml": ("6", "is not of type 'string'"),
    "not_utf8.yaml": ("2", "not UTF-8 (byte 25)"),
    "utf16_bom.yaml": ("1", "not UTF-8 (byte 0)"),
    "png_header.yaml": ("1", "not UTF-8 (byte 0)"),
    "gzip.json": ("1", "not UTF-8 (byte 1)"),
    "nan.json": ("1:58", "not valid JSON: NaN is not a number"),
    "infinity.json": ("1:58", "not valid JSON: -Infinity is not a number"),
    "big_int.json": ("1", "rules.velocity.max_count: a number of 5000 characters"),
    "exponent_beyond_decimal.json": ("1", "window_s: a number of 25 characters"),
    "exponent_tiny.json": ("1", "1E-300000000 is not a window in seconds"),
    "long_fraction.json": ("1", "threshold: a number of 203 characters"),
    "deep.json": ("1:41", "nested deeper than 8 levels"),
    "deep_9.json": ("1:41", "nested deeper than 8 levels"),
    "duplicate_key.json": ("1:19", "not valid JSON: duplicate key 'version'"),
    "lone_surrogate.json": ("1", "description: holds a lone surrogate (\\udc00)"),
    "lone_surrogate_when.json": ("1", "custom[0].when: holds a lone surrogate (\\ud800)"),
    "lone_surrogate_key.json": ("1", "a key holds a lone surrogate (\\ud800)"),
    "nul_when.json": ("1", "column 11 of the condition: a NUL character is not allowed"),
    "top_level_list.json": ("", "a rule set is a mapping"),
    "top_level_null.json": ("", "a rule set is a mapping"),
    "trailing_garbage.json": ("1:19", "not valid JSON: Extra data"),
    "syntax_error.json": ("2:12", "not valid JSON: Expecting property name"),
    "huge_exponent_when.json": ("1:115", "a number in a condition is at most 1e15"),
}


@contextmanager
def within_budget() -> Iterator[None]:
    """CPU time, not wall time: the machine is shared, and waiting is not what is bounded."""
    started = time.process_time()
    yield
    spent = time.process_time() - started
    assert spent < BUDGET_S, f"{spent:.2f} s of CPU"


def refusal(source: Path | bytes, fmt: Any = None, name: str | None = None) -> str:
    with within_budget(), pytest.raises(RuleSetError) as caught:
        load_ruleset(source, fmt, name=name)
    message = str(caught.value)
    assert "internal error" not in message, message
    return message


# --- the corpus -------------------------------------------------------------------------------


def test_the_corpus_covers_every_listed_file() -> None:
    assert set(SPOTS) <= {path.name for path in FILES}
    assert len(FILES) >= 100


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_every_nasty_file_is_refused_naming_the_file(path: Path) -> None:
    message = refusal(path)
    header, *problems = message.split("\n- ")
    assert header.startswith(f"{path}: refused, "), message
    assert problems, message
    for problem in problems:
        assert problem.startswith(str(path)), message
    spot, fragment = SPOTS.get(path.name, (None, ""))
    if spot is None:  # a file dropped into the folder: the generic checks only
        return
    where = f"{path}:{spot}" if spot else f"{path}: "
    assert problems[0].startswith(where), (where, message)
    if spot and not spot.endswith(":"):  # the spot ends there, at a column or a key path
        assert problems[0][len(where)] in ": ", message
    assert fragment in message, message


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_the_pure_python_parser_refuses_them_too(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PyYAML without libyaml takes the same path (tags, anchors, nesting, numbers refused)."""
    monkeypatch.setattr(ruleset_load, "use_libyaml", False)
    message = refusal(path)
    assert message.startswith(f"{path}: refused, "), message


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_backtest_refuses_it_with_exit_code_2_and_no_traceback(
    path: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(
        ["backtest", "--no-progress", "--rules", str(path), "--input", str(tmp_path / "x.jsonl")]
    )
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith(f"fraudstream backtest: {path}: refused, "), captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_backtest_refuses_a_nasty_baseline_too(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = CORPUS / "alias_billion_laughs.yaml"
    args = ["backtest", "--no-progress", "--rules", str(ROOT / "docs" / "rules.example.yaml")]
    code = main([*args, "--baseline", str(bad), "--input", str(tmp_path / "x.jsonl")])
    assert code == 2
    assert "anchors (&name) are not allowed" in capsys.readouterr().err


# --- too large for the repository -------------------------------------------------------------


def test_a_million_item_list_is_refused_by_size() -> None:
    data = b"version: v1\ndescription: [" + b"0," * 1_000_000 + b"0]\n"
    assert "larger than 524288 bytes" in refusal(data, "yaml", "big.yaml")
    json_data = b'{"version": "v1", "description": [' + b"0," * 1_000_000 + b"0]}"
    assert "larger than 524288 bytes" in refusal(json_data, "json", "big.json")


def test_the_longest_list_within_the_size_is_refused_by_its_values() -> None:
    count = (MAX_BYTES - 100) // 2
    data = b"version: v1\ndescription: [" + b"0," * count + b"0]\n"
    assert len(data) <= MAX_BYTES
    message = refusal(data, "yaml", "long.yaml")
    # The root mapping, two keys, "v1" and the list are 5 values: item 4,996 is one too many.
    column = 15 + 2 * (MAX_VALUES - 5)
    assert f"long.yaml:2:{column}: more than {MAX_VALUES} values" in message
    json_data = b'{"version": "v1", "description": [' + b"0," * count + b"0]}"
    assert f"more than {MAX_VALUES} values" in refusal(json_data, "json", "long.json")


def test_huge_strings_and_comments() -> None:
    size = MAX_BYTES - 200
    long_text = b"version: v1\ndescription: '" + b"x" * size + b"'\n"
    assert f"description: {size} characters" in refusal(long_text, "yaml", "s.yaml")
    plain = b"version: v1\ndescription: " + b"x" * size + b"\n"
    assert f"description: {size} characters" in refusal(plain, "yaml", "p.yaml")
    when = b'{"version": "v1", "custom": [{"id": "r", "description": "d", "severity": "low",'
    when += b' "when": "' + b"a" * size + b'"}]}'
    assert f"{size} characters; it must have at most 2000" in refusal(when, "json", "w.json")
    comment = b"#" * (MAX_BYTES - 20) + b"\nversion: v1\n"  # within the size, all comment
    assert isinstance(load_ruleset(comment, "yaml"), RuleSet)
    assert "larger than" in refusal(b"#" * MAX_BYTES + b"\nversion: v1\n", "yaml", "c.yaml")


def test_deep_nesting_of_every_kind() -> None:
    for opening, closing in (("[", "]"), ("{a: ", "}")):
        for depth in (9, 200, 5000, 100_000):
            text = "version: v1\ndescription: " + opening * depth + closing * depth + "\n"
            data = text.encode()
            if len(data) > MAX_BYTES:
                continue
            message = refusal(data, "yaml", "deep.yaml")
            assert "deep.yaml:2:" in message, message
    for depth in (9, 200, 5000, 100_000):
        data = ('{"version": "v1", "description": ' + "[" * depth + "]" * depth + "}").encode()
        message = refusal(data, "json", "deep.json")
        assert "deep.json:1:41: nested deeper than 8 levels" in message, message
    block = "version: v1\ndescription:\n" + "".join(" " * i + "- \n" for i in range(1, 900))
    assert "nested deeper than 8 levels" in refusal(block.encode(), "yaml", "block.yaml")


def test_documents_built_in_code_are_refused_the_same_way() -> None:
    loop: list[Any] = []
    loop.append(loop)  # a cycle: refused by its depth, not followed forever
    deep: Any = "x"
    for _ in range(100_000):
        deep = [deep]
    cases: list[tuple[Any, str]] = [
        ({"version": "v1", "description": loop}, "nested deeper than 8 levels"),
        ({"version": "v1", "description": deep}, "nested deeper than 8 levels"),
        ({"version": "v1", 5: 1}, "a key must be text, not 5"),
        ({"version": "v1", "rules": {"high_amount": {"threshold": float("inf")}}}, "finite"),
        ({"version": "v1", "rules": {"high_amount": {"threshold": Decimal("NaN")}}}, "finite"),
        ({"version": "v1", "description": b"bytes"}, "a value of type bytes is not allowed"),
        ({"version": "v1", "description": {1, 2}}, "a value of type set is not allowed"),
        ({"version": "v1", "description": "\ud800"}, "lone surrogate"),
        ({"version": "v1", "rules": {"velocity": {"max_count": 10**5000}}}, "16610 bits"),
        ({"version": "v1", "rules": {"velocity": {"max_count": 10**20}}}, "greater than"),
        ({"version": "v1", "rules": {"velocity": {"window_s": Decimal("1e-999999999")}}}, "window"),
        ([], "a rule set is a mapping"),
        (None, "a rule set is a mapping"),
    ]
    for document, fragment in cases:
        with within_budget(), pytest.raises(RuleSetError, match=None) as caught:
            ruleset_from_document(document, "code")
        assert fragment in str(caught.value), (fragment, str(caught.value))


# --- properties -------------------------------------------------------------------------------

# NASTY_EXAMPLES=5000 for a longer hunt.
PROPERTY = settings(
    max_examples=int(os.environ.get("NASTY_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Values a careless or hostile file may hold where a number, a string or a condition goes.
_NASTY_SCALARS = [
    "1e999999999999999999",
    "1e-300000000",
    "-1e99999999999999999999999",
    "9" * 5000,
    "0." + "1" * 3000,
    "2026-02-30",
    "2026-11-28",
    "2026-11-28 12:30:00",
    "1:30:00",
    "1:30.5",
    "0o17",
    "017",
    "0x1F",
    "0b101",
    "1_000",
    ".inf",
    "-.inf",
    ".nan",
    "!!timestamp nope",
    "!!int 12abc",
    "!!float x",
    "!!bool maybe",
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!!python/object/apply:os.system ['true']",
    "&a x",
    "*a",
    "<<",
    "~",
    "null",
    "yes",
    "NO",
    "[[[[[[[[[[[[]]]]]]]]]]]]",
    "{a: {b: {c: {d: {e: {f: {g: {h: {i: 1}}}}}}}}}",
    '"\\ud800"',
    '"\\0"',
    "'\u2028'",
    "\ufeff",
    "😀",
    "x" * 3000,
    "-0",
    "0",
    "1e15",
    "1000000000000000.000000000000000001",
    "0.000000000000000001",
    "0.0000000000000000001",
]
_NASTY_CONDITIONS = [
    "amount + 1e999999999999 > 5",
    "amount * 1e999999999999999999 > 5",
    "amount + 1e-300000000 > 5",
    "amount > 1e999999999999999999 * 10",
    "account_age_s / 0.000000000000000001 / 0.000000000000000001 > 1",
    "amount * amount * amount * amount > account_balance * account_balance",
    "account_age_s * account_age_s * account_age_s > 1e15",
    "amount / (amount - amount) > 1",
    "amount in [" + ", ".join(str(i) for i in range(400)) + "]",
    " and ".join(f"amount > {i}" for i in range(60)),
    "(" * 100 + "amount > 1" + ")" * 100,
    "not " * 60 + "new_device",
    "__import__('os').system('true')",
    "amount.__class__",
    "amount ** 2 > 1",
    "amount > 1 # comment",
    "amount > 1\0",
    "\uff41mount > 1",  # a fullwidth a: NFKC makes it `amount`
    "merchant_id == '\ud800'",
]
_names = st.sampled_from(sorted(FEATURES))
_literals = st.one_of(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=6, min_value=-(10**9), max_value=10**9
    ),
    st.integers(-(10**16), 10**16),
    st.sampled_from(["1e15", "-1e15", "0.000000000000000001", "1e16", "1e-19", "5.00"]),
).map(str)
_operators = st.sampled_from([" + ", " - ", " * ", " / "])
_comparisons = st.sampled_from([" > ", " >= ", " < ", " <= ", " == ", " != "])


@st.composite
def _conditions(draw: st.DrawFn) -> str:
    """A condition from the language's pieces: often valid, often not (types, limits)."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.sampled_from(_NASTY_CONDITIONS))
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        terms = draw(st.lists(st.one_of(_names, _literals), min_size=1, max_size=5))
        left = terms[0]
        for term in terms[1:]:
            left += draw(_operators) + term
        parts.append(left + draw(_comparisons) + draw(st.one_of(_literals, _names)))
    return " and ".join(parts)


_VALID = {
    "threshold": ["'10000'", "5000", "'0.5'", "1e15", "'0.000000000000000001'"],
    "max_count": ["3", "1", "100000"],
    "window_s": ["'60'", "60", "1", "2592000", "1.5e1"],
    "min_amount": ["'1000'", "1000"],
    "ratio": ["'0.9'", "0.95", "1e6"],
    "min_distance_km": ["100", "'0.5'", "20000"],
    "max_speed_kmh": ["900", "30", "100000"],
    "max_amount": ["'5.00'", "5"],
    "min_count": ["5", "2"],
}
_nasty_values = st.one_of(st.sampled_from(_NASTY_SCALARS), st.text(max_size=30))


@st.composite
def _documents(draw: st.DrawFn) -> dict[str, Any]:
    """The structure of a rule set, each leaf a valid value or (in a dirty document, now and
    then) a nasty one, as raw YAML text. A third of the documents are clean: those load, and
    their rules are judged."""
    dirty = draw(st.integers(0, 2)) > 0

    def pick(valid: st.SearchStrategy[str], nasty: st.SearchStrategy[str]) -> str:
        if dirty and draw(st.integers(0, 3)) == 0:
            return draw(nasty)
        return draw(valid)

    params = {
        "high_amount": ["threshold"],
        "velocity": ["max_count", "window_s"],
        "low_balance_high_amount": ["min_amount", "ratio"],
        "impossible_travel": ["min_distance_km", "max_speed_kmh"],
        "card_testing": ["max_amount", "min_count", "window_s"],
        "model_score": ["threshold"],
    }
    rules: dict[str, dict[str, str]] = {}
    for rule in draw(st.lists(st.sampled_from(sorted(params)), max_size=3, unique=True)):
        chosen = draw(st.lists(st.sampled_from(params[rule]), max_size=3, unique=True))
        valid = {p: ["50", "99.5"] if rule == "model_score" else _VALID[p] for p in chosen}
        rules[rule] = {p: pick(st.sampled_from(valid[p]), _nasty_values) for p in chosen}
    custom = [
        {
            "id": pick(st.just(f"r{index}"), st.sampled_from(["x" * 70, "Bad-Id", "card_testing"])),
            "description": pick(st.sampled_from(["d", "😀 émoji", "x" * 500]), st.just("x" * 600)),
            "severity": pick(st.sampled_from(["high", "low", "medium"]), st.just("urgent")),
            "when": draw(_conditions()) if dirty else draw(st.sampled_from(_VALID_CONDITIONS)),
            "shadow": pick(st.sampled_from(["true", "false"]), st.just("maybe")),
        }
        for index in range(draw(st.integers(0, 4)))
    ]
    version = pick(
        st.sampled_from(['"v1"', "v2", "!!str v3"]),
        st.sampled_from(["2026-11-28", "1:30", '"x y"', "&a v", "!!timestamp 2026-01-01"]),
    )
    return {"version": version, "rules": rules, "custom": custom}


_VALID_CONDITIONS = [
    "amount > 5000 and txn_count_1h >= 3 and channel == 'online'",
    "account_balance is not None and amount > 0.95 * account_balance and hour_of_day < 5",
    "new_device and channel == 'atm' and amount >= 500",
    "amount_sum_24h / txn_count_24h > 1e15 or distinct_countries_1h > 2",
    "account_age_s * account_age_s / 0.000000000000000001 > amount * account_balance",
    "km_from_last >= 100 and speed_kmh_from_last > 900 or latitude * amount > 1e15",
    "amount - amount / 3 * 3 != 0 and account_age_s not in [1, 2, 3]",
    "-amount < -1e15 + account_balance * account_balance * account_balance",
    "destination_country not in ['fr', 'de'] and merchant_id in ['m-1', 'm-2']",
]


def _as_yaml(document: dict[str, Any]) -> str:
    """Rendered by hand, so that a nasty scalar stays the plain text it is (a tag, an anchor, a
    date), and `when` is quoted as JSON (valid YAML double quoting)."""
    lines = [f"version: {document['version']}"]
    if document["rules"]:
        lines.append("rules:")
        for rule, params in document["rules"].items():
            lines.append(f"  {rule}:" if params else f"  {rule}: {{}}")
            lines += [f"    {param}: {value}" for param, value in params.items()]
    if document["custom"]:
        lines.append("custom:")
        for rule in document["custom"]:
            lines += [
                f"  - id: {rule['id']}",
                f"    description: {json.dumps(rule['description'], ensure_ascii=False)}",
                f"    severity: {rule['severity']}",
                f"    shadow: {rule['shadow']}",
                f"    when: {json.dumps(rule['when'], ensure_ascii=False)}",
            ]
    return "\n".join(lines) + "\n"


def _as_json(document: dict[str, Any]) -> str:
    """JSON with the nasty numbers spliced in raw (1e99999..., NaN, huge integers)."""

    def value(text: str) -> str:
        bare = text.removeprefix("!!str ")
        if len(bare) >= 2 and bare[0] == bare[-1] and bare[0] in "'\"":
            return json.dumps(bare[1:-1])  # YAML's quoted text: a JSON string
        try:
            Decimal(bare)
            return bare  # a number, however extreme, as a JSON number
        except ArithmeticError:
            return json.dumps(bare)

    rules = ", ".join(
        f"{json.dumps(rule)}: {{"
        + ", ".join(f"{json.dumps(p)}: {value(v)}" for p, v in params.items())
        + "}"
        for rule, params in document["rules"].items()
    )
    custom = ", ".join(
        json.dumps({**rule, "shadow": rule["shadow"] == "true"}) for rule in document["custom"]
    )
    return (
        f'{{"version": {value(document["version"])}, "rules": {{{rules}}}, "custom": [{custom}]}}'
    )


_RECORDS = [
    worst_record(),
    worst_record("0.000000000000000001", "999999999999999.999999999999999999"),
]
_HISTORIES = [full_history(_RECORDS[0], 50, order) for order in ("ascending", "shuffled")]


def _loads_or_refuses(data: bytes, fmt: Any) -> None:
    try:
        with within_budget():
            ruleset = load_ruleset(data, fmt, name="drawn")
    except RuleSetError as exc:
        assert str(exc).startswith("drawn: refused, ")
        assert "internal error" not in str(exc), str(exc)
        return
    assert isinstance(ruleset, RuleSet)
    # Accepted: every rule judges worst-case records without raising.
    for txn in _RECORDS:
        for history in _HISTORIES:
            facts = Facts(txn, history, ruleset.plan)
            for rule in ruleset.custom:
                assert rule.when.test(facts) in (True, False)
            decision = judge_with_ruleset(txn, history, ruleset)
            assert not getattr(decision, "rule_errors", ())


@PROPERTY
@given(st.binary(max_size=3000), st.sampled_from([None, "yaml", "json"]))
def test_any_bytes_load_or_are_refused(data: bytes, fmt: Any) -> None:
    _loads_or_refuses(data, fmt)


@PROPERTY
@given(st.text(max_size=2000), st.sampled_from(["yaml", "json"]))
def test_any_text_loads_or_is_refused(text: str, fmt: Any) -> None:
    _loads_or_refuses(text.encode("utf-8", "surrogatepass"), fmt)


@PROPERTY
@given(
    st.integers(0, len(EXAMPLE)),
    st.integers(0, 40),
    st.one_of(st.sampled_from(_NASTY_SCALARS), st.sampled_from(_NASTY_CONDITIONS), st.text()),
)
def test_the_example_with_a_nasty_splice_loads_or_is_refused(
    at: int, cut: int, splice: str
) -> None:
    text = EXAMPLE[:at] + splice + EXAMPLE[at + cut :]
    _loads_or_refuses(text.encode("utf-8", "surrogatepass"), "yaml")


@PROPERTY
@given(_documents())
def test_documents_with_nasty_values_load_or_are_refused_as_yaml(document: dict[str, Any]) -> None:
    _loads_or_refuses(_as_yaml(document).encode("utf-8", "surrogatepass"), "yaml")


@PROPERTY
@given(_documents())
def test_documents_with_nasty_values_load_or_are_refused_as_json(document: dict[str, Any]) -> None:
    _loads_or_refuses(_as_json(document).encode("utf-8", "surrogatepass"), "json")


@PROPERTY
@given(st.lists(_conditions(), min_size=1, max_size=6))
def test_conditions_alone_compile_or_are_refused_and_never_raise_when_judged(
    conditions: list[str],
) -> None:
    document = {
        "version": "v1",
        "custom": [
            {"id": f"r{i}", "description": "d", "severity": "high", "when": when}
            for i, when in enumerate(conditions)
        ],
    }
    _loads_or_refuses(json.dumps(document).encode("utf-8", "surrogatepass"), "json")
