"""Read-only views of what the consumer produced: S3 lines, alerts, checkpoints, stream ends.

Used by the demo, the integration tests, `fraudstream status` and `fraudstream ops scale`: one
implementation of "what is in S3 / SNS / the lease table / the stream", checked against the real
stand-ins.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Mapping
from typing import Any


def read_jsonl_objects(s3: Any, bucket: str, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """(key, parsed line) for every line of every gzip JSON Lines object under `prefix`."""
    lines: list[tuple[str, dict[str, Any]]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            lines += [(item["Key"], json.loads(x)) for x in gzip.decompress(body).splitlines()]
    return lines


def drain_queue(
    sqs: Any, queue_url: str, into: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Receive and delete every message in the queue; SNS envelopes as parsed JSON, appended to
    `into` (a new list by default) as they arrive, so a call that fails part way keeps what it
    had received.

    Each receive's messages are deleted in one batch call (a load test drains thousands); a
    delete the queue refuses raises, since that message would come back in a later drain.
    """
    messages: list[dict[str, Any]] = [] if into is None else into
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return messages
        messages += [json.loads(message["Body"]) for message in got]
        entries = [
            {"Id": str(i), "ReceiptHandle": message["ReceiptHandle"]}
            for i, message in enumerate(got)
        ]
        failed = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed", [])
        if failed:
            raise RuntimeError(f"SQS refused to delete {len(failed)} messages: {failed[0]}")


def list_shards(kinesis: Any, stream: str, page_size: int = 1000) -> list[dict[str, Any]]:
    """Every shard of the stream, open and closed, over as many ListShards pages as it takes.

    The pages after the first carry the NextToken alone: Kinesis refuses StreamName with it.
    """
    shards: list[dict[str, Any]] = []
    request: dict[str, Any] = {"StreamName": stream, "MaxResults": page_size}
    while True:
        page = kinesis.list_shards(**request)
        shards += page.get("Shards", [])
        token = page.get("NextToken")
        if not token:
            return shards
        request = {"NextToken": token, "MaxResults": page_size}


def is_open(shard: dict[str, Any]) -> bool:
    """A closed shard (a split or merge parent) has an ending sequence number."""
    return "EndingSequenceNumber" not in shard.get("SequenceNumberRange", {})


def lease_items(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    """Every item of the KCL lease table (leaseKey, leaseOwner, checkpoint, ...), all pages."""
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**request)
        items += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


SHARD_END = "SHARD_END"  # the KCL's checkpoint for a finished (split or merged) parent shard


def lease_checkpoints(dynamodb: Any, table: str) -> dict[str, str]:
    """shard id -> checkpoint (a sequence number, TRIM_HORIZON, SHARD_END ...)."""
    items = dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    return {item["leaseKey"]["S"]: item.get("checkpoint", {}).get("S", "") for item in items}


def stream_records(kinesis: Any, stream: str) -> list[tuple[str, str, bytes]]:
    """(shard id, sequence number, data) of every record in the stream, in each shard's order."""
    return [(shard, sequence, data) for shard, sequence, data, _ in stream_entries(kinesis, stream)]


def stream_entries(kinesis: Any, stream: str) -> list[tuple[str, str, bytes, int]]:
    """(shard id, sequence number, data, arrival in epoch ms) of every record, in shard order."""
    records: list[tuple[str, str, bytes, int]] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        records += shard_entries(kinesis, stream, shard["ShardId"])
    return records


def last_sequence_per_shard(kinesis: Any, stream: str) -> dict[str, str]:
    """shard id -> sequence number of its newest record (shards with records only)."""
    return {shard: sequence for shard, sequence, _ in stream_records(kinesis, stream)}


def wait_for_checkpoints(
    kinesis: Any,
    dynamodb: Any,
    stream: str,
    table: str,
    timeout_s: float,
    poll_s: float = 1.0,
    last: Mapping[str, str] | None = None,
) -> float | None:
    """Wait until every shard with records is checkpointed at its newest record (or finished:
    SHARD_END); the seconds it took, or None when `timeout_s` passed first.

    `last` (shard -> sequence number) saves reading the whole stream to find each shard's newest
    record, where the caller knows it: a producer gets every sequence number back from its puts.
    """
    if last is None:
        last = last_sequence_per_shard(kinesis, stream)
    started = time.monotonic()
    while not _checkpointed(lease_checkpoints(dynamodb, table), last):
        if time.monotonic() - started > timeout_s:
            return None
        time.sleep(poll_s)
    return time.monotonic() - started


def _checkpointed(checkpoints: Mapping[str, str], last: Mapping[str, str]) -> bool:
    return all(at_or_past(checkpoints.get(shard), sequence) for shard, sequence in last.items())


def at_or_past(checkpoint: str | None, sequence: str) -> bool:
    """A shard's checkpoint covers `sequence`: it is that record, a later one (the shard took
    more than the caller knew of), or SHARD_END. Sequence numbers are decimal strings; a
    sentinel such as TRIM_HORIZON covers nothing."""
    if checkpoint == SHARD_END:
        return True
    if checkpoint is None or not checkpoint.isdigit() or not sequence.isdigit():
        return False
    return int(checkpoint) >= int(sequence)


