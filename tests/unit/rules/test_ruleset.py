"""Rule sets as data (consumer.rules.ruleset, consumer.rules.ruleset_load): the default file is
today's rules exactly, custom rules and shadow rules decide what they say, features keep the
contract's history semantics, and every bad file is refused naming the spot."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.records import InvalidRecord, Transaction, parse_transaction
from consumer.rules import RULE_IDS, AccountHistory, HistoryEntry, RulesConfig, judge
from consumer.rules.exact import EXACT
from consumer.rules.expressions import compile_expression
from consumer.rules.features import FEATURES, WINDOWS, Facts, FeaturePlan
from consumer.rules.geo import haversine_km
from consumer.rules.ruleset import CustomRule, RuleSet, RuleSetError, judge_with_ruleset
from consumer.rules.ruleset_load import (
    PARAMETERS,
    default_ruleset,
    load_ruleset,
    ruleset_schema,
)
from consumer.rules.scan import scan
from consumer.settings.rules import PARAMETERS as TOML_PARAMETERS
from consumer.settings.rules import load_rules_config
from load_test.synthetic import generate_records
from tests.support.oracle import reference_decisions
from tests.unit.worker.test_stream_properties import FakeRecord, streams

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_FILE = ROOT / "consumer" / "resources" / "rules.default.yaml"


def judged_stream(data: Sequence[bytes]) -> Iterator[tuple[Transaction, AccountHistory]]:
    for _, t, history in judged_records(data):
        yield t, history


def judged_records(
    data: Sequence[bytes],
) -> Iterator[tuple[bytes, Transaction, AccountHistory]]:
    """Each valid, non-duplicate record with its naive history: every earlier judged record of
    its account, in stream order (what the state store hands over, without a horizon)."""
    seen: set[str] = set()
    earlier: dict[str, list[Transaction]] = {}
    for raw in data:
        parsed = parse_transaction(raw)
        if isinstance(parsed, InvalidRecord) or parsed.transaction_id in seen:
            continue
        seen.add(parsed.transaction_id)
        mine = earlier.setdefault(parsed.account_id, [])
        yield raw, parsed, naive_history(mine, parsed)
        mine.append(parsed)


def naive_history(mine: Sequence[Transaction], t: Transaction) -> AccountHistory:
    return AccountHistory(
        recent=[
            HistoryEntry(
                (i, 0), e.event_time, e.amount, e.latitude, e.longitude, e.destination_country
            )
            for i, e in enumerate(mine)
        ],
        device_seen_before=t.device_id is not None
        and any(e.device_id == t.device_id for e in mine),
        has_earlier=bool(mine),
        country_seen_before=t.destination_country is not None
        and any(e.destination_country == t.destination_country for e in mine),
    )


def custom(rule_id: str, when: str, severity: str = "high", shadow: bool = False) -> CustomRule:
    return CustomRule(rule_id, f"{rule_id} rule", severity, compile_expression(when), shadow)


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- the default rule set is today's rules ----------------------------------------------------


def test_the_default_rule_set_is_the_contract_default() -> None:
    ruleset = default_ruleset()
    assert ruleset.config == RulesConfig()
    assert ruleset.version == "default-1"
    assert ruleset.custom == ()
    assert ruleset.state_horizon_s == Decimal(80061)
    assert ruleset.history_needs == frozenset()
    # The same as the documented TOML example read by today's loader.
    example = ROOT / "docs" / "rules.example.toml"
    assert load_rules_config({"FRAUD_RULES_FILE": str(example)}) == ruleset.config
    # Detail texts print the parameters as written: "5.00", not "5.0".
    assert str(ruleset.config.card_testing_max_amount) == "5.00"


def test_the_default_file_spells_out_every_parameter_severity_and_switch() -> None:
    document = yaml.safe_load(DEFAULT_FILE.read_text())
    assert list(document["rules"]) == list(RULE_IDS)
    for rule, params in PARAMETERS.items():
        assert set(document["rules"][rule]) == {*params, "severity", "enabled"}, rule
    assert document["custom"] == []


def test_parameter_names_are_the_toml_loaders() -> None:
    assert {rule: {p: f for p, (f, _) in ps.items()} for rule, ps in PARAMETERS.items()} == {
        rule: {p: f for p, (f, _) in ps.items()} for rule, ps in TOML_PARAMETERS.items()
    }


def test_the_published_schema_is_the_packaged_one_and_accepts_the_default() -> None:
    published = json.loads((ROOT / "docs" / "ruleset.schema.json").read_text())
    assert published == ruleset_schema()
    jsonschema.Draft202012Validator.check_schema(published)
    jsonschema.validate(yaml.safe_load(DEFAULT_FILE.read_text()), published)
    assert set(published["properties"]["rules"]["properties"]) == {*RULE_IDS, "model_score"}


def _decisions_agree(records: Sequence[FakeRecord]) -> None:
    default = default_ruleset()
    stream = [r.binary_data for r in records]
    positions = {r.binary_data: r.sequence_number for r in records}
    oracle = {
        position: rules
        for position, outcome, rules in reference_decisions(
            [(r.sequence_number, r.binary_data) for r in records], RulesConfig()
        )
        if outcome == "judged"
    }
    for raw, t, history in judged_records(stream):
        expected = judge(t, history, RulesConfig())
        got = judge_with_ruleset(t, history, default)
        assert got.contract == expected
        assert got.decision == expected
        assert got.custom == () and got.shadow == ()
        assert got.rules_version == "default-1"
        assert {r.rule for r in got.decision.reasons} == oracle[positions[raw]]


@PROPERTY
@given(records=streams())
def test_the_default_rule_set_decides_exactly_as_judge_with_the_defaults(
    records: list[FakeRecord],
) -> None:
    _decisions_agree(records)


def test_the_default_rule_set_on_generated_traffic_with_every_fraud_archetype() -> None:
    records = list(generate_records(3000, accounts=60, fraud_ratio=0.2, seed=11))
    default = default_ruleset()
    fired = 0
    for t, history in judged_stream([r.data for r in records]):
        expected = judge(t, history, RulesConfig())
        assert judge_with_ruleset(t, history, default).decision == expected
        fired += expected.flagged
    assert fired > 100  # the comparison covered flagged decisions, not only quiet ones


# --- custom rules: the contract rules written in the language give the same verdicts ----------

# Custom rule -> the contract rule it restates (card_testing needs a small-amount count the
# language does not name).
RESTATED = {
    "high_again": ("amount > 10000", "high_amount", False),
    "velocity_again": ("txn_count_1m > 3", "velocity", True),
    "cross_again": ("origin_country != destination_country", "cross_border", False),
    "low_balance_again": (
        "amount >= 1000 and amount > 0.9 * account_balance",
        "low_balance_high_amount",
        True,
    ),
    "travel_again": (
        "km_from_last >= 100 and speed_kmh_from_last > 900",
        "impossible_travel",
        False,
    ),
    "device_again": ("new_device and amount >= 1000", "new_device_high_amount", True),
}


def restated_ruleset() -> RuleSet:
    return RuleSet(
        "restated-1",
        RulesConfig(),
        [custom(rid, when, shadow=shadow) for rid, (when, _, shadow) in RESTATED.items()],
    )


@PROPERTY
@given(records=streams())
def test_contract_rules_restated_as_custom_rules_fire_on_the_same_transactions(
    records: list[FakeRecord],
) -> None:
    ruleset = restated_ruleset()
    for t, history in judged_stream([r.binary_data for r in records]):
        result = judge_with_ruleset(t, history, ruleset)
        contract = {r.rule for r in result.contract.reasons}
        live = {RESTATED[r.rule][1] for r in result.custom}
        shadow = {RESTATED[r.rule][1] for r in result.shadow}
        assert live | shadow == contract - {"card_testing"}
        assert all(not RESTATED[r.rule][2] for r in result.custom)
        assert all(RESTATED[r.rule][2] for r in result.shadow)
        # Shadow hits never flag: the decision is the contract's plus the live custom hits.
        assert [r.rule for r in result.decision.reasons] == [
            *(r.rule for r in result.contract.reasons),
            *(r.rule for r in result.custom),
        ]


# --- features against a naive computation over the whole earlier stream -----------------------


def naive_features(t: Transaction, mine: Sequence[Transaction]) -> dict[str, Any]:
    now = Fraction(t.event_time)
    values: dict[str, Any] = {}
    for suffix, seconds in WINDOWS.items():
        inside = [e for e in [*mine, t] if now - seconds < Fraction(e.event_time) <= now]
        values[f"txn_count_{suffix}"] = len(inside)
        values[f"amount_sum_{suffix}"] = sum((Fraction(e.amount) for e in inside), Fraction(0))
        values[f"distinct_countries_{suffix}"] = len(
            {e.destination_country for e in inside if e.destination_country is not None}
        )
    values["first_transaction"] = not mine
    values["new_device"] = (
        t.device_id is not None and bool(mine) and all(e.device_id != t.device_id for e in mine)
    )
    values["new_country"] = (
        t.destination_country is not None
        and bool(mine)
        and all(e.destination_country != t.destination_country for e in mine)
    )
    return values


@PROPERTY
@given(records=streams())
def test_history_features_equal_a_naive_computation(records: list[FakeRecord]) -> None:
    names = frozenset(FEATURES)
    earlier: dict[str, list[Transaction]] = {}
    for t, history in judged_stream([r.binary_data for r in records]):
        mine = earlier.setdefault(t.account_id, [])
        facts = Facts(t, history, FeaturePlan.for_names(names))
        for name, expected in naive_features(t, mine).items():
            got = FEATURES[name].get(facts)
            assert (Fraction(got) if name.startswith("amount_sum") else got) == expected, name
        mine.append(t)


_times = st.builds(
    lambda offset, fraction: Decimal(1_795_510_800 + offset) + fraction,
    st.sampled_from([-90_000, -86_400, -3_600, -600, -60, -1, 0, 1]),
    st.sampled_from([Decimal(0), Decimal("0.000"), Decimal("0.5")]),
)
_history_entries = st.builds(
    HistoryEntry,
    st.tuples(st.integers(0, 3), st.just(0)),  # equal positions too
    _times,
    st.sampled_from([Decimal("0.50"), Decimal("1"), Decimal("4.99"), Decimal("9E+3")]),
    st.none() | st.sampled_from([10.0, 20.0, 48.85]),
    st.none() | st.sampled_from([2.35, 30.0, -70.0]),
    st.sampled_from([None, "FR", "DE", "US"]),
)


def _naive_window_and_travel(t: Transaction, recent: Sequence[HistoryEntry]) -> dict[str, Any]:
    """The history features entry by entry, in stream order (what the one pass did before the
    bisection): windows `t - W < t' <= t`, sums added in the unbounded context, and the travel
    point as consumer.rules.scan's full pass finds it."""
    values: dict[str, Any] = {}
    at = t.event_time
    for suffix, seconds in WINDOWS.items():
        low = EXACT.subtract(at, seconds)
        inside = [e for e in recent if low < e.event_time <= at]
        total = t.amount
        for entry in inside:
            total = EXACT.add(total, entry.amount)
        values[f"txn_count_{suffix}"] = 1 + len(inside)
        values[f"amount_sum_{suffix}"] = (total, str(total))  # the exponent too
        seen = {t.destination_country} | {e.country for e in inside}
        values[f"distinct_countries_{suffix}"] = len(seen - {None})
    _, _, previous = scan(recent, at, at, at, Decimal(0), True)
    values["travel_point"] = previous if t.latitude is not None else None
    return values


