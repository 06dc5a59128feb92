"""Metrics as Embedded Metric Format lines: the same numbers as PutMetricData, within EMF's limits.

Both paths start from one aggregate (`to_datums`); these tests read the EMF lines back the way
CloudWatch Logs extracts them and compare with the API path's data points.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from consumer.infra import emf
from consumer.infra.cloudwatch import ALWAYS_SENT, CloudWatchPublisher, to_datums
from consumer.infra.logs import SHARED_KEYS, configure_logging
from consumer.infra.metrics import Metrics
from consumer.settings.config import MetricsConfig, load_settings

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CONTRACT = Path(__file__).resolve().parents[3] / "docs" / "metrics.md"
UNITS = {"Count", "Milliseconds", "None"}


def everything() -> dict[str, float]:
    """An aggregate that produces every metric of the contract, durations and histogram too."""
    metrics = Metrics()
    counts = {
        "records.judged": 90,
        "records.flagged": 7,
        "flagged.rule.high_amount": 5,
        "flagged.rule.velocity": 3,
        "flagged.severity.high": 6,
        "records.invalid": 4,
        "records.internal_error": 1,
        "s3_dead_letters.lines": 6,
        "records.duplicate": 2,
        "alerts.sent": 6,
        "alerts.failed_entries": 3,
        "s3_flagged.objects": 2,
        "gave_up.sns_alerts": 1,
        "checkpoints": 5,
        "shadow.rule.velocity": 2,
        "rule_errors.velocity": 1,
        "ruleset.refused": 1,
        "ruleset.last_good_in_use": 1,
        "model.refused": 1,
        "state.cache_evicted": 3,
        "records.alerted": 4,
        "model.scored": 60,
        "labels.applied": 9,
        "labels.files_applied": 1,
        "labels.lines_rejected": 2,
        "labels.pickup_failures": 1,
    }
    metrics.incr_many(counts)
    metrics.incr_many({f"model.score.{point}": 1 + point % 3 for point in range(0, 100, 7)})
    for millis in (2.0, 0.25, 7.5, 1.125):
        metrics.observe_ms("redis.load", millis)
    metrics.observe_ms("redis.save", 3.0)
    for millis in (100, 300):
        metrics.observe_ms("batch.total", millis)
    metrics.observe_ms("s3.flush", 40)
    metrics.observe_ms("kcl.millis_behind_latest", 0)
    metrics.observe_ms("kcl.millis_behind_latest", 0)
    metrics.observe_ms("kcl.millis_behind_latest", 86_400_000)
    return metrics.snapshot_and_reset()


def extract(documents: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """What CloudWatch Logs extracts: (metric, dimensions) -> unit and every value, documents of
    the same metric added up (a histogram split over two)."""
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for document in documents:
        aws = document["_aws"]
        assert aws["Timestamp"] == int(AT.timestamp() * 1000)
        [directive] = aws["CloudWatchMetrics"]
        assert directive["Namespace"] == "Ns"
        [dimension_names] = directive["Dimensions"]
        assert 1 <= len(dimension_names) <= emf.MAX_DIMENSIONS
        assert len(directive["Metrics"]) <= emf.MAX_METRICS
        dims = tuple((name, document[name]) for name in dimension_names)
        assert all(isinstance(value, str) for _, value in dims)
        for metric in directive["Metrics"]:
            assert metric["Unit"] in UNITS
            value = document[metric["Name"]]
            entry = found.setdefault(
                (metric["Name"], dims), {"Unit": metric["Unit"], "Values": [], "Counts": []}
            )
            assert entry["Unit"] == metric["Unit"]
            if isinstance(value, dict):
                assert len(value["Values"]) == len(value["Counts"]) <= emf.MAX_VALUES
                entry["Values"] += value["Values"]
                entry["Counts"] += value["Counts"]
            else:
                assert isinstance(value, float)
                entry["Values"].append(value)
                entry["Counts"].append(1.0)
    return found


def api_points(datums: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {
        (d["MetricName"], tuple((x["Name"], x["Value"]) for x in d["Dimensions"])): d
        for d in datums
    }


def assert_same_numbers(datums: list[dict[str, Any]], documents: list[dict[str, Any]]) -> None:
    extracted = extract(documents)
    points = api_points(datums)
    assert len(points) == len(datums)  # one point per metric and dimension set
    assert set(extracted) == set(points)
    for key, datum in points.items():
        got = extracted[key]
        assert got["Unit"] == datum["Unit"], key
        if "Value" in datum:
            assert (got["Values"], got["Counts"]) == ([datum["Value"]], [1.0]), key
        elif "StatisticValues" in datum:
            stats = datum["StatisticValues"]
            pairs = list(zip(got["Values"], got["Counts"], strict=True))
            assert sum(c for _, c in pairs) == stats["SampleCount"], key
            assert math.isclose(sum(v * c for v, c in pairs), stats["Sum"], rel_tol=1e-12), key
            assert min(got["Values"]) == stats["Minimum"], key
            assert max(got["Values"]) == stats["Maximum"], key
        else:
            assert (got["Values"], got["Counts"]) == (datum["Values"], datum["Counts"]), key


def test_every_metric_has_the_api_paths_numbers_units_and_dimensions() -> None:
    datums = to_datums(everything(), "app", AT)
    kinds = {("Value" in d, "StatisticValues" in d, "Values" in d) for d in datums}
    assert len(kinds) == 3  # counts, durations and the score histogram all covered
    documents = emf.documents(datums, "Ns", AT)
    assert_same_numbers(datums, documents)
    # one document per dimension set: Application; Rule=high_amount; Rule=velocity; ...
    dimension_sets = [tuple(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) for d in documents]
    assert dimension_sets.count(("Application",)) == 1
    rule_velocity = next(d for d in documents if d.get("Rule") == "velocity")
    assert {"FlaggedByRule", "ShadowHitsByRule", "RuleErrors"} <= set(rule_velocity)


def test_the_contract_names_are_the_ones_written() -> None:
    published = {
        key[0] for key in extract(emf.documents(to_datums(everything(), "a", AT), "Ns", AT))
    }
    table = [line for line in CONTRACT.read_text().splitlines() if line.startswith("| ")]
    documented = {line.split("|")[1].strip() for line in table[1:]}
    assert published == documented


@pytest.mark.parametrize(
    "stats",
    [
        {"SampleCount": 1, "Sum": 4.5, "Minimum": 4.5, "Maximum": 4.5},
        {"SampleCount": 2, "Sum": 10.0, "Minimum": 2.5, "Maximum": 7.5},
        {"SampleCount": 3, "Sum": 9.75, "Minimum": 0.25, "Maximum": 7.5},
        {"SampleCount": 5000, "Sum": 5000.0, "Minimum": 1.0, "Maximum": 1.0},
        {"SampleCount": 4, "Sum": 8.0, "Minimum": 1.0, "Maximum": 5.0},  # the rest at the min
        {"SampleCount": 7, "Sum": 86_400_000.0, "Minimum": 0.0, "Maximum": 86_400_000.0},
        {"SampleCount": 123_457, "Sum": 1_000_003.375, "Minimum": 0.001, "Maximum": 912.5},
    ],
)
def test_a_durations_distribution_keeps_its_four_statistics(stats: dict[str, float]) -> None:
    datum: dict[str, Any] = {"MetricName": "RedisLatency", "Unit": "Milliseconds"}
    datum["StatisticValues"] = stats
    datum["Dimensions"] = [{"Name": "Application", "Value": "app"}]
    assert_same_numbers([datum], emf.documents([datum], "Ns", AT))


def test_limits_more_than_100_metrics_and_a_101_value_histogram() -> None:
    app = [{"Name": "Application", "Value": "app"}]
    datums: list[dict[str, Any]] = [
        {"MetricName": f"M{n}", "Dimensions": app, "Value": float(n), "Unit": "Count"}
        for n in range(250)
    ]
    datums.append(
        {
            "MetricName": "ModelScore",
            "Dimensions": app,
            "Values": [float(v) for v in range(101)],
            "Counts": [float(v % 4 + 1) for v in range(101)],
            "Unit": "None",
        }
    )
    documents = emf.documents(datums, "Ns", AT)
    sizes = [len(d["_aws"]["CloudWatchMetrics"][0]["Metrics"]) for d in documents]
    assert sizes == [100, 100, 51, 1]  # the histogram's 101st value in a document of its own
    assert_same_numbers(datums, documents)
    too_many = [{"Name": f"D{n}", "Value": "x"} for n in range(31)]
    with pytest.raises(ValueError, match="30 dimensions"):
        emf.documents([{"MetricName": "M", "Dimensions": too_many, "Value": 1.0}], "Ns", AT)


def test_many_rules_are_one_small_document_each() -> None:
    aggregate = {f"flagged.rule.r{n}": 1.0 for n in range(500)}
    datums = to_datums(aggregate, "app", AT)
    documents = emf.documents(datums, "Ns", AT)
    assert len(documents) == 501
    assert_same_numbers(datums, documents)
    assert max(len(json.dumps(d)) for d in documents) < 16_000  # one docker log message each


@pytest.fixture
def stderr_lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging("error", stream=out, component="processor")  # EMF is written regardless
    yield out
    configure_logging("warning")


class NoApi:
    def put_metric_data(self, **_: Any) -> None:
        raise AssertionError("the EMF path never calls PutMetricData")


def test_the_emf_publisher_writes_log_lines_and_makes_no_call(stderr_lines: io.StringIO) -> None:
    metrics = Metrics()
    config = MetricsConfig(mode="emf", namespace="Ns", application="app", interval_s=3600)
    shipper = CloudWatchPublisher(NoApi(), config, metrics, now=lambda: AT)
    metrics.subscribe(shipper.add)
    metrics.incr_many({"records.judged": 12, "flagged.rule.velocity": 2})
    metrics.observe_ms("batch.total", 5.0)
    metrics.snapshot_and_reset()
    sent = shipper.publish(heartbeat=True)
    lines = [json.loads(line) for line in stderr_lines.getvalue().splitlines()]
    assert len(lines) == 2 == shipper.lines and shipper.calls == 0
    for line in lines:
        assert set(SHARED_KEYS) <= set(line) and line["event"] == emf.EVENT
        assert line["level"] == "info" and line["logger"] == "consumer.infra.emf"
    documents = [{k: v for k, v in line.items() if k not in SHARED_KEYS} for line in lines]
    for document in documents:
        document.pop("component")
    datums = to_datums(
        {"records.judged": 12, "flagged.rule.velocity": 2} | shipper_seen(), "app", AT
    )
    assert sent == len(datums)
    assert_same_numbers(datums, documents)
    assert extract(documents)[("RecordsJudged", (("Application", "app"),))]["Values"] == [12.0]
    assert {key[0] for key in extract(documents)} >= set(ALWAYS_SENT)


def shipper_seen() -> dict[str, float]:
    return {
        "batch.total.count": 1,
        "batch.total.total_ms": 5.0,
        "batch.total.min_ms": 5.0,
        "batch.total.max_ms": 5.0,
    }


def test_the_mode_setting() -> None:
    base = {
        "FRAUD_BUCKET": "b",
        "FRAUD_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t",
        "REDIS_URL": "redis://h",
    }
    assert load_settings(base).metrics.mode == "api"
    assert load_settings(base | {"FRAUD_METRICS_MODE": "EMF"}).metrics.mode == "emf"
    with pytest.raises(Exception, match="FRAUD_METRICS_MODE"):
        load_settings(base | {"FRAUD_METRICS_MODE": "statsd"})
