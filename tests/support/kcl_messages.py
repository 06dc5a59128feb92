"""The JSON lines the MultiLangDaemon writes to a processor's stdin, for driving it in tests."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence


def initialize(shard_id: str) -> str:
    return json.dumps(
        {
            "action": "initialize",
            "shardId": shard_id,
            "sequenceNumber": "TRIM_HORIZON",
            "subSequenceNumber": 0,
        }
    )


def record(data: bytes, sequence_number: str, arrival_ms: int, partition_key: str = "pk") -> dict:
    return {
        "action": "record",
        "data": base64.b64encode(data).decode("ascii"),
        "partitionKey": partition_key,
        "sequenceNumber": sequence_number,
        "subSequenceNumber": 0,
        "approximateArrivalTimestamp": arrival_ms,
    }


def process_records(records: Sequence[dict], millis_behind_latest: int = 0) -> str:
    return json.dumps(
        {
            "action": "processRecords",
            "records": list(records),
            "millisBehindLatest": millis_behind_latest,
        }
    )


def checkpoint_reply(sequence_number: str | None, error: str | None = None) -> str:
    """The daemon's answer to a checkpoint request."""
    reply: dict = {
        "action": "checkpoint",
        "sequenceNumber": sequence_number,
        "subSequenceNumber": 0,
    }
    if error:
        reply["error"] = error
    return json.dumps(reply)


def shutdown_requested() -> str:
    return json.dumps({"action": "shutdownRequested"})


def shard_ended() -> str:
    return json.dumps({"action": "shardEnded"})


def lease_lost() -> str:
    return json.dumps({"action": "leaseLost"})