@settings(max_examples=600, deadline=None)
@given(
    st.lists(_history_entries, max_size=16),
    _times,
    st.sampled_from(["0.50", "4.99", "6000", "1.000000000000000001"]),
    st.none() | st.floats(-89, 89),
    st.sampled_from([None, "FR", "GB"]),
    st.booleans(),
)
def test_window_and_travel_features_by_bisection_equal_the_entry_by_entry_pass(
    drawn: list[HistoryEntry],
    t_at: Decimal,
    amount: str,
    lat: float | None,
    country: str | None,
    in_order: bool,
) -> None:
    """Any event-time order (ties, equal positions, mixed exponents, entries later than the
    transaction, unlocated ones), and the same entries in ascending order flagged as such."""
    record: dict[str, Any] = {
        "transaction_id": "t",
        "account_id": "a",
        "timestamp": int(t_at * 1000),
    }
    if country is not None:
        record["destination_country"] = country
    if lat is not None:
        record |= {"latitude": lat, "longitude": 2.35}
    parsed = parse_transaction((json.dumps(record)[:-1] + f', "amount": {amount}}}').encode())
    assert isinstance(parsed, Transaction), parsed
    recent = sorted(drawn, key=lambda e: (e.event_time, e.position)) if in_order else drawn
    history = AccountHistory(recent=recent, has_earlier=bool(recent), ascending=in_order)
    facts = Facts(parsed, history, FeaturePlan.for_names(frozenset(FEATURES)))
    expected = _naive_window_and_travel(parsed, drawn if not in_order else recent)
    for name, value in expected.items():
        if name == "travel_point":
            continue
        got = facts.derived(name)
        assert ((got, str(got)) if name.startswith("amount_sum") else got) == value, name
    point = expected["travel_point"]
    km = facts.derived("km_from_last")
    if point is None or parsed.latitude is None:
        assert km is None
    else:
        assert point.latitude is not None and point.longitude is not None
        assert km == haversine_km(point.latitude, point.longitude, parsed.latitude, 2.35)


