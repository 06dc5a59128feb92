"""`fraudstream ops scale` against moto's Kinesis and ECS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from consumer.cli import main
from consumer.cli.scale import desired_tasks, scale
from consumer.infra.readback import list_shards

STREAM, CLUSTER, SERVICE = "tx", "fraud", "consumer"


class Aws:
    def __init__(self) -> None:
        self.kinesis = boto3.client("kinesis", region_name="us-east-1")
        self.ecs = boto3.client("ecs", region_name="us-east-1")
        self.ecs.create_cluster(clusterName=CLUSTER)
        self.ecs.register_task_definition(
            family="fraudstream",
            containerDefinitions=[{"name": "worker", "image": "fraudstream", "memory": 1024}],
        )
        self.ecs.create_service(
            cluster=CLUSTER, serviceName=SERVICE, taskDefinition="fraudstream", desiredCount=1
        )

    def stream(self, shards: int) -> None:
        self.kinesis.create_stream(StreamName=STREAM, ShardCount=shards)

    def desired(self) -> int:
        service = self.ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
        return int(service["desiredCount"])


@pytest.fixture
def aws() -> Iterator[Aws]:
    with mock_aws():
        yield Aws()


def run_cli(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any], str]:
    argv = ["ops", "scale", "--stream", STREAM, "--cluster", CLUSTER, "--service", SERVICE]
    code = main([*argv, *extra])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == (1 if code == 0 else 0), out  # one JSON line, or nothing on error
    return code, json.loads(lines[0]) if lines else {}, err


def test_scales_the_service_to_the_open_shards(
    aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.stream(5)
    code, result, _ = run_cli(capsys, "--shards-per-task", "2", "--max", "10")
    assert code == 0
    assert result == {
        "stream": STREAM,
        "open_shards": 5,
        "shards_per_task": 2,
        "minimum": 1,
        "maximum": 10,
        "current": 1,
        "desired": 3,
        "changed": True,
        "dry_run": False,
    }
    assert aws.desired() == 3


def test_dry_run_says_what_it_would_do_and_changes_nothing(
    aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.stream(4)
    code, result, _ = run_cli(capsys, "--shards-per-task", "1", "--max", "8", "--dry-run")
    assert code == 0
    assert (result["desired"], result["changed"], result["dry_run"]) == (4, True, True)
    assert aws.desired() == 1


@pytest.mark.parametrize(
    ("bounds", "expected"), [(("--min", "1", "--max", "2"), 2), (("--min", "6", "--max", "9"), 6)]
)
def test_the_count_is_clamped_to_the_bounds(
    aws: Aws, capsys: pytest.CaptureFixture[str], bounds: tuple[str, ...], expected: int
) -> None:
    aws.stream(4)
    code, result, _ = run_cli(capsys, "--shards-per-task", "1", *bounds)
    assert code == 0
    assert result["desired"] == expected and aws.desired() == expected


def test_no_update_when_the_count_is_already_right(aws: Aws) -> None:
    aws.stream(3)
    aws.ecs.update_service(cluster=CLUSTER, service=SERVICE, desiredCount=2)
    updates: list[Any] = []

    class CountingEcs:
        def describe_services(self, **kwargs: Any) -> Any:
            return aws.ecs.describe_services(**kwargs)

        def update_service(self, **kwargs: Any) -> Any:
            updates.append(kwargs)
            return aws.ecs.update_service(**kwargs)

    result = scale(
        aws.kinesis,
        CountingEcs(),
        stream=STREAM,
        cluster=CLUSTER,
        service=SERVICE,
        shards_per_task=2,
        minimum=1,
        maximum=5,
        dry_run=False,
    )
    assert (result.current, result.desired, result.changed) == (2, 2, False)
    assert updates == []


def test_a_closed_parent_shard_after_a_split_is_not_counted(
    aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.stream(2)
    [parent, _] = aws.kinesis.list_shards(StreamName=STREAM)["Shards"]
    low, high = (int(x) for x in parent["HashKeyRange"].values())
    aws.kinesis.split_shard(
        StreamName=STREAM, ShardToSplit=parent["ShardId"], NewStartingHashKey=str((low + high) // 2)
    )
    assert len(aws.kinesis.list_shards(StreamName=STREAM)["Shards"]) == 4
    code, result, _ = run_cli(capsys, "--shards-per-task", "1", "--max", "10")
    assert code == 0
    assert (result["open_shards"], result["desired"]) == (3, 3)
    assert aws.desired() == 3


def test_an_unknown_service_or_bad_bounds_fail_with_a_message(
    aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.stream(1)
    argv = ["ops", "scale", "--stream", STREAM, "--cluster", CLUSTER, "--service", "nope"]
    code = main([*argv, "--shards-per-task", "1", "--max", "3"])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert "service nope not found" in err
    code, _, err = run_cli(capsys, "--shards-per-task", "0", "--max", "3")
    assert code == 1 and "--shards-per-task" in err
    code, _, err = run_cli(capsys, "--shards-per-task", "1", "--min", "4", "--max", "3")
    assert code == 1 and "--max" in err
    assert aws.desired() == 1


def test_desired_tasks_rounds_up() -> None:
    assert [desired_tasks(n, 4, 0, 100) for n in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]


def test_list_shards_follows_next_tokens_without_the_stream_name() -> None:
    """Kinesis refuses StreamName together with NextToken (moto does not page that way)."""

    class PagedKinesis:
        def __init__(self) -> None:
            self.requests: list[dict[str, Any]] = []

        def list_shards(self, **request: Any) -> dict[str, Any]:
            self.requests.append(request)
            if "NextToken" in request:
                assert "StreamName" not in request
                page = int(request["NextToken"])
            else:
                page = 0
            shards = [{"ShardId": f"shardId-{page * 2 + i}"} for i in range(2)]
            return {"Shards": shards, **({"NextToken": str(page + 1)} if page < 2 else {})}

    kinesis = PagedKinesis()
    shards = list_shards(kinesis, STREAM, page_size=2)
    assert [s["ShardId"] for s in shards] == [f"shardId-{i}" for i in range(6)]
    assert kinesis.requests[0] == {"StreamName": STREAM, "MaxResults": 2}
    assert kinesis.requests[1:] == [
        {"NextToken": "1", "MaxResults": 2},
        {"NextToken": "2", "MaxResults": 2},
    ]
