"""The model's score metrics as the CloudWatch publisher sends them (issue #21 item 6): the
per-point histogram becomes ten zero-filled bands and one Values/Counts distribution, and every
name is documented (docs/monitoring.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from consumer.infra.cloudwatch import (
    SCORE_BANDS,
    CloudWatchPublisher,
    merge,
    score_band,
    to_datums,
)
from consumer.infra.metrics import Metrics
from consumer.settings.config import MetricsConfig

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DOCS = Path(__file__).resolve().parents[3] / "docs"


def named(datums: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    return [d for d in datums if d["MetricName"] == metric]


def band_values(datums: list[dict[str, Any]]) -> dict[str, float]:
    return {d["Dimensions"][1]["Value"]: d["Value"] for d in named(datums, "ModelScoreBand")}


def test_bands_are_ten_points_wide_and_the_last_holds_100() -> None:
    assert SCORE_BANDS[0] == "00-10" and SCORE_BANDS[-1] == "90-100" and len(SCORE_BANDS) == 10
    assert [score_band(b) for b in (0, 9, 10, 19, 20, 89, 90, 99, 100)] == [
        "00-10",
        "00-10",
        "10-20",
        "10-20",
        "20-30",
        "80-90",
        "90-100",
        "90-100",
        "90-100",
    ]


def test_snapshots_add_up_per_point_and_per_band() -> None:
    total: dict[str, float] = {}
    merge(total, {"model.score.3": 2, "model.score.95": 1, "model.scored": 3})
    merge(total, {"model.score.3": 1, "model.score.12": 4, "model.scored": 5})
    datums = to_datums(total, "app", AT)
    assert band_values(datums) == dict.fromkeys(SCORE_BANDS, 0.0) | {
        "00-10": 3.0,
        "10-20": 4.0,
        "90-100": 1.0,
    }
    [scored] = named(datums, "ModelScored")
    assert scored["Value"] == 8.0 and scored["Unit"] == "Count"
    [distribution] = named(datums, "ModelScore")
    assert (distribution["Values"], distribution["Counts"]) == ([3.0, 12.0, 95.0], [3.0, 4.0, 1.0])
    assert distribution["Dimensions"] == [{"Name": "Application", "Value": "app"}]


def test_keys_that_are_not_a_point_0_to_100_are_not_sent() -> None:
    aggregate = {"model.score.x": 1, "model.score.101": 2, "model.score.-1": 3, "model.score.7": 0}
    datums = to_datums(aggregate, "app", AT)
    assert not named(datums, "ModelScore") and not named(datums, "ModelScoreBand")


def test_without_a_model_in_the_interval_no_band_is_sent() -> None:
    datums = to_datums({"records.judged": 5}, "app", AT)
    assert not named(datums, "ModelScoreBand") and not named(datums, "ModelScored")


def test_a_full_histogram_fits_one_datum() -> None:
    aggregate = {f"model.score.{n}": 1 for n in range(101)}
    [distribution] = named(to_datums(aggregate, "app", AT), "ModelScore")
    assert len(distribution["Values"]) == 101 <= 150  # PutMetricData's limit per datum


def test_every_new_metric_is_documented() -> None:
    aggregate = {"model.score.50": 1, "model.scored": 1, "records.alerted": 1}
    published = {d["MetricName"] for d in to_datums(aggregate, "app", AT)}
    new = published - {d["MetricName"] for d in to_datums({}, "app", AT)}
    assert new == {"ModelScore", "ModelScoreBand", "ModelScored", "RecordsAlerted"}
    table = [line for line in (DOCS / "monitoring.md").read_text().splitlines() if line[:2] == "| "]
    documented = {line.split("|")[1].strip() for line in table[1:]}
    assert new <= documented


@pytest.fixture
def cloudwatch() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("cloudwatch", region_name="us-east-1")


def test_the_distribution_and_bands_are_accepted_by_put_metric_data(cloudwatch: Any) -> None:
    metrics = Metrics()
    config = MetricsConfig(namespace="Ns", application="app", interval_s=3600)
    shipper = CloudWatchPublisher(cloudwatch, config, metrics)
    shipper.start()
    try:
        metrics.incr_many({"model.score.4": 6, "model.score.91": 2, "model.scored": 8})
        assert shipper.flush() > 0
    finally:
        shipper.close()
    now = datetime.now(UTC)

    def stats(metric: str, *extra: dict[str, str]) -> list[dict[str, Any]]:
        return list(
            cloudwatch.get_metric_statistics(
                Namespace="Ns",
                MetricName=metric,
                Dimensions=[{"Name": "Application", "Value": "app"}, *extra],
                StartTime=now - timedelta(minutes=10),
                EndTime=now + timedelta(minutes=10),
                Period=60,
                Statistics=["Sum", "SampleCount", "Maximum"],
            )["Datapoints"]
        )

    deadline = time.monotonic() + 5
    while not stats("ModelScored") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sum(p["Sum"] for p in stats("ModelScored")) == 8
    [high] = stats("ModelScoreBand", {"Name": "Band", "Value": "90-100"})
    assert high["Sum"] == 2
    [distribution] = stats("ModelScore")
    assert distribution["SampleCount"] == 8 and distribution["Maximum"] == 91
