"""Realistic input, generated before anything is timed: the daemon's protocol lines.

Transactions come from load_test.synthetic (account profiles, ordinary traffic at home, fraud
archetypes) on a simulated event-time clock, and are cut into processRecords messages exactly as
the MultiLangDaemon writes them to a processor's stdin: compact JSON, base64 `data`, Kinesis-like
56-digit sequence numbers, the partition key = the account id, the arrival timestamp in ms.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from load_test.synthetic import TransactionGenerator

SHARD_ID = "shardId-000000000000"
# Event time of the first record; fixed so that a seed gives byte-identical input.
START = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
# A Kinesis sequence number is a 56-digit decimal string.
SEQUENCE_BASE = 49_650_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000
ARRIVAL_DELAY_MS = 250


def _compact(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def initialize_line(shard_id: str = SHARD_ID) -> str:
    return _compact(
        {
            "action": "initialize",
            "shardId": shard_id,
            "sequenceNumber": "TRIM_HORIZON",
            "subSequenceNumber": 0,
        }
    )


def shutdown_requested_line() -> str:
    return _compact({"action": "shutdownRequested"})


def checkpoint_reply_line(sequence_number: str | None, sub_sequence_number: int | None) -> str:
    """The daemon's answer to a checkpoint request that succeeded: the position, echoed."""
    return _compact(
        {
            "action": "checkpoint",
            "sequenceNumber": sequence_number,
            "subSequenceNumber": sub_sequence_number,
        }
    )


class SimulatedClock:
    """Event time that advances by 1/rate seconds at every call (one call per record)."""

    def __init__(self, start: datetime, records_per_s: float) -> None:
        self._step = timedelta(seconds=1 / records_per_s)
        self._next = start
        self.last = start

    def __call__(self) -> datetime:
        self.last = self._next
        self._next += self._step
        return self.last


@dataclass(frozen=True, slots=True)
class Workload:
    """The batches (one protocol line each) and what went into them."""

    batches: list[str]
    records: int
    batch_size: int
    fraud_labelled: int
    invalid: int
    data_bytes: int
    event_span_s: float


def _record_messages(
    count: int,
    *,
    accounts: int,
    fraud_ratio: float,
    invalid_ratio: float,
    seed: int,
    event_rate: float,
    stats: dict[str, float],
) -> Iterator[dict[str, Any]]:
    clock = SimulatedClock(START, event_rate)
    generator = TransactionGenerator(
        accounts=accounts,
        fraud_ratio=fraud_ratio,
        invalid_ratio=invalid_ratio,
        seed=seed,
        now=clock,
    )
    data_bytes = 0
    for index in range(count):
        record = generator.next_record()
        data_bytes += len(record.data)
        arrival_ms = int(clock.last.timestamp() * 1000) + ARRIVAL_DELAY_MS
        yield {
            "action": "record",
            "data": base64.b64encode(record.data).decode("ascii"),
            "partitionKey": record.account_id,
            "sequenceNumber": str(SEQUENCE_BASE + 10 * index),
            "subSequenceNumber": 0,
            "approximateArrivalTimestamp": arrival_ms,
        }
    stats["fraud"] = generator.fraud_count
    stats["invalid"] = generator.invalid_count
    stats["data_bytes"] = data_bytes
    stats["event_span_s"] = (clock.last - START).total_seconds()


def _chunks(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def build_workload(
    records: int,
    *,
    batch_size: int,
    accounts: int,
    fraud_ratio: float,
    invalid_ratio: float,
    seed: int,
    event_rate: float | None = None,
) -> Workload:
    """`records` transactions as processRecords lines of `batch_size` records each.

    The event-time rate defaults to accounts / 40 per second: below the synthetic generator's
    accounts / 20 limit, so `velocity` fires only where an archetype means it to.
    """
    rate = event_rate if event_rate is not None else max(accounts / 40, 1.0)
    stats: dict[str, float] = {}
    messages = _record_messages(
        records,
        accounts=accounts,
        fraud_ratio=fraud_ratio,
        invalid_ratio=invalid_ratio,
        seed=seed,
        event_rate=rate,
        stats=stats,
    )
    batches = [
        _compact({"action": "processRecords", "records": chunk, "millisBehindLatest": 0})
        for chunk in _chunks(messages, batch_size)
    ]
    return Workload(
        batches=batches,
        records=records,
        batch_size=batch_size,
        fraud_labelled=int(stats["fraud"]),
        invalid=int(stats["invalid"]),
        data_bytes=int(stats["data_bytes"]),
        event_span_s=stats["event_span_s"],
    )
