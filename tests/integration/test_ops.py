"""`fraudstream status` and the CloudWatch metrics on the local stack: real daemon, real leases."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from consumer.infra.readback import last_sequence_per_shard, list_shards
from load_test.producer import Entry, send
from tests.integration.conftest import Stack, cli
from tests.integration.expectations import wait_for_checkpoints

pytestmark = pytest.mark.integration


def metric_sum(
    stack: Stack, metric: str, since: datetime | None = None, **dimensions: str
) -> float:
    """The sum of `metric` published since `since` (default: the last hour) in the moto
    server's CloudWatch."""
    now = datetime.now(UTC)
    since = since or now - timedelta(hours=1)
    dims = [{"Name": "Application", "Value": stack.env["FRAUD_APP_NAME"]}]
    dims += [{"Name": k, "Value": v} for k, v in dimensions.items()]
    points = stack.client("cloudwatch").get_metric_statistics(
        Namespace="Fraudstream",
        MetricName=metric,
        Dimensions=dims,
        StartTime=since,
        EndTime=now + timedelta(minutes=5),
        Period=3600 * 2,
        Statistics=["Sum"],
    )["Datapoints"]
    return float(sum(point["Sum"] for point in points))


def wait_for_metric(
    stack: Stack,
    metric: str,
    at_least: float,
    since: datetime | None = None,
    timeout_s: float = 30,
    **dimensions: str,
) -> bool:
    """Wait until the workers published at least `at_least` of `metric` (every 2 s here)."""
    deadline = time.monotonic() + timeout_s
    while metric_sum(stack, metric, since, **dimensions) < at_least:
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


def record(amount: str) -> Entry:
    account = f"acct-ops-{uuid.uuid4()}"
    data = (
        f'{{"transaction_id":"{uuid.uuid4()}","account_id":"{account}","amount":{amount},'
        f'"timestamp":"2026-11-28T10:00:00Z"}}'
    ).encode()
    return Entry(data, account)


def test_status_shows_every_shard_leased_checkpointed_and_caught_up(stack: Stack) -> None:
    entries = [record("12.50") for _ in range(20)] + [record("25000") for _ in range(3)]
    started = datetime.now(UTC) - timedelta(seconds=1)
    summary = send(stack.client("kinesis"), stack.env["FRAUD_STREAM"], entries)
    assert summary.failed == 0
    wait_for_checkpoints(stack)
    last = last_sequence_per_shard(stack.client("kinesis"), stack.env["FRAUD_STREAM"])

    result = cli("status", "--json", env=stack.env, timeout=60)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["lease_table"] == stack.env["FRAUD_APP_NAME"]
    rows = {row["shard_id"]: row for row in document["shards"]}
    assert set(rows) == set(last)  # two open shards, both with records
    for shard_id, row in rows.items():
        assert row["open"] is True
        assert row["owner"] == "worker-1"
        assert row["checkpoint"] == last[shard_id]
        assert row["caught_up"] is True, row
        assert row["millis_behind_latest"] == 0

    # kinesis-mock pages ListShards the way Kinesis does: NextToken without the stream name.
    assert len(list_shards(stack.client("kinesis"), stack.env["FRAUD_STREAM"], page_size=1)) == 2

    table = cli("status", env=stack.env, timeout=60)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    # The shards' table first; with the stack's REDIS_URL, the labels' quality by day after a
    # blank line (no label here: every day at 0 labelled).
    shards = lines[: lines.index("")] if "" in lines else lines
    assert shards[0].startswith("SHARD") and len(shards) == 1 + len(last)
    assert "quality" in document and len(lines) > len(shards)

    # The high amounts were judged and flagged; the counters say so in CloudWatch.
    assert wait_for_metric(stack, "RecordsJudged", len(entries), since=started)
    assert wait_for_metric(stack, "FlaggedByRule", 3, since=started, Rule="high_amount")
    assert wait_for_metric(stack, "FlaggedBySeverity", 3, since=started, Severity="high")