def test_account_age_and_hour_of_day() -> None:
    t = parse_transaction(
        b'{"transaction_id": "a", "account_id": "b", "amount": 1,'
        b' "timestamp": "2026-11-24T23:30:00.5+02:00",'
        b' "account_created_at": "2026-11-24T21:00:00Z"}'
    )
    assert isinstance(t, Transaction)
    facts = Facts(t, AccountHistory(), FeaturePlan())
    assert FEATURES["hour_of_day"].get(facts) == 21  # UTC
    assert FEATURES["account_age_s"].get(facts) == Decimal("1800.5")


# --- judge_with_ruleset: live, shadow, disabled, severity, version ----------------------------


def _txn(amount: str = "100", **fields: Any) -> Transaction:
    """A transaction whose amount is written as the literal `amount`."""
    body = {"transaction_id": "t", "account_id": "a", "timestamp": 1795510800000, **fields}
    parsed = parse_transaction((json.dumps(body)[:-1] + f', "amount": {amount}}}').encode())
    assert isinstance(parsed, Transaction), parsed
    return parsed


def test_live_custom_hits_flag_and_raise_the_severity_shadow_hits_do_not() -> None:
    ruleset = RuleSet(
        "v7",
        RulesConfig(),
        [
            custom("foreign_online", 'channel == "online" and destination_country != "DE"'),
            custom("watch_big", "amount > 50", severity="medium", shadow=True),
            CustomRule(
                "off", "never runs", "high", compile_expression("amount > 0"), enabled=False
            ),
        ],
    )
    t = _txn(channel="online", origin_country="DE", destination_country="FR", amount="60")
    result = judge_with_ruleset(t, AccountHistory(), ruleset)
    assert result.rules_version == "v7"
    assert [r.rule for r in result.contract.reasons] == ["cross_border"]
    assert result.contract.severity == "low"
    assert [r.rule for r in result.custom] == ["foreign_online"]
    assert result.custom[0].detail == (
        "foreign_online rule (channel=online, destination_country=FR)"
    )
    assert [r.rule for r in result.shadow] == ["watch_big"]
    assert result.shadow[0].detail == "watch_big rule (amount=60)"
    assert [r.rule for r in result.decision.reasons] == ["cross_border", "foreign_online"]
    assert result.decision.severity == "high"
    assert result.flagged

    quiet = judge_with_ruleset(_txn(amount="60"), AccountHistory(), ruleset)
    assert not quiet.flagged and quiet.decision.severity is None
    assert [r.rule for r in quiet.shadow] == ["watch_big"]  # counted, never flagged

    nothing = judge_with_ruleset(_txn(amount="1"), AccountHistory(), ruleset)
    assert (nothing.flagged, nothing.custom, nothing.shadow) == (False, (), ())


