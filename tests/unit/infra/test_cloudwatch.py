"""The CloudWatch publisher: counters mapped to the contract names, added up, sent in few calls."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from consumer.infra.cloudwatch import ALWAYS_SENT, CloudWatchPublisher, merge, to_datums
from consumer.infra.metrics import Metrics
from consumer.settings.config import MetricsConfig

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CONTRACT = Path(__file__).resolve().parents[3] / "docs" / "metrics.md"


def by_key(datums: list[dict[str, Any]]) -> dict[tuple[str, ...], dict[str, Any]]:
    """(metric, extra dimension value...) -> datum."""
    keyed = {}
    for datum in datums:
        assert datum["Dimensions"][0] == {"Name": "Application", "Value": "app"}
        extra = tuple(d["Value"] for d in datum["Dimensions"][1:])
        keyed[(datum["MetricName"], *extra)] = datum
    return keyed


def test_counters_map_to_the_contract_names_and_dimensions() -> None:
    aggregate = {
        "records.judged": 90,
        "records.flagged": 7,
        "flagged.rule.high_amount": 5,
        "flagged.rule.velocity": 3,
        "flagged.severity.high": 6,
        "flagged.severity.low": 1,
        "records.invalid": 4,
        "records.internal_error": 1,
        "s3_dead_letters.lines": 6,
        "records.duplicate": 2,
        "alerts.sent": 6,
        "alerts.failed_entries": 3,
        "s3_flagged.objects": 2,
        "s3_dead_letters.objects": 1,
        "gave_up.sns_alerts": 1,
        "gave_up.redis_save": 1,
        "gave_up.redis_load": 1,
        "gave_up.checkpoint": 1,
        "checkpoints": 5,
        "retries.s3_flagged": 9,  # not in the contract: not sent
    }
    datums = by_key(to_datums(aggregate, "app", AT))
    values = {key: d["Value"] for key, d in datums.items() if "Value" in d}
    assert values == {
        ("RecordsJudged",): 90,
        ("RecordsFlagged",): 7,
        ("FlaggedByRule", "high_amount"): 5,
        ("FlaggedByRule", "velocity"): 3,
        ("FlaggedBySeverity", "high"): 6,
        ("FlaggedBySeverity", "low"): 1,
        ("RecordsInvalid",): 4,
        ("DeadLetters",): 6,
        ("RecordsDuplicate",): 2,
        ("AlertsSent",): 6,
        ("AlertsFailed",): 3,
        ("S3Flushes",): 3,
        # one internal error + four give-ups (the checkpoint's included)
        ("ProcessingErrors",): 5,
        ("OutputGiveUps", "sns"): 1,
        ("OutputGiveUps", "redis"): 2,
        ("OutputGiveUps", "checkpoint"): 1,
        ("Checkpoints",): 5,
    }
    assert {d["Unit"] for d in datums.values()} == {"Count"}
    assert all(d["Timestamp"] == AT for d in datums.values())
    dims = {d["Dimensions"][1]["Name"] for d in datums.values() if len(d["Dimensions"]) > 1}
    assert dims == {"Rule", "Severity", "Output"}


def test_rule_errors_are_counted_by_rule_apart_from_processing_errors() -> None:
    """A rule that raised on a record (the record still judged by the others): RuleErrors by
    Rule, the pipeline's counter; not a ProcessingError (nothing was lost)."""
    from consumer.batch import pipeline

    assert pipeline.RULE_ERRORS == "rule_errors."
    aggregate = {"rule_errors.big_spender": 3, "rule_errors.velocity": 1, "rule_errors.x": 0}
    datums = by_key(to_datums(aggregate, "app", AT))
    assert datums[("RuleErrors", "big_spender")]["Value"] == 3
    assert datums[("RuleErrors", "velocity")]["Value"] == 1
    assert datums[("RuleErrors", "big_spender")]["Dimensions"][1]["Name"] == "Rule"
    assert datums[("RuleErrors", "big_spender")]["Unit"] == "Count"
    assert datums[("ProcessingErrors",)]["Value"] == 0


