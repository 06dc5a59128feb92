"""s3:// settings are read one way everywhere, keys verbatim (consumer/settings/s3_uri.py)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from consumer.reload.hot_source import fetcher_for
from consumer.reload.models import model_fetcher
from consumer.settings.config import ConfigError, load_settings
from consumer.settings.s3_uri import S3Location, parse_s3

ODD_KEYS = ["rules.yaml?v=2", "team#1/rules.yaml", "a b/ü.yaml", "/leading", "x//y.json"]


@pytest.mark.parametrize("key", ODD_KEYS)
def test_a_key_is_kept_verbatim(key: str) -> None:
    location = parse_s3(f"s3://bucket/{key}")
    assert location == S3Location("bucket", key)
    assert str(location) == f"s3://bucket/{key}"


@pytest.mark.parametrize("raw", ["s3://", "s3:///key", "file.yaml"])
def test_no_bucket_is_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_s3(raw)


@mock_aws
@pytest.mark.parametrize("key", ODD_KEYS)
def test_the_hot_reload_fetcher_reads_exactly_the_configured_object(key: str) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="rules")
    # What a URL parser would have read instead (the query, the fragment, a slash dropped).
    misread = key.split("?")[0].split("#")[0].lstrip("/")
    if misread != key:
        s3.put_object(Bucket="rules", Key=misread, Body=b"another object")
    s3.put_object(Bucket="rules", Key=key, Body=b"the one configured")
    fetched = fetcher_for(f"s3://rules/{key}", lambda: s3).fetch(None)
    assert fetched is not None and fetched.data == b"the one configured"


def test_a_model_prefix_keeps_its_odd_characters() -> None:
    fetcher = model_fetcher("s3://models/team#1/live", lambda: object())
    assert fetcher.name == "s3://models/team#1/live/"


BASE = {"FRAUD_BUCKET": "b", "FRAUD_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:t"}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("FRAUD_RULESET", "s3://"),
        ("FRAUD_RULESET", "s3://bucket"),
        ("FRAUD_RULESET", "s3://bucket/"),
        ("FRAUD_RULESET", "s3:///rules.yaml"),
        ("FRAUD_MODEL_DIR", "s3:///models/"),
    ],
)
def test_settings_refuse_an_s3_value_without_bucket_or_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_settings({**BASE, key: value})


def test_settings_accept_an_s3_key_with_odd_characters() -> None:
    settings = load_settings({**BASE, "FRAUD_RULESET": "s3://rules/team#1/rules.yaml?v=2"})
    assert settings.ruleset == "s3://rules/team#1/rules.yaml?v=2"