def test_a_custom_rule_alone_sets_the_severity() -> None:
    ruleset = RuleSet("v1", RulesConfig(), [custom("small", "amount < 2", severity="low")])
    result = judge_with_ruleset(_txn(amount="1"), AccountHistory(), ruleset)
    assert result.decision.severity == "low"
    assert result.decision.reasons[0].rule == "small"


def test_the_state_horizon_covers_every_custom_window_even_disabled_ones() -> None:
    rule = CustomRule("d", "d", "low", compile_expression("txn_count_24h > 100"), enabled=False)
    assert RuleSet("v", RulesConfig(), [rule]).state_horizon_s == Decimal(86400)
    one_hour = RuleSet("v", RulesConfig(), [custom("h", "amount_sum_1h > 10")])
    assert one_hour.state_horizon_s == Decimal(80061)  # the travel reach is longer
    assert one_hour.history_needs == frozenset()
    countries = RuleSet("v", RulesConfig(), [custom("c", "new_country")])
    assert countries.history_needs == frozenset({"countries"})


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        ([custom("velocity", "true")], "'velocity' is a built-in rule id"),
        ([custom("model_score", "true")], "'model_score' is a built-in rule id"),
        ([custom("a", "true"), custom("a", "false")], "'a' is used twice"),
        ([custom("a", "true", severity="urgent")], "'urgent' is not one of low, medium, high"),
    ],
)
def test_a_rule_set_built_in_code_is_checked_too(rules: list[CustomRule], problem: str) -> None:
    with pytest.raises(RuleSetError, match=problem):
        RuleSet("v", RulesConfig(), rules)


