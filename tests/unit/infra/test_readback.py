"""Reading a resharded stream back: shard lineage order and when its checkpoints are complete."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from consumer.infra.readback import (
    SHARD_END,
    at_or_past,
    checkpoints_complete,
    drain_queue,
    lineage_order,
)


def shard(
    shard_id: str, parent: str | None = None, adjacent: str | None = None, closed: bool = False
) -> dict[str, Any]:
    sequence_range = {"StartingSequenceNumber": "1"}
    if closed:
        sequence_range["EndingSequenceNumber"] = "9"
    found: dict[str, Any] = {"ShardId": shard_id, "SequenceNumberRange": sequence_range}
    if parent:
        found["ParentShardId"] = parent
    if adjacent:
        found["AdjacentParentShardId"] = adjacent
    return found


def test_parents_come_before_their_children_whatever_the_listing_order() -> None:
    # "a" split into "z1" and "b"; "b" merged with "c" into "m"; listed children first.
    shards = [
        shard("m", parent="b", adjacent="c"),
        shard("z1", parent="a"),
        shard("b", parent="a", closed=True),
        shard("c", closed=True),
        shard("a", closed=True),
    ]
    order = lineage_order(shards)
    assert sorted(order) == ["a", "b", "c", "m", "z1"]
    for child, parents in {"z1": ["a"], "b": ["a"], "m": ["b", "c"]}.items():
        assert all(order.index(p) < order.index(child) for p in parents)


def test_a_parent_no_longer_listed_is_ignored_and_a_cycle_is_refused() -> None:
    assert lineage_order([shard("b", parent="gone")]) == ["b"]
    with pytest.raises(ValueError, match="cycle"):
        lineage_order([shard("a", parent="b"), shard("b", parent="a")])


def test_checkpoints_are_complete_when_closed_shards_ended_and_open_ones_reached_the_end() -> None:
    shards = [shard("a", closed=True), shard("b", parent="a"), shard("c", parent="a")]
    last = {"a": "5", "b": "7"}  # "c" has no records yet
    assert checkpoints_complete(shards, last, {"a": SHARD_END, "b": "7", "c": "TRIM_HORIZON"})
    assert not checkpoints_complete(shards, last, {"a": "5", "b": "7"})  # parent not ended
    assert not checkpoints_complete(shards, last, {"a": SHARD_END, "b": "6"})  # behind


@mock_aws
def test_draining_a_queue_receives_every_message_once_and_empties_it() -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    for n in range(25):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": n}))

    drained = drain_queue(sqs, url)

    assert sorted(message["n"] for message in drained) == list(range(25))
    assert drain_queue(sqs, url) == []  # deleted, not merely received


class RefusingQueue:
    """One message to receive; its delete is refused."""

    def receive_message(self, **_: Any) -> dict[str, Any]:
        return {"Messages": [{"Body": "{}", "ReceiptHandle": "h"}]}

    def delete_message_batch(self, **_: Any) -> dict[str, Any]:
        return {"Failed": [{"Id": "0", "Code": "ReceiptHandleIsInvalid"}], "Successful": []}


def test_a_refused_delete_is_an_error_not_a_message_seen_twice_later() -> None:
    with pytest.raises(RuntimeError, match="SQS refused to delete 1 messages"):
        drain_queue(RefusingQueue(), "queue")


@pytest.mark.parametrize(
    ("checkpoint", "sequence", "covered"),
    [
        (
            "49590338271490256608559692538361571095921575989136588898",
            "49590338271490256608559692538361571095921575989136588898",
            True,
        ),
        (
            "49590338271490256608559692538361571095921575989136588899",
            "49590338271490256608559692538361571095921575989136588898",
            True,
        ),
        (
            "49590338271490256608559692538361571095921575989136588897",
            "49590338271490256608559692538361571095921575989136588898",
            False,
        ),
        ("100", "99", True),  # numbers, not strings: "100" < "99" as text
        ("99", "100", False),
        (SHARD_END, "5", True),
        ("TRIM_HORIZON", "5", False),
        ("LATEST", "5", False),
        (None, "5", False),
    ],
)
def test_a_checkpoint_covers_a_sequence_number_at_or_before_it(
    checkpoint: str | None, sequence: str, covered: bool
) -> None:
    assert at_or_past(checkpoint, sequence) is covered


def test_a_checkpoint_past_the_newest_known_record_completes_the_shard() -> None:
    shards = [shard("a")]
    assert checkpoints_complete(shards, {"a": "7"}, {"a": "9"})  # the shard took more since
    assert not checkpoints_complete(shards, {"a": "7"}, {"a": "6"})
