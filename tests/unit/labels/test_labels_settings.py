"""The labels' settings: FRAUD_LABELS_POLL_S, FRAUD_LABELS_PREFIX, and the Redis location alone."""

from __future__ import annotations

import pytest

from consumer.settings.config import ConfigError, load_redis_location, load_settings

BASE = {"FRAUD_BUCKET": "b", "FRAUD_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t"}


def test_defaults() -> None:
    settings = load_settings(BASE)
    assert (settings.labels_poll_s, settings.labels_prefix) == (30.0, "labels/")


def test_values_and_zero_turns_the_pickup_off() -> None:
    settings = load_settings({**BASE, "FRAUD_LABELS_POLL_S": "0", "FRAUD_LABELS_PREFIX": "/in"})
    assert (settings.labels_poll_s, settings.labels_prefix) == (0.0, "in/")


@pytest.mark.parametrize(
    ("key", "value"),
    [("FRAUD_LABELS_POLL_S", "-1"), ("FRAUD_LABELS_POLL_S", "x"), ("FRAUD_LABELS_PREFIX", "/")],
)
def test_bad_values_name_the_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_settings({**BASE, key: value})


def test_redis_location_without_the_worker_settings() -> None:
    assert load_redis_location({}) == ("redis://127.0.0.1:6379/0", False)
    env = {"REDIS_URL": "rediss://h:6380/0", "FRAUD_REDIS_CLUSTER": "true"}
    assert load_redis_location(env) == ("rediss://h:6380/0", True)
    with pytest.raises(ConfigError, match="REDIS_URL"):
        load_redis_location({"REDIS_URL": "http://h"})