def test_durations_are_statistic_values_and_redis_load_and_save_are_one_metric() -> None:
    metrics = Metrics()
    for millis in (2.0, 0.25):
        metrics.observe_ms("redis.load", millis)
    metrics.observe_ms("redis.save", 7.5)
    for millis in (100, 300):
        metrics.observe_ms("batch.total", millis)
    metrics.observe_ms("kcl.millis_behind_latest", 0)
    metrics.observe_ms("kcl.millis_behind_latest", 86_400_000)
    metrics.observe_ms("s3.flush", 40)
    datums = by_key(to_datums(metrics.snapshot_and_reset(), "app", AT))
    stats = {key[0]: d["StatisticValues"] for key, d in datums.items() if "StatisticValues" in d}
    assert stats == {
        "RedisLatency": {"SampleCount": 3, "Sum": 9.75, "Minimum": 0.25, "Maximum": 7.5},
        "BatchProcessingTime": {"SampleCount": 2, "Sum": 400, "Minimum": 100, "Maximum": 300},
        "MillisBehindLatest": {
            "SampleCount": 2,
            "Sum": 86_400_000,
            "Minimum": 0,
            "Maximum": 86_400_000,
        },
        "S3FlushLatency": {"SampleCount": 1, "Sum": 40, "Minimum": 40, "Maximum": 40},
    }
    assert {datums[(name,)]["Unit"] for name in stats} == {"Milliseconds"}


def test_an_empty_interval_still_reports_zero_counts_and_no_durations() -> None:
    datums = to_datums({}, "app", AT)
    assert sorted(d["MetricName"] for d in datums) == sorted(ALWAYS_SENT)
    assert {d["Value"] for d in datums} == {0.0}


def test_the_contract_names_are_the_ones_published() -> None:
    """Every name the dashboard and alarms may use (docs/metrics.md) can be produced here."""
    aggregate: dict[str, float] = {"flagged.rule.x": 1, "flagged.severity.high": 1}
    aggregate |= {"shadow.rule.watch": 1, "ruleset.refused": 1, "model.refused": 1}
    aggregate |= {"rule_errors.watch": 1, "ruleset.last_good_in_use": 1}
    aggregate |= {"state.cache_evicted": 1}
    aggregate |= {"records.alerted": 1, "model.scored": 1, "model.score.42": 1}
    aggregate |= {"labels.applied": 1, "labels.files_applied": 1, "labels.lines_rejected": 1}
    aggregate |= {"labels.pickup_failures": 1}
    aggregate |= {"gave_up.s3_flagged": 1}
    for source in ("batch.total", "s3.flush", "redis.load", "kcl.millis_behind_latest"):
        aggregate |= {f"{source}.count": 1, f"{source}.total_ms": 1}
    published = {d["MetricName"] for d in to_datums(aggregate, "app", AT)}
    table = [line for line in CONTRACT.read_text().splitlines() if line.startswith("| ")]
    documented = {line.split("|")[1].strip() for line in table[1:]}
    assert published == documented


def test_snapshots_add_up_with_minima_and_maxima_kept() -> None:
    total: dict[str, float] = {}
    merge(total, {"a": 1, "x.count": 1, "x.total_ms": 5, "x.min_ms": 5, "x.max_ms": 5})
    merge(total, {"a": 2, "x.count": 2, "x.total_ms": 4, "x.min_ms": 1, "x.max_ms": 3})
    assert total == {"a": 3, "x.count": 3, "x.total_ms": 9, "x.min_ms": 1, "x.max_ms": 5}


