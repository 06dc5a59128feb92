"""`fraudstream status` against moto's Kinesis and a lease table laid out as the KCL writes it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from consumer.cli import main
from consumer.cli.status_report import render_table, shard_statuses

STREAM, TABLE = "tx", "fraud-app"


class Aws:
    def __init__(self) -> None:
        self.kinesis = boto3.client("kinesis", region_name="us-east-1")
        self.dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        self.kinesis.create_stream(StreamName=STREAM, ShardCount=3)
        self.dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )

    def shard_ids(self) -> list[str]:
        return [s["ShardId"] for s in self.kinesis.list_shards(StreamName=STREAM)["Shards"]]

    def put(self, shard_id: str, count: int) -> list[str]:
        """Put records that land on `shard_id`; their sequence numbers."""
        shard = next(
            s
            for s in self.kinesis.list_shards(StreamName=STREAM)["Shards"]
            if s["ShardId"] == shard_id
        )
        key = shard["HashKeyRange"]["StartingHashKey"]
        return [
            self.kinesis.put_record(
                StreamName=STREAM, Data=b"{}", PartitionKey="pk", ExplicitHashKey=key
            )["SequenceNumber"]
            for _ in range(count)
        ]

    def lease(self, shard_id: str, owner: str, checkpoint: str) -> None:
        self.dynamodb.put_item(
            TableName=TABLE,
            Item={
                "leaseKey": {"S": shard_id},
                "leaseOwner": {"S": owner},
                "checkpoint": {"S": checkpoint},
                "checkpointSubSequenceNumber": {"N": "0"},
                "leaseCounter": {"N": "42"},
                "ownerSwitchesSinceCheckpoint": {"N": "0"},
            },
        )


@pytest.fixture
def aws() -> Iterator[Aws]:
    with mock_aws():
        yield Aws()


def test_each_shard_shows_owner_checkpoint_and_what_waits(aws: Aws) -> None:
    caught_up, behind, fresh = aws.shard_ids()
    done = aws.put(caught_up, 3)
    waiting = aws.put(behind, 4)
    aws.put(fresh, 2)
    aws.lease(caught_up, "worker-1", done[-1])
    aws.lease(behind, "worker-2", waiting[1])  # two records after the checkpoint
    aws.lease(fresh, "worker-1", "TRIM_HORIZON")
    later = datetime.now(UTC) + timedelta(seconds=30)

    rows = {s.shard_id: s for s in shard_statuses(aws.kinesis, aws.dynamodb, STREAM, TABLE, later)}

    assert rows[caught_up].owner == "worker-1"
    assert rows[caught_up].checkpoint == done[-1]
    assert rows[caught_up].caught_up is True
    assert rows[caught_up].oldest_unprocessed_age_ms is None
    assert rows[caught_up].millis_behind_latest == 0

    assert rows[behind].owner == "worker-2"
    assert rows[behind].caught_up is False
    age = rows[behind].oldest_unprocessed_age_ms
    assert age is not None and 29_000 <= age <= 40_000  # put just now, looked at 30 s later

    assert rows[fresh].checkpoint == "TRIM_HORIZON"
    assert rows[fresh].caught_up is False
    assert all(row.open for row in rows.values())


def test_a_split_parent_at_shard_end_and_an_unleased_child(aws: Aws) -> None:
    parent = aws.kinesis.list_shards(StreamName=STREAM)["Shards"][0]
    low, high = (int(x) for x in parent["HashKeyRange"].values())
    aws.kinesis.split_shard(
        StreamName=STREAM, ShardToSplit=parent["ShardId"], NewStartingHashKey=str((low + high) // 2)
    )
    aws.lease(parent["ShardId"], "worker-1", "SHARD_END")
    rows = {s.shard_id: s for s in shard_statuses(aws.kinesis, aws.dynamodb, STREAM, TABLE)}
    assert len(rows) == 5
    assert rows[parent["ShardId"]].open is False
    assert rows[parent["ShardId"]].caught_up is True
    unleased = [r for r in rows.values() if r.owner is None]
    assert len(unleased) == 4 and all(r.note == "no lease yet" for r in unleased)


def test_an_unknown_checkpoint_and_an_expired_shard_are_reported_not_raised(aws: Aws) -> None:
    shard = aws.shard_ids()[0]
    aws.lease(shard, "worker-1", "not-a-position")
    aws.lease("shardId-000000000099", "worker-9", "SHARD_END")  # expired from the stream
    rows = {s.shard_id: s for s in shard_statuses(aws.kinesis, aws.dynamodb, STREAM, TABLE)}
    assert "position not known" in rows[shard].note
    assert rows["shardId-000000000099"].open is None
    assert "gone" in render_table(list(rows.values()))


def test_the_cli_prints_a_table_or_json(aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    shard = aws.shard_ids()[0]
    sequence = aws.put(shard, 1)[0]
    aws.lease(shard, "worker-7", sequence)

    assert main(["status", "--stream", STREAM, "--table", TABLE, "--json"]) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert (document["stream"], document["lease_table"]) == (STREAM, TABLE)
    [row] = [r for r in document["shards"] if r["shard_id"] == shard]
    assert (row["owner"], row["checkpoint"], row["caught_up"]) == ("worker-7", sequence, True)

    assert main(["status", "--stream", STREAM, "--table", TABLE]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["SHARD", "STATE", "OWNER"]
    assert len(lines) == 4
    [mine] = [line for line in lines if line.startswith(shard)]
    assert "worker-7" in mine and "yes" in mine


def test_a_missing_lease_table_fails_with_a_message(
    aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--stream", STREAM, "--table", "nope"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "ResourceNotFoundException" in err


# -- the rule set: published, last good, what a starting worker uses (issue #19) ---------------

GOOD = (
    b'version: "good-1"\n'
    b'custom: [{id: lucky_777, description: d, severity: high, when: "amount == 777"}]\n'
)
BROKEN = b"version: bad-2\nrules: {high_amount: {threshold: -5}}\n"


def keep_last_good(s3: Any, body: bytes) -> None:
    """What a worker that accepted `body` left beside the published key."""
    from consumer.reload.rulesets import RuleSetSource, S3Fetcher, S3LastGoodStore

    s3.put_object(Bucket="rules", Key="live.yaml", Body=body)
    store = S3LastGoodStore(s3, "rules", "live.yaml.last-good.json")
    RuleSetSource(S3Fetcher(s3, "rules", "live.yaml"), 30, last_good=store, accepted_by="w-1")


def test_the_rule_set_published_refused_and_the_last_good_one(
    aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="rules")
    keep_last_good(s3, GOOD)
    s3.put_object(Bucket="rules", Key="live.yaml", Body=BROKEN)
    args = ["status", "--stream", STREAM, "--table", TABLE, "--ruleset", "s3://rules/live.yaml"]

    assert main([*args, "--json"]) == 0
    rules = json.loads(capsys.readouterr().out)["ruleset"]
    assert rules["source"] == "s3://rules/live.yaml"
    assert (rules["published_state"], rules["published_version"]) == ("refused", None)
    assert "threshold" in rules["published_error"]
    assert rules["last_good_location"] == "s3://rules/live.yaml.last-good.json"
    assert (rules["last_good_state"], rules["last_good_version"]) == ("valid", "good-1")
    assert rules["last_good_accepted_by"] == "w-1"
    assert rules["starting_workers_use"] == "good-1"

    assert main(args) == 0
    text = capsys.readouterr().out
    assert "RULE SET   s3://rules/live.yaml" in text
    assert "published  -  sha256 " in text and "REFUSED: " in text
    assert "last good  good-1  sha256 " in text and "by w-1" in text
    assert "in force   good-1 (the last good version) on workers that start now" in text


def test_the_rule_set_without_any_good_version_says_a_worker_would_stop(aws: Aws) -> None:
    from consumer.cli.status_report import render_ruleset, ruleset_status

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="rules")
    s3.put_object(Bucket="rules", Key="live.yaml", Body=BROKEN)
    status = ruleset_status("s3://rules/live.yaml", None, s3)
    assert (status.last_good_state, status.starting_workers_use) == ("absent", None)
    assert "NONE for a worker starting now: `fraudstream worker` stops with exit 78" in (
        render_ruleset(status)
    )
    # A record that does not check out counts as none, as the workers count it.
    s3.put_object(Bucket="rules", Key="live.yaml.last-good.json", Body=b'{"kind": "x"}')
    status = ruleset_status("s3://rules/live.yaml", None, s3)
    assert (status.last_good_state, status.starting_workers_use) == ("invalid", None)
    # A published version that loads is what starting workers use.
    keep_last_good(s3, GOOD)
    status = ruleset_status("s3://rules/live.yaml", None, s3)
    assert (status.published_state, status.published_version) == ("valid", "good-1")
    assert status.last_good_sha256 == status.published_sha256
    assert "in force   good-1 (the published version)" in render_ruleset(status)


def test_without_a_rule_set_status_shows_only_the_shards(
    aws: Aws, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FRAUD_RULESET", raising=False)
    assert main(["status", "--stream", STREAM, "--table", TABLE, "--json"]) == 0
    assert "ruleset" not in json.loads(capsys.readouterr().out)