# --- loading ----------------------------------------------------------------------------------

EXAMPLE_YAML = """\
version: "2026-11-28.3"
rules:
  high_amount:
    threshold: 10000.001      # an unquoted number is exact too
  velocity:
    max_count: 5
    severity: high
  cross_border:
    enabled: false
  impossible_travel:
    max_speed_kmh: "1000.5"
custom:
  - id: big_online_burst
    description: Big online spend after a burst
    severity: high
    when: amount > 5000 and txn_count_1h >= 3 and channel == "online"
  - id: watch_new_country
    description: Large amount in a country new to the account
    severity: medium
    shadow: true
    when: >-
      new_country
      and amount >= 2000
"""


def test_yaml_and_json_load_the_same_rule_set(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(EXAMPLE_YAML)
    from_yaml = load_ruleset(path)
    document = yaml.safe_load(EXAMPLE_YAML)
    document["rules"]["high_amount"]["threshold"] = "10000.001"
    json_path = tmp_path / "rules.json"
    json_path.write_text(json.dumps(document))
    for ruleset in (from_yaml, load_ruleset(json_path), load_ruleset(json_path.read_bytes())):
        assert ruleset.version == "2026-11-28.3"
        config = ruleset.config
        assert config.high_amount_threshold == Decimal("10000.001")
        assert str(config.high_amount_threshold) == "10000.001"
        assert config.velocity_max_count == 5
        assert config.severity("velocity") == "high"
        assert config.velocity_window_s == Decimal(60)  # not given: the default
        assert "cross_border" not in config.enabled
        assert config.travel_max_speed_kmh == 1000.5
        assert [r.id for r in ruleset.live] == ["big_online_burst"]
        assert [r.id for r in ruleset.shadow] == ["watch_new_country"]
        assert ruleset.shadow[0].when.source == "new_country and amount >= 2000"
        assert ruleset.history_needs == frozenset({"countries"})
    # A JSON number is exact as well.
    exact = load_ruleset(b'{"version": "j", "rules": {"high_amount": {"threshold": 0.1}}}')
    assert exact.config.high_amount_threshold == Decimal("0.1")


def refused(text: str, fmt: str = "yaml", name: str = "rules.yaml") -> str:
    with pytest.raises(RuleSetError) as caught:
        load_ruleset(text.encode(), fmt, name=name)  # type: ignore[arg-type]
    return str(caught.value)


CUSTOM_HEAD = "version: v1\ncustom:\n  - id: r1\n    description: d\n    severity: high\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: {}\n", "rules.yaml:1: 'version' is a required property"),
        (
            "version: 2026-11-28\n",
            "rules.yaml:1:10: '2026-11-28' reads as a date in YAML, and a rule set holds no dates:"
            " write it in quotes",
        ),
        ('version: "has space"\n', "rules.yaml:1: version: 'has space' does not match"),
        ("version: v1\nrulez: {}\n", "rules.yaml:2: rulez: unknown key 'rulez'"),
        (
            "version: v1\nrules:\n  velocityy: {}\n",
            "rules.yaml:3: rules.velocityy: unknown key 'velocityy'",
        ),
        (
            "version: v1\nrules:\n  velocity:\n    window_s: '60'\n    max_cnt: 3\n",
            "rules.yaml:5: rules.velocity.max_cnt: unknown key 'max_cnt' (known: enabled,"
            " max_count, severity, window_s)",
        ),
        (
            "version: v1\nrules:\n  velocity:\n    max_count: 0\n",
            "rules.yaml:4: rules.velocity.max_count: 0 is less than the minimum of 1",
        ),
        (
            "version: v1\nrules:\n  velocity:\n    max_count: 2.5\n",
            "rules.yaml:4: rules.velocity.max_count: 2.5 is not of type 'integer'",
        ),
        (
            "version: v1\nrules:\n  high_amount:\n    threshold: '-5'\n",
            "rules.yaml:4: rules.high_amount.threshold: '-5' is not an amount > 0 and <= 1e15",
        ),
        (
            "version: v1\nrules:\n  high_amount:\n    threshold: 0\n",
            "rules.yaml:4: rules.high_amount.threshold: 0 is not an amount > 0 and <= 1e15",
        ),
        (
            "version: v1\nrules:\n  high_amount:\n    severity: urgent\n",
            "rules.yaml:4: rules.high_amount.severity: 'urgent' is not one of ['low',"
            " 'medium', 'high']",
        ),
        (
            "version: v1\nrules:\n  cross_border:\n    enabled: maybe\n",
            "rules.yaml:4: rules.cross_border.enabled: 'maybe' is not of type 'boolean'",
        ),
        (
            "version: v1\ncustom:\n  - id: r1\n    severity: high\n    when: 'true'\n",
            "rules.yaml:3: custom[0]: 'description' is a required property",
        ),
        (
            "version: v1\ncustom:\n  - id: Big-Rule\n    description: d\n    severity: high\n "
            "   when: 'true'\n",
            "rules.yaml:3: custom[0].id: 'Big-Rule' does not match",
        ),
        (
            CUSTOM_HEAD + "    when: 'true'\n    shadow: sometimes\n",
            "rules.yaml:7: custom[0].shadow: 'sometimes' is not of type 'boolean'",
        ),
        (
            CUSTOM_HEAD
            + "    when: 'true'\n  - id: r1\n    description: d\n    severity: low\n    when:"
            " 'true'\n",
            "rules.yaml:7: custom[1].id: 'r1' is used twice",
        ),
        (
            "version: v1\ncustom:\n  - id: card_testing\n    description: d\n    severity:"
            " high\n    when: 'true'\n",
            "rules.yaml:3: custom[0].id: 'card_testing' is a built-in rule id",
        ),
        # `when` problems point at the file's line and column, and at the spot in the condition.
        (
            CUSTOM_HEAD + "    when: amount > 5000 and chanel == 'online'\n",
            "rules.yaml:6:29: custom[0] (r1) when: unknown field 'chanel' (did you mean"
            " 'channel'?)\n    amount > 5000 and chanel == 'online'\n                     "
            " ^^^^^^",
        ),
        (
            CUSTOM_HEAD + '    when: "len(channel) > 3"\n',
            "rules.yaml:6:12: custom[0] (r1) when: function calls are not allowed\n   "
            " len(channel) > 3\n    ^^^^^^^^^^^^",
        ),
        (
            CUSTOM_HEAD + "    when: amount.real > 1\n",
            "rules.yaml:6:11: custom[0] (r1) when: attribute access (.) is not allowed",
        ),
        (
            CUSTOM_HEAD + "    when: channel > 5\n",
            "rules.yaml:6:11: custom[0] (r1) when: cannot compare a string (may be absent)"
            " with a number using >",
        ),
        (
            CUSTOM_HEAD + "    when: |\n      amount > 1\n        and not amount\n",
            "rules.yaml:8:17: custom[0] (r1) when: `not` needs true or false, but this is a number",
        ),
        (
            CUSTOM_HEAD + "    when: >-\n      amount > 1\n      and x == 1\n",
            "rules.yaml:6: custom[0].when (r1): line 1, column 16 of the condition: unknown"
            " field 'x'",
        ),
        # Not YAML, or YAML this loader refuses.
        ("version: v1\nrules: [\n", "rules.yaml:3:1: not valid YAML"),
        ("version: v1\nversion: v2\n", "rules.yaml:2:1: duplicate key 'version'"),
        (
            "version: &v v1\ndescription: *v\n",
            "rules.yaml:1:10: anchors (&name) are not allowed in a rule set",
        ),
        (
            "version: v1\ndescription: *v\n",
            "rules.yaml:2:14: aliases (*name) are not allowed in a rule set",
        ),
        (
            "version: v1\nrules:\n  high_amount:\n    threshold: .inf\n",
            "rules.yaml:4:16: '.inf' is not a finite number",
        ),
        ("- version: v1\n", "rules.yaml: a rule set is a mapping"),
        ("", "rules.yaml: a rule set is a mapping"),
        ("version: v1\n---\nversion: v2\n", "rules.yaml:2:1: a rule set is one YAML document"),
    ],
)
def test_a_bad_yaml_rule_set_is_refused_naming_the_spot(text: str, expected: str) -> None:
    message = refused(text)
    assert message.startswith("rules.yaml: refused, 1 problem\n- ")
    assert expected in message, message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"version": "v1",\n "rules": {,}}',
            "rules.json:2:12: not valid JSON: Expecting property name",
        ),
        ('{"version": "v1", "version": "v2"}', "not valid JSON: duplicate key 'version'"),
        (
            '{"version": "v1", "rules": {"high_amount": {"threshold": NaN}}}',
            "not valid JSON: NaN is not a number",
        ),
        (
            '{"version": "v1", "custom": [{"id": "r", "description": "d", "severity": "low",'
            ' "when": "amount >= > 1"}]}',
            "rules.json:1:100: custom[0] (r) when: syntax error",  # JSON is read for marks too
        ),
    ],
)
def test_a_bad_json_rule_set_is_refused_naming_the_spot(text: str, expected: str) -> None:
    message = refused(text, "json", "rules.json")
    assert expected in message, message


