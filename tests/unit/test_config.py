from decimal import Decimal

import pytest

from consumer.config import ConfigError, load_settings

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
