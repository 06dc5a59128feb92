from decimal import Decimal

import pytest

from consumer.settings.config import ConfigError, load_settings

BASE = {"FRAUD_BUCKET": "b", "FRAUD_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t"}


def test_defaults_follow_the_contract() -> None:
    settings = load_settings(BASE)
    assert settings.rules.high_amount_threshold == Decimal("10000")
    assert settings.alert_severity == "medium"
    assert settings.flush.max_age_s <= 60
    assert settings.prefix == ""


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("FRAUD_RULE_HIGH_AMOUNT_THRESHOLD", "-5"),
        ("FRAUD_RULE_HIGH_AMOUNT_THRESHOLD", "NaN"),
        ("FRAUD_RULE_HIGH_AMOUNT_THRESHOLD", "ten"),
        ("FRAUD_ALERT_SEVERITY", "urgent"),
        ("FRAUD_FLUSH_MAX_RECORDS", "0"),
        ("FRAUD_FLUSH_MAX_AGE_S", "inf"),
        ("FRAUD_RETRY_MAX_ATTEMPTS", "1.5"),
        ("REDIS_URL", "http://localhost:6379"),
        ("FRAUD_TOPIC_ARN", "my-topic"),
        ("FRAUD_METRICS_ENABLED", "maybe"),
        ("FRAUD_ALERT_PROCESS", "sometimes"),
        ("FRAUD_METRICS_INTERVAL_S", "0.5"),
        ("FRAUD_METRICS_INTERVAL_S", "soon"),
        ("FRAUD_METRICS_NAMESPACE", "AWS/Kinesis"),
        ("FRAUD_METRICS_NAMESPACE", "x" * 256),
        ("FRAUD_STATE_CACHE_ENTRIES", "-1"),
        ("FRAUD_STATE_CACHE_ENTRIES", "lots"),
    ],
)
def test_a_bad_value_names_its_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_settings({**BASE, key: value})


@pytest.mark.parametrize("missing", ["FRAUD_BUCKET", "FRAUD_TOPIC_ARN"])
def test_a_missing_required_key_is_named(missing: str) -> None:
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(ConfigError, match=f"{missing}: required"):
        load_settings(env)


def test_overrides_are_read_and_normalised() -> None:
    settings = load_settings(
        {
            **BASE,
            "FRAUD_RULE_HIGH_AMOUNT_THRESHOLD": "500.25",
            "FRAUD_ALERT_SEVERITY": "HIGH",
            "FRAUD_PREFIX": "/team/fraud",
            "REDIS_URL": "rediss://:secret@cache:6379/0",
        }
    )
    assert settings.rules.high_amount_threshold == Decimal("500.25")
    assert settings.alert_severity == "high"
    assert settings.prefix == "team/fraud/"
    assert settings.redis_url.startswith("rediss://")


def test_the_state_cache_entry_budget_is_read() -> None:
    assert load_settings(BASE).state.cache_entries == 100_000
    assert load_settings({**BASE, "FRAUD_STATE_CACHE_ENTRIES": "5000"}).state.cache_entries == 5000


def test_metrics_are_on_by_default_and_configurable() -> None:
    default = load_settings(BASE).metrics
    assert (default.enabled, default.namespace, default.interval_s) == (True, "Fraudstream", 60.0)
    assert default.application == "fraudstream"
    custom = load_settings(
        {
            **BASE,
            "FRAUD_METRICS_ENABLED": "false",
            "FRAUD_METRICS_NAMESPACE": "Team/Fraud",
            "FRAUD_METRICS_INTERVAL_S": "30",
            "FRAUD_APP_NAME": "fraud-prod",
        }
    ).metrics
    assert (custom.enabled, custom.namespace, custom.interval_s) == (False, "Team/Fraud", 30.0)
    assert custom.application == "fraud-prod"


def test_alerts_are_published_from_a_child_process_unless_switched_off() -> None:
    assert load_settings(BASE).alert_process is True
    assert load_settings({**BASE, "FRAUD_ALERT_PROCESS": "false"}).alert_process is False