def test_observe_ms_is_exact_under_concurrent_writers() -> None:
    """Alerts are published from a thread pool: without the lock, updates get lost."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, to expose a race
    metrics = Metrics()

    def observe() -> None:
        for i in range(2000):
            metrics.observe_ms("d", 1 + i % 7)

    threads = [threading.Thread(target=observe) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous)
    snapshot = metrics.snapshot_and_reset()
    assert snapshot["d.count"] == 16_000
    assert snapshot["d.min_ms"] == 1 and snapshot["d.max_ms"] == 7
    assert snapshot["d.total_ms"] == 8 * sum(1 + i % 7 for i in range(2000))


class RecordingCloudWatch:
    def __init__(self, fail_with: str | None = None, failures: int = 0) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.fail_with = fail_with
        self.failures = failures

    def put_metric_data(self, Namespace: str, MetricData: list[dict[str, Any]]) -> None:
        self.calls.append(MetricData)
        assert Namespace == "Ns"
        if self.fail_with and self.failures > 0:
            self.failures -= 1
            raise ClientError({"Error": {"Code": self.fail_with, "Message": "no"}}, "PutMetricData")


def publisher(client: Any, metrics: Metrics, **kwargs: Any) -> CloudWatchPublisher:
    config = MetricsConfig(namespace="Ns", application="app", interval_s=3600)
    return CloudWatchPublisher(client, config, metrics, now=lambda: AT, max_wait_s=0.01, **kwargs)


def test_many_snapshots_are_one_call_per_interval() -> None:
    metrics, client = Metrics(), RecordingCloudWatch()
    shipper = publisher(client, metrics)
    metrics.subscribe(shipper.add)
    for _ in range(50):  # e.g. one snapshot per commit
        metrics.incr("records.judged", 10)
        metrics.snapshot_and_reset()
    metrics.incr("records.judged", 1)  # not yet in a snapshot: publish takes it
    assert shipper.publish(heartbeat=True) > 0
    [call] = client.calls
    judged = [d for d in call if d["MetricName"] == "RecordsJudged"]
    assert [d["Value"] for d in judged] == [501]
    assert shipper.flush() == 0 and len(client.calls) == 1  # nothing pending: no call


def test_more_than_1000_data_points_go_in_calls_of_at_most_1000() -> None:
    metrics, client = Metrics(), RecordingCloudWatch()
    shipper = publisher(client, metrics)
    metrics.subscribe(shipper.add)
    for rule in range(2500):
        metrics.incr(f"flagged.rule.r{rule}")
    sent = shipper.flush()
    assert sent == 2500 + len(ALWAYS_SENT)
    assert [len(call) for call in client.calls] == [1000, 1000, 500 + len(ALWAYS_SENT)]


def test_transient_failures_are_retried_a_bounded_number_of_times() -> None:
    metrics = Metrics()
    client = RecordingCloudWatch("Throttling", failures=2)
    shipper = publisher(client, metrics)
    metrics.subscribe(shipper.add)
    metrics.incr("records.judged", 3)
    assert shipper.flush() == len(ALWAYS_SENT)
    assert len(client.calls) == 3


def test_a_give_up_drops_the_interval_is_counted_and_never_raises() -> None:
    metrics = Metrics()
    client = RecordingCloudWatch("Throttling", failures=100)
    shipper = publisher(client, metrics, attempts=3)
    metrics.subscribe(shipper.add)
    metrics.incr("records.judged", 3)
    assert shipper.flush() == 0
    assert len(client.calls) == 3  # bounded
    assert metrics.snapshot_and_reset()["metrics.dropped_datums"] == len(ALWAYS_SENT)
    # The next interval starts afresh: what was dropped is not sent twice.
    client.failures = 0
    metrics.incr("records.judged", 1)
    shipper.flush()
    [judged] = [d["Value"] for d in client.calls[-1] if d["MetricName"] == "RecordsJudged"]
    assert judged == 1


def test_access_denied_is_not_retried() -> None:
    metrics = Metrics()
    client = RecordingCloudWatch("AccessDenied", failures=100)
    shipper = publisher(client, metrics)
    metrics.subscribe(shipper.add)
    metrics.incr("records.judged")
    assert shipper.flush() == 0
    assert len(client.calls) == 1


@pytest.fixture
def cloudwatch() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("cloudwatch", region_name="us-east-1")


def statistics(cloudwatch: Any, metric: str, **dimensions: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    dims = [{"Name": "Application", "Value": "app"}]
    dims += [{"Name": k, "Value": v} for k, v in dimensions.items()]
    points = cloudwatch.get_metric_statistics(
        Namespace="Ns",
        MetricName=metric,
        Dimensions=dims,
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=10),
        Period=60,
        Statistics=["Sum", "Maximum", "SampleCount"],
    )["Datapoints"]
    return list(points)


def test_the_background_thread_publishes_each_interval_to_cloudwatch(cloudwatch: Any) -> None:
    metrics = Metrics()
    config = MetricsConfig(namespace="Ns", application="app", interval_s=1)
    shipper = CloudWatchPublisher(cloudwatch, config, metrics)
    shipper.start()
    try:
        metrics.incr("records.judged", 7)
        metrics.observe_ms("redis.save", 1.5)
        deadline = time.monotonic() + 10
        while not statistics(cloudwatch, "RedisLatency") and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        shipper.close()
    assert sum(p["Sum"] for p in statistics(cloudwatch, "RecordsJudged")) == 7
    [latency] = statistics(cloudwatch, "RedisLatency")
    assert (latency["SampleCount"], latency["Maximum"]) == (1, 1.5)
