"""The rule set in force: versions on every line, hot reload, refusals, shadow rules."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from moto import mock_aws

from consumer.batch.pipeline import BatchPipeline
from consumer.infra.metrics import METRICS
from consumer.reload.rulesets import (
    FileFetcher,
    RuleSetSource,
    S3Fetcher,
    builtin_ruleset,
)
from consumer.rules.config import RulesConfig
from consumer.settings.config import ConfigError, Settings, StateConfig, load_settings
from consumer.state.store import AccountStateStore
from consumer.worker.wiring import pipeline_settings, ruleset_source
from tests.support.fakes import CollectingAlerts, CollectingBatch, ManualClock

BASE_MS = 1_795_910_400_000


def ruleset_text(version: str, threshold: str = "10000", custom: str = "[]") -> str:
    return (
        f'version: "{version}"\n'
        "rules:\n"
        "  high_amount:\n"
        f'    threshold: "{threshold}"\n'
        f"custom: {custom}\n"
    )


def write(path: Path, text: str) -> None:
    path.write_text(text)
    # A new mtime for every write, even within the file system's timestamp resolution.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    write(path, ruleset_text("v1"))
    return path


def test_builtin_versions_name_the_thresholds() -> None:
    assert builtin_ruleset(RulesConfig()).version == "builtin"
    lowered = builtin_ruleset(RulesConfig(high_amount_threshold=Decimal(500)))
    assert lowered.version.startswith("builtin-")
    assert (
        lowered.version == builtin_ruleset(RulesConfig(high_amount_threshold=Decimal(500))).version
    )
    assert (
        lowered.version != builtin_ruleset(RulesConfig(high_amount_threshold=Decimal(501))).version
    )


def test_a_new_version_takes_effect_at_the_first_check_after_the_interval(rules_file: Path) -> None:
    clock = ManualClock()
    source = RuleSetSource(FileFetcher(str(rules_file)), check_every_s=30, clock=clock)
    assert source.current().version == "v1"
    write(rules_file, ruleset_text("v2", threshold="500"))
    clock.now = 29
    assert source.current().version == "v1"  # not checked yet
    clock.now = 31
    current = source.current()
    assert current.version == "v2"
    assert current.config.high_amount_threshold == Decimal(500)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("version: v2\nrules: {high_amount: {threshold: -1}}\n", "threshold"),
        (
            "version: v2\n"
            "custom: [{id: r, description: d, severity: high, when: 'amount > chanel'}]\n",
            "chanel",
        ),
        ("not: [valid", "rules.yaml"),
        (ruleset_text("v1", threshold="500"), "version is still 'v1'"),
    ],
)
def test_a_broken_or_unusable_version_is_refused_and_the_old_one_stays(
    rules_file: Path, text: str, why: str
) -> None:
    clock = ManualClock()
    source = RuleSetSource(FileFetcher(str(rules_file)), check_every_s=1, clock=clock)
    METRICS.snapshot_and_reset()
    write(rules_file, text)
    clock.now = 2
    assert source.current().version == "v1"
    assert source.current().config.high_amount_threshold == Decimal(10000)
    clock.now = 4
    source.current()  # the same bad version is not reported again
    counts = METRICS.snapshot_and_reset()
    assert counts["ruleset.refused"] == 1
    assert source.last_refusal is not None and why in source.last_refusal


def test_a_version_with_country_features_is_applied(rules_file: Path) -> None:
    # The state store keeps countries (consumer/state/store.py), so these rules are no longer
    # refused.
    clock = ManualClock()
    source = RuleSetSource(FileFetcher(str(rules_file)), check_every_s=1, clock=clock)
    when = "new_country and distinct_countries_1h >= 2"
    write(
        rules_file,
        ruleset_text("v2", custom=f"[{{id: r, description: d, severity: high, when: '{when}'}}]"),
    )
    clock.now = 2
    current = source.current()
    assert current.version == "v2"
    assert current.history_needs == frozenset({"countries"})
    assert source.last_refusal is None


def test_a_version_needing_more_history_than_kept_is_refused(rules_file: Path) -> None:
    clock = ManualClock()
    source = RuleSetSource(
        FileFetcher(str(rules_file)), check_every_s=1, max_horizon_s=Decimal(3600), clock=clock
    )
    write(
        rules_file,
        ruleset_text(
            "v2", custom="[{id: r, description: d, severity: low, when: 'txn_count_24h > 5'}]"
        ),
    )
    clock.now = 2
    assert source.current().version == "v1"


def test_an_unreadable_source_keeps_the_version_in_force(rules_file: Path) -> None:
    clock = ManualClock()
    source = RuleSetSource(FileFetcher(str(rules_file)), check_every_s=1, clock=clock)
    rules_file.unlink()
    clock.now = 2
    assert source.current().version == "v1"


def test_an_s3_rule_set_is_fetched_again_only_when_its_etag_changes() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="rules")
        s3.put_object(Bucket="rules", Key="live.yaml", Body=ruleset_text("s3-1").encode())
        calls: list[dict[str, Any]] = []
        real_get = s3.get_object

        def counting_get(**kwargs: Any) -> Any:
            calls.append(kwargs)
            return real_get(**kwargs)

        s3.get_object = counting_get
        clock = ManualClock()
        source = RuleSetSource(S3Fetcher(s3, "rules", "live.yaml"), check_every_s=1, clock=clock)
        assert source.current().version == "s3-1"
        clock.now = 2
        assert source.current().version == "s3-1"
        assert "IfNoneMatch" in calls[-1]
        s3.put_object(Bucket="rules", Key="live.yaml", Body=ruleset_text("s3-2", "700").encode())
        clock.now = 4
        assert source.current().version == "s3-2"


def test_fraud_ruleset_excludes_the_older_rule_settings() -> None:
    env = {
        "FRAUD_BUCKET": "b",
        "FRAUD_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t",
        "FRAUD_RULESET": "rules.yaml",
        "FRAUD_RULE_HIGH_AMOUNT_THRESHOLD": "500",
    }
    with pytest.raises(ConfigError, match=r"FRAUD_RULESET.*FRAUD_RULE_HIGH_AMOUNT_THRESHOLD"):
        load_settings(env)
    del env["FRAUD_RULE_HIGH_AMOUNT_THRESHOLD"]
    env["FRAUD_RULESET"] = "rules.txt"
    with pytest.raises(ConfigError, match="FRAUD_RULESET"):
        load_settings(env)
    env["FRAUD_RULESET"] = "s3://bucket-only"
    with pytest.raises(ConfigError, match="FRAUD_RULESET"):
        load_settings(env)


@dataclass
class Record:
    binary_data: bytes
    sequence_number: str
    sub_sequence_number: int = 0
    timestamp_millis: int = BASE_MS

    @property
    def data(self) -> str:
        return self.binary_data.decode()


def record(n: int, amount: str, channel: str = "online") -> Record:
    body = {
        "transaction_id": f"t-{n}",
        "account_id": f"acct-{n}",
        "amount": 0,
        "timestamp": BASE_MS - 1000,
        "channel": channel,
    }
    text = json.dumps(body).replace('"amount": 0', f'"amount": {amount}')
    return Record(text.encode(), f"{n:056d}")


@pytest.fixture
def redis_conn_clean(redis_conn: redis.Redis) -> Iterator[redis.Redis]:
    redis_conn.flushall()
    yield redis_conn


def test_the_stream_judges_each_batch_with_the_version_in_force(
    rules_file: Path, redis_conn_clean: redis.Redis
) -> None:
    settings = Settings(
        bucket="b",
        topic_arn="arn:aws:sns:us-east-1:1:t",
        redis_url="",
        ruleset=str(rules_file),
        ruleset_check_s=0.0001,
    )
    rulesets = ruleset_source(settings, lambda: None)
    flagged, dead, shadow, alerts = (
        CollectingBatch(),
        CollectingBatch(),
        CollectingBatch(),
        CollectingAlerts(),
    )
    store = AccountStateStore(redis_conn_clean, StateConfig(), rulesets.max_horizon_s)
    pipeline = BatchPipeline(
        "shardId-0",
        pipeline_settings(settings),
        flagged,  # type: ignore[arg-type]
        dead,  # type: ignore[arg-type]
        alerts,  # type: ignore[arg-type]
        store,
        rulesets=rulesets,
        shadow=shadow,  # type: ignore[arg-type]
    )
    pipeline.process([record(1, "600"), record(2, "12000")])
    write(
        rules_file,
        ruleset_text(
            "v2",
            threshold="500",
            custom=(
                "[{id: atm_watch, description: watch, severity: high, shadow: true,"
                " when: 'channel == \"atm\"'}]"
            ),
        ),
    )
    pipeline.process([record(3, "600"), record(4, "20", channel="atm")])
    pipeline.settle_in_flight()

    assert [(line["transaction_id"], line["rules_version"]) for line in flagged.lines] == [
        ("t-2", "v1"),
        ("t-3", "v2"),
    ]
    # The shadow rule is written and counted, never flagged or alerted.
    assert [(line["transaction_id"], line["rules_version"]) for line in shadow.lines] == [
        ("t-4", "v2")
    ]
    assert shadow.lines[0]["reasons"][0]["rule"] == "atm_watch"
    assert shadow.lines[0]["flagged_by_live_rules"] is False
    assert sorted(a.transaction_id for a in alerts.sent) == ["t-2", "t-3"]
    assert all(json.loads(a.message)["rules_version"] in ("v1", "v2") for a in alerts.sent)


def test_the_audit_trail_holds_every_judged_transaction_flagged_or_not(
    redis_conn_clean: redis.Redis,
) -> None:
    settings = Settings(bucket="b", topic_arn="arn:aws:sns:us-east-1:1:t", redis_url="")
    flagged, dead, decisions = CollectingBatch(), CollectingBatch(), CollectingBatch()
    store = AccountStateStore(redis_conn_clean, StateConfig(), Decimal(90000))
    pipeline = BatchPipeline(
        "shardId-0",
        pipeline_settings(settings),
        flagged,  # type: ignore[arg-type]
        dead,  # type: ignore[arg-type]
        CollectingAlerts(),  # type: ignore[arg-type]
        store,
        decisions=decisions,  # type: ignore[arg-type]
    )
    duplicate = record(1, "600")
    pipeline.process([record(1, "600"), record(2, "12000"), Record(b"{bad", f"{3:056d}")])
    pipeline.process([Record(duplicate.binary_data, f"{4:056d}")])  # a producer retry
    pipeline.settle_in_flight()
    assert [(d["transaction_id"], d["flagged"], d["rules"]) for d in decisions.lines] == [
        ("t-1", False, []),
        ("t-2", True, ["high_amount"]),
    ]  # not the invalid record, not the duplicate: those are in the dead letters / counted
    assert {d["rules_version"] for d in decisions.lines} == {"builtin"}
    assert decisions.lines[1]["severity"] == "high"


class ReadCountingFetcher:
    """A FileFetcher that counts the reads that returned content (a GET that was not a 304)."""

    def __init__(self, path: Path) -> None:
        self.inner = FileFetcher(str(path))
        self.name = self.inner.name
        self.reads = 0

    def fetch(self, tag: str | None) -> Any:
        fetched = self.inner.fetch(tag)
        self.reads += fetched is not None
        return fetched


def test_a_refused_version_is_not_read_again_until_the_source_changes(rules_file: Path) -> None:
    clock = ManualClock()
    fetcher = ReadCountingFetcher(rules_file)
    source = RuleSetSource(fetcher, check_every_s=1, clock=clock)  # type: ignore[arg-type]
    assert fetcher.reads == 1  # the start-up read
    write(rules_file, "version: [not, a, rule set")
    for now in (2, 4, 6):
        clock.now = now
        assert source.current().version == "v1"
    assert fetcher.reads == 2  # the bad version, once
    write(rules_file, ruleset_text("v2"))  # fixed: read and applied at the next check
    clock.now = 8
    assert source.current().version == "v2"
    assert fetcher.reads == 3
    write(rules_file, "version: [broken, again")  # refused again after a good version
    clock.now = 10
    assert source.current().version == "v2"
    assert source.last_refusal is not None
