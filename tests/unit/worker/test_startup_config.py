"""Bad configuration at start-up (issue #6): `fraudstream worker` stops before the JVM, within
seconds, non-zero, with a message naming the setting or the resource.

Settings are checked by consumer.settings.config and consumer.settings.rules; resources (Redis, the
bucket, the topic, the stream) by consumer.worker.preflight, against moto and a closed port.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.server import ThreadedMotoServer

from consumer.settings.config import ConfigError, Settings, load_settings
from consumer.settings.keys import KNOWN_KEYS, check_environment
from consumer.worker.preflight import PreflightError, redis_location, run_preflight

REPO = Path(__file__).resolve().parents[3]
REGION = "us-east-1"
TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends


def settings(redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"bucket": "bkt", "topic_arn": TOPIC, "redis_url": redis_url}
    return Settings(**{**values, **overrides})


# -- settings ------------------------------------------------------------------------------------


BASE_ENV = {"FRAUD_BUCKET": "bkt", "FRAUD_TOPIC_ARN": TOPIC}


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("FRAUD_RULE_SPEEDING_THRESHOLD", "5", "FRAUD_RULE_SPEEDING_THRESHOLD: unknown rule"),
        ("FRAUD_RULE_VELOCITY_MAX_COUNTS", "5", "unknown parameter 'max_counts' of velocity"),
        ("FRAUD_RULE_HIGH_AMOUNT_THRESHOLD", "-1", "FRAUD_RULE_HIGH_AMOUNT_THRESHOLD: must be"),
        ("FRAUD_RULE_CARD_TESTING_MIN_COUNT", "0", "FRAUD_RULE_CARD_TESTING_MIN_COUNT: must be"),
        ("FRAUD_RULE_VELOCITY_SEVERITY", "urgent", "FRAUD_RULE_VELOCITY_SEVERITY: must be one"),
        ("FRAUD_TIMESTAMP_MAX_AHEAD_S", "0", "FRAUD_TIMESTAMP_MAX_AHEAD_S: must be a positive"),
        ("FRAUD_TIMESTAMP_MAX_AHEAD_S", "1d", "FRAUD_TIMESTAMP_MAX_AHEAD_S:"),
    ],
)
def test_a_bad_rule_or_setting_is_named(key: str, value: str, named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({**BASE_ENV, key: value})
    assert named in str(raised.value)


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ("[rules.high_amount\nthreshold = 5", "FRAUD_RULES_FILE: cannot read"),
        ("[rules.speeding]\nthreshold = 5\n", "unknown rule 'speeding'"),
        ("[rules.high_amount]\nthreshold = -5\n", "rules.high_amount.threshold: must be"),
        ("[rules.velocity]\nwindow_s = 0\n", "rules.velocity.window_s: must be"),
        ("[rule.high_amount]\nthreshold = 5\n", "unknown section(s) rule"),
        ("[rules]\nhigh_amount = 5\n", "[rules.high_amount] must be a table"),
    ],
)
def test_a_malformed_rules_file_is_named(tmp_path: Path, document: str, named: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(document)
    with pytest.raises(ConfigError) as raised:
        load_settings({**BASE_ENV, "FRAUD_RULES_FILE": str(path)})
    assert named in str(raised.value)


def test_a_missing_rules_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="FRAUD_RULES_FILE: cannot read"):
        load_settings({**BASE_ENV, "FRAUD_RULES_FILE": str(tmp_path / "nope.toml")})


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("FRAUD_ALERT_SEVERTY", "FRAUD_ALERT_SEVERITY"),
        ("FRAUD_BUCKETS", "FRAUD_BUCKET"),
        ("FRAUD_FLUSH_MAX_RECORD", "FRAUD_FLUSH_MAX_RECORDS"),
        ("FRAUD_STATE_LATENES_S", "FRAUD_STATE_LATENESS_S"),
    ],
)
def test_an_unknown_key_one_typo_from_a_setting_stops_start_up(typo: str, meant: str) -> None:
    with pytest.raises(ConfigError, match=f"{typo}: unknown setting; did you mean {meant}"):
        check_environment({**BASE_ENV, typo: "x"})


def test_other_unknown_keys_are_warnings() -> None:
    env = {**BASE_ENV, "FRAUD_TEAM": "payments", "FRAUD_RULE_VELOCITY_MAX_COUNT": "5"}
    assert check_environment(env) == ["FRAUD_TEAM: unknown setting, ignored"]
    assert check_environment({key: "x" for key in KNOWN_KEYS}) == []


def test_every_fraud_variable_the_code_reads_is_known() -> None:
    """A new setting must be registered, or the typo check would call it unknown."""
    used: set[str] = set()
    for path in (REPO / "consumer").rglob("*.py"):
        used |= set(re.findall(r"\"(FRAUD_[A-Z0-9_]*[A-Z0-9])\"", path.read_text()))
    used = {key for key in used if not key.startswith("FRAUD_RULE_")}
    assert used - KNOWN_KEYS == set()


# -- resources, in process against moto ------------------------------------------------------------


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket="bkt")
        boto3.client("sns", region_name=REGION).create_topic(Name="alerts")
        boto3.client("kinesis", region_name=REGION).create_stream(StreamName="txns", ShardCount=1)
        yield


def test_everything_present_passes(aws: None, redis_url: str) -> None:
    report = run_preflight(settings(redis_url), "txns")
    assert report.problems == [] and report.warnings == []


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"bucket": "no-such-bucket"}, "FRAUD_BUCKET: bucket 'no-such-bucket' does not exist"),
        (
            {"topic_arn": "arn:aws:sns:us-east-1:123456789012:gone"},
            "FRAUD_TOPIC_ARN: topic arn:aws:sns:us-east-1:123456789012:gone does not exist",
        ),
    ],
)
def test_a_missing_bucket_or_topic_is_named(
    aws: None, redis_url: str, change: dict[str, str], named: str
) -> None:
    with pytest.raises(PreflightError) as raised:
        run_preflight(settings(redis_url, **change), "txns")
    assert str(raised.value) == named


def test_a_missing_stream_is_named(aws: None, redis_url: str) -> None:
    with pytest.raises(PreflightError) as raised:
        run_preflight(settings(redis_url), "no-such-stream")
    assert str(raised.value) == "FRAUD_STREAM: stream 'no-such-stream' does not exist"


def test_unreachable_redis_is_named_within_seconds(aws: None) -> None:
    port = closed_port()
    started = time.monotonic()
    with pytest.raises(PreflightError) as raised:
        run_preflight(settings(f"redis://:s3cret-token@127.0.0.1:{port}/0"), "txns")
    assert time.monotonic() - started < 10
    message = str(raised.value)
    assert message.startswith(f"REDIS_URL: cannot reach Redis at redis://127.0.0.1:{port}")
    assert "s3cret" not in message  # the AUTH token never reaches a message


def test_every_problem_is_named_at_once(aws: None) -> None:
    broken = settings(
        f"redis://127.0.0.1:{closed_port()}/0",
        bucket="gone",
        topic_arn="arn:aws:sns:us-east-1:123456789012:gone",
    )
    with pytest.raises(PreflightError) as raised:
        run_preflight(broken, "gone")
    keys = [part.split(":", 1)[0] for part in str(raised.value).split("; ")]
    assert keys == ["FRAUD_BUCKET", "FRAUD_STREAM", "FRAUD_TOPIC_ARN", "REDIS_URL"]


def test_redis_refusing_the_password_is_named(aws: None, redis_url: str) -> None:
    wrong = redis_url.replace("redis://", "redis://someone:wrong@")
    with pytest.raises(PreflightError) as raised:
        run_preflight(settings(wrong), "txns")
    assert str(raised.value).startswith("REDIS_URL:")
    assert "wrong" not in str(raised.value)


class _Denied:
    """A client whose every call is refused, as a least-privilege role would be."""

    def __init__(self, code: str, status: int) -> None:
        self._error = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}

    def __getattr__(self, name: str) -> Any:
        def call(**_: Any) -> Any:
            raise ClientError(self._error, name)  # type: ignore[arg-type]

        return call


def test_access_denied_on_bucket_and_topic_is_a_warning_not_a_failure(
    aws: None, redis_url: str
) -> None:
    def client(service: str, region: str) -> Any:
        if service == "s3":
            return _Denied("403", 403)
        if service == "sns":
            return _Denied("AuthorizationError", 403)
        return boto3.client(service, region_name=region)

    report = run_preflight(settings(redis_url), "txns", client=client)
    assert [w.split(":", 1)[0] for w in report.warnings] == ["FRAUD_BUCKET", "FRAUD_TOPIC_ARN"]
    assert all("access denied" in w for w in report.warnings)


def test_a_bucket_in_another_region_is_a_warning(aws: None, redis_url: str) -> None:
    def client(service: str, region: str) -> Any:
        if service == "s3":
            return _Denied("301", 301)
        return boto3.client(service, region_name=region)

    report = run_preflight(settings(redis_url), "txns", client=client)
    assert report.warnings == [
        "FRAUD_BUCKET: bucket 'bkt' is in another region than us-east-1; going on"
    ]


def test_access_denied_on_the_stream_fails(aws: None, redis_url: str) -> None:
    def client(service: str, region: str) -> Any:
        if service == "kinesis":
            return _Denied("AccessDeniedException", 400)
        return boto3.client(service, region_name=region)

    with pytest.raises(PreflightError, match="FRAUD_STREAM: access denied"):
        run_preflight(settings(redis_url), "txns", client=client)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:token@cache.example:6380/0", "redis://cache.example:6380"),
        ("rediss://user:token@cache.example/0", "rediss://cache.example:6379"),
        ("unix:///run/redis.sock", "unix:/run/redis.sock"),
    ],
)
def test_redis_location_never_shows_credentials(url: str, shown: str) -> None:
    assert redis_location(url) == shown


# -- the worker command, end to end, before the JVM ---------------------------------------------


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    yield endpoint
    server.stop()


@pytest.fixture
def worker_env(
    moto_server: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """A worker environment whose every resource exists, and a `java` that leaves a mark."""
    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_server, **creds)
    s3.create_bucket(Bucket="bkt")
    sns = boto3.client("sns", region_name=REGION, endpoint_url=moto_server, **creds)
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    kinesis = boto3.client("kinesis", region_name=REGION, endpoint_url=moto_server, **creds)
    if "txns" not in kinesis.list_streams()["StreamNames"]:
        kinesis.create_stream(StreamName="txns", ShardCount=1)
    java = tmp_path / "java"
    java.write_text(f"#!/bin/sh\ntouch {tmp_path / 'jvm-started'}\n")
    java.chmod(0o755)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FRAUD_", "KCL_", "AWS_ENDPOINT_URL", "REDIS_URL"))
    }
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL_S3": moto_server,
            "AWS_ENDPOINT_URL_SNS": moto_server,
            "AWS_ENDPOINT_URL_KINESIS": moto_server,
            "FRAUD_STREAM": "txns",
            "FRAUD_BUCKET": "bkt",
            "FRAUD_TOPIC_ARN": topic,
            "REDIS_URL": redis_url,
            "FRAUD_JAVA": str(java),
            "FRAUD_PROPERTIES_OUT": str(tmp_path / "kcl.properties"),
        }
    )
    return env


def worker(env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "consumer.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, time.monotonic() - started


def jvm_started(env: dict[str, str]) -> bool:
    return (Path(env["FRAUD_JAVA"]).parent / "jvm-started").exists()


def test_a_sound_worker_passes_the_checks_and_execs_the_daemon(worker_env: dict[str, str]) -> None:
    result, _ = worker(worker_env)
    assert result.returncode == 0, result.stderr
    assert jvm_started(worker_env)
    assert "warning" not in result.stderr


@pytest.mark.parametrize(
    ("change", "code", "named"),
    [
        ({"FRAUD_BUCKET": "missing-bucket"}, 69, "FRAUD_BUCKET: bucket 'missing-bucket' does not"),
        (
            {"FRAUD_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:missing"},
            69,
            "FRAUD_TOPIC_ARN: topic arn:aws:sns:us-east-1:123456789012:missing does not exist",
        ),
        ({"FRAUD_STREAM": "missing-stream"}, 69, "FRAUD_STREAM: stream 'missing-stream' does not"),
        ({"REDIS_URL": "redis://127.0.0.1:{closed}/0"}, 69, "REDIS_URL: cannot reach Redis at"),
        ({"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:{closed}"}, 69, "FRAUD_BUCKET: cannot reach S3"),
        ({"FRAUD_RULE_SPEEDING_THRESHOLD": "5"}, 78, "FRAUD_RULE_SPEEDING_THRESHOLD: unknown rule"),
        ({"FRAUD_RULE_HIGH_AMOUNT_THRESHOLD": "-10"}, 78, "FRAUD_RULE_HIGH_AMOUNT_THRESHOLD: must"),
        ({"FRAUD_RULES_FILE": "/nonexistent/rules.toml"}, 78, "FRAUD_RULES_FILE: cannot read"),
        ({"FRAUD_ALERT_SEVERTY": "low"}, 78, "did you mean FRAUD_ALERT_SEVERITY"),
        ({"FRAUD_STREAM": ""}, 78, "FRAUD_STREAM: required but not set"),
        ({"REDIS_URL": "http://cache:6379"}, 78, "REDIS_URL: must start with redis://"),
    ],
)
def test_the_worker_stops_before_the_jvm_naming_the_problem(
    worker_env: dict[str, str], change: dict[str, str], code: int, named: str
) -> None:
    port = str(closed_port())
    env = {**worker_env, **{k: v.replace("{closed}", port) for k, v in change.items()}}
    result, elapsed = worker(env)
    assert result.returncode == code, result.stderr
    assert named in result.stderr
    assert not jvm_started(env)
    assert elapsed < 20  # seconds, not the minutes of a retry loop


def test_a_malformed_rules_file_stops_the_worker(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text("[rules.velocity]\nmax_count = 'three'\n")
    result, _ = worker({**worker_env, "FRAUD_RULES_FILE": str(rules)})
    assert result.returncode == 78
    assert f"{rules}: rules.velocity.max_count: must be a whole number" in result.stderr
    assert not jvm_started(worker_env)


def test_unknown_keys_warn_and_no_preflight_skips_the_checks(worker_env: dict[str, str]) -> None:
    env = {**worker_env, "FRAUD_TEAM": "payments", "FRAUD_BUCKET": "missing-bucket"}
    result = subprocess.run(
        [sys.executable, "-m", "consumer.cli", "worker", "--no-preflight"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "fraudstream: warning: FRAUD_TEAM: unknown setting, ignored" in result.stderr
    assert jvm_started(env)


@pytest.mark.parametrize(
    ("key", "typo"),
    [
        ("FRAUD_BUCKTE", True),  # swapped
        ("FRAUD_BUCKT", True),  # deleted
        ("FRAUD_BUCKETT", True),  # inserted
        ("FRAUD_BUCKEX", True),  # replaced
        ("FRAUD_BUKCETS", False),  # two typos
        ("FRAUD_TEAM", False),
        ("FRAUD_FUZZ_EXAMPLES", False),
    ],
)
def test_what_counts_as_one_typo(key: str, typo: bool) -> None:
    if typo:
        with pytest.raises(ConfigError, match="did you mean FRAUD_BUCKET"):
            check_environment({key: "x"})
    else:
        assert check_environment({key: "x"}) == [f"{key}: unknown setting, ignored"]


# -- the rule set: refused at start, with and without a last good version (issue #19) ----------


def _moto_s3(env: dict[str, str]) -> Any:
    return boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


BROKEN_RULESET = b"version: bad-2\nrules: {high_amount: {threshold: -5}}\n"


def test_a_refused_rule_set_never_accepted_stops_the_worker_with_exit_78(
    worker_env: dict[str, str],
) -> None:
    _moto_s3(worker_env).put_object(Bucket="bkt", Key="never/live.yaml", Body=BROKEN_RULESET)
    env = {**worker_env, "FRAUD_RULESET": "s3://bkt/never/live.yaml"}
    result, elapsed = worker(env)
    assert result.returncode == 78, result.stderr
    said = "fraudstream: configuration error: FRAUD_RULESET: s3://bkt/never/live.yaml refused: "
    assert said in result.stderr
    assert "threshold" in result.stderr
    assert "no version was ever accepted (s3://bkt/never/live.yaml.last-good.json: none stored" in (
        result.stderr
    )
    assert not jvm_started(env)
    assert elapsed < 20


def test_a_refused_rule_set_with_a_last_good_version_starts_the_worker_with_a_warning(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    from consumer.reload.rulesets import FileFetcher, RuleSetSource, S3LastGoodStore

    s3 = _moto_s3(worker_env)
    good = tmp_path / "good.yaml"
    good.write_text('version: "good-1"\nrules: {high_amount: {threshold: "5000"}}\n')
    # A worker of the fleet accepted good-1 earlier and kept it beside the published key.
    store = S3LastGoodStore(s3, "bkt", "kept/live.yaml.last-good.json")
    RuleSetSource(FileFetcher(str(good)), 30, last_good=store, accepted_by="worker-7")
    s3.put_object(Bucket="bkt", Key="kept/live.yaml", Body=BROKEN_RULESET)
    env = {**worker_env, "FRAUD_RULESET": "s3://bkt/kept/live.yaml"}
    result, _ = worker(env)
    assert result.returncode == 0, result.stderr
    assert jvm_started(env)
    assert "fraudstream: warning: FRAUD_RULESET: s3://bkt/kept/live.yaml refused: " in result.stderr
    assert "the processors start with the last good version 'good-1'" in result.stderr
    assert "by worker-7) from s3://bkt/kept/live.yaml.last-good.json" in result.stderr
