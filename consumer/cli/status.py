"""`fraudstream status`: per shard, who holds its lease, where it is checkpointed, how far behind.

"Behind" is measured from the checkpoint, not guessed: one GetShardIterator AFTER the checkpoint
and one GetRecords with Limit=1 per shard. Kinesis answers with MillisBehindLatest (how far that
position is from the tip of the shard) and, when there is one, the first record not yet
checkpointed, whose arrival time says how long it has been waiting. Reading the shard to its end
to count records would cost a GetRecords per 10,000 records; this costs two calls per shard (a
shard allows 5 GetRecords a second, shared with the workers, so do not run it in a tight loop).

The checkpoint lags the processing by up to the flush age (FRAUD_FLUSH_MAX_AGE_S) by design, so a
live shard shows a few seconds behind even when the worker is keeping up.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from consumer.readback import is_open, lease_items, list_shards

# Checkpoints that are not sequence numbers, and the iterator that starts where they point.
_SENTINEL_ITERATORS = {"TRIM_HORIZON": "TRIM_HORIZON", "LATEST": "LATEST"}


@dataclass(frozen=True)
class ShardStatus:
    shard_id: str
    open: bool | None  # None: in the lease table but no longer in the stream (expired)
    owner: str | None
    checkpoint: str | None
    millis_behind_latest: int | None
    oldest_unprocessed_age_ms: int | None
    caught_up: bool | None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _behind(
    kinesis: Any, stream: str, shard_id: str, checkpoint: str | None, now: datetime
) -> tuple[int | None, int | None, bool | None, str]:
    """(millis behind latest, age of the first unprocessed record, caught up, note)."""
    if not checkpoint:
        return None, None, None, "no lease yet"
    if checkpoint == "SHARD_END":
        return 0, None, True, "read to its end"
    request: dict[str, Any] = {"StreamName": stream, "ShardId": shard_id}
    if checkpoint in _SENTINEL_ITERATORS:
        request["ShardIteratorType"] = _SENTINEL_ITERATORS[checkpoint]
    elif checkpoint.isdigit():
        request["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
        request["StartingSequenceNumber"] = checkpoint
    else:
        return None, None, None, f"checkpoint {checkpoint}: position not known"
    try:
        iterator = kinesis.get_shard_iterator(**request)["ShardIterator"]
        page = kinesis.get_records(ShardIterator=iterator, Limit=1)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return None, None, None, f"{error.get('Code', '?')}: {error.get('Message', '')}"[:200]
    behind = page.get("MillisBehindLatest")
    records = page.get("Records", [])
    age = None
    if records:
        arrived = records[0]["ApproximateArrivalTimestamp"]
        age = max(0, round((now - arrived).total_seconds() * 1000))
    caught_up = not records and behind == 0
    return behind, age, caught_up, ""


def shard_statuses(
    kinesis: Any, dynamodb: Any, stream: str, table: str, now: datetime | None = None
) -> list[ShardStatus]:
    """One row per shard of the stream, and per lease whose shard the stream no longer lists."""
    now = now or datetime.now(UTC)
    shards = {shard["ShardId"]: shard for shard in list_shards(kinesis, stream)}
    leases = {
        item["leaseKey"]["S"]: item
        for item in lease_items(dynamodb, table)
        if "leaseKey" in item
        and (item["leaseKey"]["S"] in shards or item["leaseKey"]["S"].startswith("shardId-"))
    }
    statuses: list[ShardStatus] = []
    for shard_id in sorted(set(shards) | set(leases)):
        lease = leases.get(shard_id, {})
        owner = lease.get("leaseOwner", {}).get("S") or None
        checkpoint = lease.get("checkpoint", {}).get("S") or None
        if shard_id not in shards:
            statuses.append(
                ShardStatus(shard_id, None, owner, checkpoint, None, None, None, "not in stream")
            )
            continue
        open_ = is_open(shards[shard_id])
        behind, age, caught_up, note = _behind(kinesis, stream, shard_id, checkpoint, now)
        statuses.append(
            ShardStatus(shard_id, open_, owner, checkpoint, behind, age, caught_up, note)
        )
    return statuses


def _short(checkpoint: str | None) -> str:
    if checkpoint is None:
        return "-"
    return checkpoint if len(checkpoint) <= 16 else "..." + checkpoint[-12:]


def _millis(value: int | None) -> str:
    if value is None:
        return "-"
    if value < 1000:
        return f"{value} ms"
    if value < 120_000:
        return f"{value / 1000:.1f} s"
    if value < 7_200_000:
        return f"{value / 60_000:.1f} min"
    return f"{value / 3_600_000:.1f} h"


def render_table(statuses: list[ShardStatus]) -> str:
    """A table for a person: full sequence numbers are in --json."""
    header = ("SHARD", "STATE", "OWNER", "CHECKPOINT", "BEHIND", "OLDEST UNREAD", "CAUGHT UP")
    rows = [header]
    for s in statuses:
        state = {True: "open", False: "closed", None: "gone"}[s.open]
        caught = {True: "yes", False: "no", None: "-"}[s.caught_up]
        if s.note:
            caught += f" ({s.note})"
        rows.append(
            (
                s.shard_id,
                state,
                s.owner or "-",
                _short(s.checkpoint),
                _millis(s.millis_behind_latest),
                _millis(s.oldest_unprocessed_age_ms),
                caught,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def render_json(stream: str, table: str, statuses: list[ShardStatus]) -> str:
    return json.dumps(
        {"stream": stream, "lease_table": table, "shards": [s.as_dict() for s in statuses]}
    )
