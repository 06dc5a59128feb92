import contextlib
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.rules.config import RULE_IDS, RulesConfig
from consumer.settings.config import ConfigError, load_settings
from consumer.settings.rules import PARAMETERS, RulesConfigError, load_rules_config

BASE = {"FRAUD_BUCKET": "b", "FRAUD_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t"}
EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "rules.example.toml"


def test_the_documented_example_file_is_the_contract_default() -> None:
    assert load_rules_config({"FRAUD_RULES_FILE": str(EXAMPLE)}) == RulesConfig()


def test_file_then_environment(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[rules.card_testing]\nmax_amount = "2.50"\nmin_count = 3\n'
        "[rules.velocity]\nwindow_s = 30.5\nseverity = 'high'\n"
        "[rules.cross_border]\nenabled = false\n"
    )
    config = load_rules_config(
        {"FRAUD_RULES_FILE": str(rules), "FRAUD_RULE_CARD_TESTING_MIN_COUNT": "4"}
    )
    assert config.card_testing_max_amount == Decimal("2.50")
    assert config.card_testing_min_count == 4  # the variable wins over the file
    assert config.velocity_window_s == Decimal("30.5")  # a TOML float, read as written
    assert config.severity("velocity") == "high"
    assert "cross_border" not in config.enabled
    assert set(config.enabled) == set(RULE_IDS) - {"cross_border"}


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("[rules.velocitty]\nmax_count = 3\n", "unknown rule 'velocitty'"),
        ("[rules.velocity]\nmax_cnt = 3\n", "rules.velocity.max_cnt"),
        ("[rules.velocity]\nmax_count = 0\n", "rules.velocity.max_count"),
        ("[rules.high_amount]\nthreshold = -1\n", "rules.high_amount.threshold"),
        ("[rules.high_amount]\nseverity = 'urgent'\n", "rules.high_amount.severity"),
        ("[rules.card_testing]\nenabled = 'maybe'\n", "rules.card_testing.enabled"),
        ("[alerts]\nx = 1\n", "unknown section"),
        ("not toml at all [", "cannot read"),
    ],
)
def test_a_bad_file_stops_start_up_naming_the_key(tmp_path: Path, content: str, named: str) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(content)
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace(".", r"\.")):
        load_settings({**BASE, "FRAUD_RULES_FILE": str(rules)})


@pytest.mark.parametrize(
    "key",
    ["FRAUD_RULE_VELOCITY_WINDOW", "FRAUD_RULE_NOPE_THRESHOLD", "FRAUD_RULE_HIGH_AMOUNT_THRESHOLD"],
)
def test_a_bad_variable_stops_start_up_naming_it(key: str) -> None:
    value = "abc" if key.endswith("THRESHOLD") else "5"
    with pytest.raises(ConfigError, match=key):
        load_settings({**BASE, key: value})


def test_a_missing_rules_file_is_named() -> None:
    with pytest.raises(ConfigError, match="FRAUD_RULES_FILE"):
        load_settings({**BASE, "FRAUD_RULES_FILE": "/nonexistent/rules.toml"})


_TOML_VALUES = st.sampled_from(
    [
        "5",
        "'60'",
        "0.9",
        "2026-02-30",
        "2026-11-28",
        "1979-05-27T07:32:00Z",
        "inf",
        "-inf",
        "nan",
        "0x10",
        "0o17",
        "1_000",
        "9" * 5000,
        "1e-300000000",
        "1e999999999",
        "[1, [2, [3]]]",
        "{a = 1}",
        "true",
        "'\\ud800'",
        '"\\u0000"',
        "'" + "x" * 5000 + "'",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted({f"{r}.{p}" for r, ps in PARAMETERS.items() for p in ps}))
    | st.text(max_size=20),
    _TOML_VALUES | st.text(max_size=40),
    st.binary(max_size=200),
)
def test_any_file_or_variable_gives_a_config_or_a_rules_config_error(
    tmp_path_factory: pytest.TempPathFactory, key: str, value: str, junk: bytes
) -> None:
    """Never another exception: a worker at start-up stops with a message naming the file key
    or the variable, whatever the file holds."""
    path = tmp_path_factory.mktemp("rules") / "rules.toml"
    rule, _, param = key.partition(".")
    for content in (f"[rules.{rule}]\n{param} = {value}\n".encode("utf-8", "surrogatepass"), junk):
        path.write_bytes(content)
        with contextlib.suppress(RulesConfigError):
            assert isinstance(load_rules_config({"FRAUD_RULES_FILE": str(path)}), RulesConfig)
    variable = f"FRAUD_RULE_{rule}_{param}".upper()
    try:
        load_rules_config({variable: value.encode("utf-8", "replace").decode()})
    except RulesConfigError as exc:
        assert str(exc).startswith(variable[:11])