# --- resharded streams -----------------------------------------------------------------------


def shard_parents(shard: dict[str, Any]) -> list[str]:
    """The shard's parents: one after a split, two after a merge, none for an original shard."""
    return [p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p]


def lineage_order(shards: list[dict[str, Any]]) -> list[str]:
    """Shard ids with every parent before its children (ties by shard id).

    An account's records sit in one shard of each generation (its hash key picks the child), so
    reading whole shards in this order gives every account its records in the order Kinesis
    (and the KCL, which starts a child only after its parents ended) hands them to a consumer.
    Parents that have aged out of the stream (absent from the list) are ignored.
    """
    known = {shard["ShardId"]: shard for shard in shards}
    ordered: list[str] = []
    placed: set[str] = set()

    def place(shard_id: str, path: tuple[str, ...]) -> None:
        if shard_id in placed:
            return
        if shard_id in path:
            raise ValueError(f"shard lineage has a cycle through {shard_id}")
        for parent in shard_parents(known[shard_id]):
            if parent in known:
                place(parent, (*path, shard_id))
        placed.add(shard_id)
        ordered.append(shard_id)

    for shard_id in sorted(known):
        place(shard_id, ())
    return ordered


def shard_entries(kinesis: Any, stream: str, shard_id: str) -> list[tuple[str, str, bytes, int]]:
    """(shard id, sequence number, data, arrival in epoch ms) of every record of one shard."""
    records: list[tuple[str, str, bytes, int]] = []
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    while iterator:
        page = kinesis.get_records(ShardIterator=iterator, Limit=10000)
        records += [
            (
                shard_id,
                r["SequenceNumber"],
                r["Data"],
                round(r["ApproximateArrivalTimestamp"].timestamp() * 1000),
            )
            for r in page["Records"]
        ]
        if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
            break
        iterator = page.get("NextShardIterator")
    return records


def shard_records(kinesis: Any, stream: str, shard_id: str) -> list[tuple[str, str, bytes]]:
    """(shard id, sequence number, data) of every record of one shard, in its order."""
    return [
        (s, sequence, data) for s, sequence, data, _ in shard_entries(kinesis, stream, shard_id)
    ]


def stream_records_in_lineage_order(kinesis: Any, stream: str) -> list[tuple[str, str, bytes]]:
    """Like `stream_records`, with shards read parents first (see `lineage_order`)."""
    entries = stream_entries_in_lineage_order(kinesis, stream)
    return [(shard, sequence, data) for shard, sequence, data, _ in entries]


def stream_entries_in_lineage_order(kinesis: Any, stream: str) -> list[tuple[str, str, bytes, int]]:
    """Like `stream_entries`, with shards read parents first (see `lineage_order`)."""
    entries: list[tuple[str, str, bytes, int]] = []
    for shard_id in lineage_order(list_shards(kinesis, stream)):
        entries += shard_entries(kinesis, stream, shard_id)
    return entries


def leases_by_shard(dynamodb: Any, table: str) -> dict[str, dict[str, Any]]:
    """shard id -> the lease item with DynamoDB's type wrappers removed (numbers as int)."""
    leases: dict[str, dict[str, Any]] = {}
    scan: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**scan)
        for item in page["Items"]:
            lease: dict[str, Any] = {}
            for name, wrapped in item.items():
                [(kind, value)] = wrapped.items()
                lease[name] = int(value) if kind == "N" and value.isdigit() else value
            leases[lease["leaseKey"]] = lease
        if "LastEvaluatedKey" not in page:
            return leases
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def checkpoints_complete(
    shards: list[dict[str, Any]], last: dict[str, str], checkpoints: dict[str, str]
) -> bool:
    """Every closed shard checkpointed at SHARD_END, every open shard at its newest record
    (an open shard without records needs no checkpoint)."""
    for shard in shards:
        shard_id = shard["ShardId"]
        if not is_open(shard):
            if checkpoints.get(shard_id) != SHARD_END:
                return False
        elif shard_id in last and not at_or_past(checkpoints.get(shard_id), last[shard_id]):
            return False
    return True


def wait_for_lineage_checkpoints(
    kinesis: Any, dynamodb: Any, stream: str, table: str, timeout_s: float, poll_s: float = 1.0
) -> float | None:
    """`wait_for_checkpoints` for a resharded stream: closed shards must reach SHARD_END.
    The seconds it took, or None when `timeout_s` passed first."""
    shards = list_shards(kinesis, stream)
    last = {}
    for shard in shards:
        records = shard_records(kinesis, stream, shard["ShardId"])
        if records:
            last[shard["ShardId"]] = records[-1][1]
    started = time.monotonic()
    while not checkpoints_complete(shards, last, lease_checkpoints(dynamodb, table)):
        if time.monotonic() - started > timeout_s:
            return None
        time.sleep(poll_s)
    return time.monotonic() - started