def test_every_problem_is_reported_at_once() -> None:
    text = (
        CUSTOM_HEAD
        + "    when: amout > 1\n  - id: r2\n    description: d\n    severity: low\n    when: f(x)\n"
    )
    message = refused(text)
    assert message.startswith("rules.yaml: refused, 2 problems\n")
    assert "rules.yaml:6:11: custom[0] (r1) when: unknown field 'amout'" in message
    assert "rules.yaml:10:11: custom[1] (r2) when: function calls are not allowed" in message


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(RuleSetError, match="cannot read it"):
        load_ruleset(tmp_path / "missing.yaml")
    with pytest.raises(RuleSetError, match=r"unknown format '\.toml'"):
        load_ruleset(tmp_path / "rules.toml")
    with pytest.raises(RuleSetError, match="not UTF-8"):
        load_ruleset(b"version: \xff\n", "yaml")
    with pytest.raises(RuleSetError, match="larger than"):
        load_ruleset(b"#" * (1 << 20) + b"\nversion: v1\n", "yaml")


def test_the_documented_example_loads_and_judges() -> None:
    ruleset = load_ruleset(ROOT / "docs" / "rules.example.yaml")
    assert [r.id for r in ruleset.live] == ["big_online_after_burst", "drain_at_night"]
    assert [r.id for r in ruleset.shadow] == ["new_device_cash"]
    assert ruleset.config == RulesConfig()
    assert ruleset.history_needs == frozenset()  # the stream can run it today
    night = _txn(amount="990", account_balance=1000, timestamp=1795482000000)  # 01:00 UTC
    result = judge_with_ruleset(night, AccountHistory(), ruleset)
    assert [r.rule for r in result.decision.reasons] == ["drain_at_night"]
    assert result.decision.severity == "medium"


