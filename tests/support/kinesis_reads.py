"""Reading a whole shard the way a poller does, for the tests of both Kinesis stand-ins."""

from __future__ import annotations

from typing import Any


def read_shard(client: Any, stream: str, shard: str, limit: int) -> list[dict[str, Any]]:
    """Every record of `shard` from TRIM_HORIZON, `limit` at a time, until an empty answer
    (which must say it is at the tip: MillisBehindLatest 0)."""
    iterator = client.get_shard_iterator(
        StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records: list[dict[str, Any]] = []
    while True:
        answer = client.get_records(ShardIterator=iterator, Limit=limit)
        assert len(answer["Records"]) <= limit
        records.extend(answer["Records"])
        iterator = answer["NextShardIterator"]
        if not answer["Records"]:
            assert answer["MillisBehindLatest"] == 0
            return records
