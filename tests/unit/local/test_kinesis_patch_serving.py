"""The patched kinesis-mock still serves what the KCL reads: PutRecords, PutRecord, ListShards,
GetShardIterator and GetRecords, with every record once, in order per shard, sequence numbers
increasing. (Under the real daemon, over HTTP/2 and CBOR: tests/integration.)"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from load_test.standin import _client, kinesis_mock
from tests.support.kinesis_reads import read_shard

STREAM = "patched"


@pytest.fixture(scope="module")
def kinesis() -> Iterator[Any]:
    if shutil.which("node") is None:
        pytest.fail("node missing: install Node.js 20")
    with kinesis_mock(unpatched=False, heap_mb=None) as (_, port):
        client = _client(port, 8)
        client.create_stream(StreamName=STREAM, ShardCount=4)
        while (
            client.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"][
                "StreamStatus"
            ]
            != "ACTIVE"
        ):
            time.sleep(0.1)
        yield client


def test_every_record_once_in_order_per_shard(kinesis: Any) -> None:
    shards = [s["ShardId"] for s in kinesis.list_shards(StreamName=STREAM)["Shards"]]
    assert len(shards) == 4
    put: dict[str, list[tuple[int, bytes]]] = {shard: [] for shard in shards}
    # Rounds of 500 (the grouping patched), plus single puts in between (the path not patched).
    for round_ in range(6):
        entries = [
            {"Data": f"{round_}-{i}".encode(), "PartitionKey": f"key-{i % 97}"} for i in range(500)
        ]
        answer = kinesis.put_records(StreamName=STREAM, Records=entries)
        assert answer["FailedRecordCount"] == 0
        for entry, result in zip(entries, answer["Records"], strict=True):
            put[result["ShardId"]].append((int(result["SequenceNumber"]), entry["Data"]))
        single = kinesis.put_record(
            StreamName=STREAM, Data=f"one-{round_}".encode(), PartitionKey="x"
        )
        put[single["ShardId"]].append((int(single["SequenceNumber"]), f"one-{round_}".encode()))
    assert sum(len(v) for v in put.values()) == 3006
    for shard in shards:
        assert len(put[shard]) > 0
        numbers = [n for n, _ in put[shard]]
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
        # Limit 64: most reads go through an AFTER_SEQUENCE_NUMBER iterator (the seek patched).
        got = read_shard(kinesis, STREAM, shard, limit=64)
        assert [(int(r["SequenceNumber"]), r["Data"]) for r in got] == put[shard]


def test_an_iterator_after_a_sequence_number_in_the_middle(kinesis: Any) -> None:
    shard = kinesis.list_shards(StreamName=STREAM)["Shards"][0]["ShardId"]
    everything = read_shard(kinesis, STREAM, shard, limit=10000)
    middle = everything[len(everything) // 2]
    iterator = kinesis.get_shard_iterator(
        StreamName=STREAM,
        ShardId=shard,
        ShardIteratorType="AFTER_SEQUENCE_NUMBER",
        StartingSequenceNumber=middle["SequenceNumber"],
    )["ShardIterator"]
    answer = kinesis.get_records(ShardIterator=iterator, Limit=10000)
    assert answer["Records"] == everything[len(everything) // 2 + 1 :]
    # At the newest record: nothing, and an iterator that waits there.
    tail = kinesis.get_records(ShardIterator=answer["NextShardIterator"], Limit=10000)
    assert tail["Records"] == []