def test_a_window_feature_outside_the_plan_is_still_computed() -> None:
    t = _txn()
    history = AccountHistory(
        recent=[HistoryEntry((1, 0), t.event_time - 30, Decimal("2.5"), None, None, "FR")],
        has_earlier=True,
    )
    facts = Facts(t, history, FeaturePlan())
    assert FEATURES["amount_sum_1m"].get(facts) == Decimal("102.5")
    assert FEATURES["distinct_countries_1h"].get(facts) == 1
    assert FEATURES["txn_count_24h"].get(facts) == 2


MODEL_ENTRY = 'version: "m1"\nrules:\n  model_score:\n'


def test_a_model_score_entry_is_read_with_the_keys_it_gives() -> None:
    ruleset = load_ruleset(
        (MODEL_ENTRY + "    threshold: 72.5\n    severity: high\n    shadow: true\n").encode()
    )
    assert ruleset.model is not None
    assert (ruleset.model.enabled, ruleset.model.threshold) == (True, 72.5)
    assert (ruleset.model.severity, ruleset.model.shadow) == ("high", True)
    off = load_ruleset((MODEL_ENTRY + "    enabled: false\n").encode())
    assert off.model is not None and not off.model.enabled and off.model.threshold is None
    assert load_ruleset(b'version: "none"\n').model is None  # the worker's settings decide


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("    threshold: 150\n", r"rule set:4: rules\.model_score\.threshold: 150 is greater"),
        ("    threshold: -1\n", r"rules\.model_score\.threshold: -1 is less than the minimum"),
        ('    threshold: "80"\n', r"rules\.model_score\.threshold: '80' is not of type 'number'"),
        ("    severity: extreme\n", r"rules\.model_score\.severity: 'extreme' is not one of"),
        ("    colour: red\n", r"rules\.model_score\.colour: unknown key 'colour' \(known: enabled"),
        ("    shadow: maybe\n", r"rules\.model_score\.shadow: 'maybe' is not of type 'boolean'"),
    ],
)
def test_a_bad_model_score_entry_is_refused_naming_the_key(body: str, expected: str) -> None:
    with pytest.raises(RuleSetError, match=expected):
        load_ruleset((MODEL_ENTRY + body).encode())
