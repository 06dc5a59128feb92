"""FRAUD_PROFILES: the profiles are kept when a model is configured (auto), always (on) or
never (off); anything else is refused naming the variable."""

from __future__ import annotations

import pytest

from consumer.settings.config import ConfigError, load_state_config

MODEL = {"FRAUD_MODEL_DIR": "s3://bucket/models/"}


@pytest.mark.parametrize(
    ("env", "kept"),
    [
        ({}, False),
        (MODEL, True),
        ({"FRAUD_PROFILES": "auto", **MODEL}, True),
        ({"FRAUD_PROFILES": "AUTO", "FRAUD_MODEL_DIR": "  "}, False),
        ({"FRAUD_PROFILES": "on"}, True),
        ({"FRAUD_PROFILES": "off", **MODEL}, False),
    ],
)
def test_profiles_follow_the_model_unless_set(env: dict[str, str], kept: bool) -> None:
    assert load_state_config(env).profiles is kept


def test_a_bad_value_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="FRAUD_PROFILES"):
        load_state_config({"FRAUD_PROFILES": "sometimes"})
    with pytest.raises(ConfigError, match="FRAUD_PROFILE_LABELS_REFRESH_S"):
        load_state_config({"FRAUD_PROFILE_LABELS_REFRESH_S": "-1"})
    assert load_state_config({"FRAUD_PROFILE_LABELS_REFRESH_S": "0"}).merchant_labels_refresh_s == 0
