"""What `fraudstream status` reads and shows: per shard, who holds its lease, where it is
checkpointed, how far behind; and the rule set's published and last good versions.

"Behind" is measured from the checkpoint, not guessed: one GetShardIterator AFTER the checkpoint
and one GetRecords with Limit=1 per shard. Kinesis answers with MillisBehindLatest (how far that
position is from the tip of the shard) and, when there is one, the first record not yet
checkpointed, whose arrival time says how long it has been waiting. Reading the shard to its end
to count records would cost a GetRecords per 10,000 records; this costs two calls per shard (a
shard allows 5 GetRecords a second, shared with the workers, so do not run it in a tight loop).

The checkpoint lags the processing by up to the flush age (FRAUD_FLUSH_MAX_AGE_S) by design, so a
live shard shows a few seconds behind even when the worker is keeping up.

With a rule set (FRAUD_RULESET, or --ruleset), it also shows the published version and whether it
loads, the fleet's last good version (consumer/reload/rulesets.py: its record is checked as a
worker checks it), and so which version a worker starting now judges with. Running workers keep
the version in force when the published one is refused; per worker, their logs say which
(`ruleset_loaded`, `ruleset_refused`, `ruleset_fallback_last_good`).

With a Redis URL (REDIS_URL, or --redis-url), it also shows the model's quality by day from the
labels as they arrive (docs/monitoring.md): the label ingestion (consumer/state/labels.py)
keeps, per UTC day of `labelled_at`, the HASH `fs:quality:{YYYY-MM-DD}` with the counts
fraud_alerted, fraud_missed, clean_alerted, clean_quiet and the unknowns (alerted or not, no
longer known); one pipelined read of the last N days gives each
day's alert precision and the recall of the labelled frauds. Precision falling or recall
falling over the weeks is drift the score metrics alone cannot show. Redis unreachable is one
line in the output, never a failure of the command: the rest of the status still matters.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import redis
import redis.cluster
from botocore.exceptions import ClientError

from consumer.infra.readback import is_open, lease_items, list_shards
from consumer.reload.rulesets import (
    LastGoodUnusable,
    fetcher_for,
    last_good_location,
    last_good_store_for,
    sha256_of,
    summary,
)
from consumer.rules.ruleset import RuleSetError
from consumer.rules.ruleset_load import load_ruleset
from consumer.state.labels import QUALITY_FIELDS
from consumer.state.labels import quality_key as labels_quality_key
from consumer.worker.preflight import redis_location

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


@dataclass(frozen=True)
class RuleSetStatus:
    """The published rule set, the last good one, and what a worker starting now judges with."""

    source: str
    published_state: str  # valid | refused | unreadable
    published_version: str | None
    published_sha256: str | None
    published_error: str | None
    last_good_location: str
    last_good_state: str  # valid | absent | invalid | unreadable
    last_good_version: str | None
    last_good_sha256: str | None
    last_good_accepted_at: str | None
    last_good_accepted_by: str | None
    last_good_error: str | None
    starting_workers_use: str | None  # a version, or None: a worker would not start (exit 78)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ruleset_status(source: str, last_good: str | None, s3: Any) -> RuleSetStatus:
    """Read both as a starting worker would (consumer/ruleset_source.starting_ruleset), without
    writing anything. Errors are reported in the fields, never raised."""
    location = last_good_location(source, last_good)
    published: dict[str, Any] = {"state": "valid", "version": None, "sha256": None, "error": None}
    try:
        fetched = fetcher_for(source, lambda: s3).fetch(None)
        if fetched is None:  # cannot happen without a tag
            raise OSError("nothing to read")
    except Exception as exc:
        published.update(state="unreadable", error=summary(exc))
    else:
        published["sha256"] = sha256_of(fetched.data)
        try:
            published["version"] = load_ruleset(fetched.data, name=source).version
        except RuleSetError as exc:
            published.update(state="refused", error=summary(exc))
    good: dict[str, Any] = {"state": "valid", "error": None}
    try:
        record = last_good_store_for(location, lambda: s3).load()
    except LastGoodUnusable as exc:
        good["state"] = "unreadable" if exc.transient else "absent" if exc.absent else "invalid"
        good["error"] = exc.reason
        record = None
    except Exception as exc:  # e.g. a malformed endpoint: reported, not raised
        good.update(state="unreadable", error=summary(exc))
        record = None
    if published["state"] == "valid":
        starting = published["version"]
    else:
        starting = record.version if record is not None else None
    return RuleSetStatus(
        source=source,
        published_state=published["state"],
        published_version=published["version"],
        published_sha256=published["sha256"],
        published_error=published["error"],
        last_good_location=location,
        last_good_state=good["state"],
        last_good_version=record.version if record is not None else None,
        last_good_sha256=record.sha256 if record is not None else None,
        last_good_accepted_at=record.accepted_at if record is not None else None,
        last_good_accepted_by=record.accepted_by if record is not None else None,
        last_good_error=good["error"],
        starting_workers_use=starting,
    )


def render_ruleset(status: RuleSetStatus) -> str:
    """A few lines under the shard table."""

    def cut(text: str | None, width: int = 100) -> str:
        text = text or ""
        return text if len(text) <= width else text[: width - 3] + "..."

    published = status.published_state.upper() if status.published_state != "valid" else "ok"
    accepted = f"accepted {status.last_good_accepted_at or '?'}"
    accepted += f" by {status.last_good_accepted_by or '?'}"
    lines = [
        f"RULE SET   {status.source}",
        f"published  {status.published_version or '-'}  "
        f"sha256 {(status.published_sha256 or '-')[:12]}  {published}"
        + (f": {cut(status.published_error)}" if status.published_error else ""),
        f"last good  {status.last_good_version or '-'}  "
        f"sha256 {(status.last_good_sha256 or '-')[:12]}  "
        + (
            accepted
            if status.last_good_state == "valid"
            else f"{status.last_good_state.upper()}: {cut(status.last_good_error)}"
        )
        + f"  ({status.last_good_location})",
    ]
    if status.published_state == "valid":
        lines.append(f"in force   {status.published_version} (the published version)")
    elif status.starting_workers_use is not None:
        lines.append(
            f"in force   {status.starting_workers_use} (the last good version) on workers that "
            "start now; running workers keep the version they hold"
        )
    else:
        lines.append(
            "in force   NONE for a worker starting now: `fraudstream worker` stops with exit "
            "78; running workers keep the version they hold"
        )
    return "\n".join(lines)


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


def render_json(
    stream: str,
    table: str,
    statuses: list[ShardStatus],
    ruleset: RuleSetStatus | None = None,
    quality: QualityStatus | None = None,
) -> str:
    document: dict[str, Any] = {
        "stream": stream,
        "lease_table": table,
        "shards": [s.as_dict() for s in statuses],
    }
    if ruleset is not None:
        document["ruleset"] = ruleset.as_dict()
    if quality is not None:
        document["quality"] = quality.as_dict()
    return json.dumps(document)


# -- the model's quality from the labels (issue #21 item 6) -------------------------------------

# The label ingestion's per-day counters (consumer/state/labels.py, which writes them): each
# labelled transaction counted once, on the UTC day of its labelled_at, by its label and whether
# it was alerted (`*_unknown`: its alerted mark had expired).
QUALITY_DAYS = 14
_EPOCH = date(1970, 1, 1)


def quality_key(day: int) -> str:
    """The HASH of one day (days since 1970-01-01), named as the label store names it."""
    return labels_quality_key(_EPOCH + timedelta(days=day))


def utc_day(now: datetime | None = None) -> int:
    """Today (or `now`) as days since 1970-01-01, UTC."""
    return ((now or datetime.now(UTC)).astimezone(UTC).date() - _EPOCH).days


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


@dataclass(frozen=True)
class DayQuality:
    """One day's labelled transactions (`day`: days since epoch; `note`: why it is unreadable,
    its counts then 0 and in no total)."""

    day: int
    fraud_alerted: int = 0
    fraud_missed: int = 0
    clean_alerted: int = 0
    clean_quiet: int = 0
    fraud_unknown: int = 0
    clean_unknown: int = 0
    note: str = ""

    @property
    def date(self) -> str:
        return (_EPOCH + timedelta(days=self.day)).isoformat()

    @property
    def labelled(self) -> int:
        known = self.fraud_alerted + self.fraud_missed + self.clean_alerted + self.clean_quiet
        return known + self.unknown

    @property
    def unknown(self) -> int:
        """Labelled, but whether they were alerted is no longer known: in no ratio."""
        return self.fraud_unknown + self.clean_unknown

    @property
    def precision(self) -> float | None:
        """Of the alerts labelled, the share that were fraud (None: no alert labelled)."""
        return _ratio(self.fraud_alerted, self.fraud_alerted + self.clean_alerted)

    @property
    def recall(self) -> float | None:
        """Of the frauds labelled, the share alerted (None: no fraud labelled)."""
        return _ratio(self.fraud_alerted, self.fraud_alerted + self.fraud_missed)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "date": self.date,
            "labelled": self.labelled,
            "precision": self.precision,
            "recall": self.recall,
        }


def day_quality(day: int, fields: Any) -> DayQuality:
    """A day from its HASH as Redis gives it (bytes or str keys and values; absent: all 0). A
    count that is not a non-negative integer makes the day unreadable, not the command fail."""
    if isinstance(fields, Exception):  # the pipeline's reply for this key (e.g. WRONGTYPE)
        return DayQuality(day, note=f"unreadable ({type(fields).__name__}: {fields})"[:200])
    decoded = {
        (k.decode() if isinstance(k, bytes) else str(k)): v for k, v in (fields or {}).items()
    }
    counts: dict[str, int] = {}
    for name in QUALITY_FIELDS:
        raw = decoded.get(name, b"0")
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        if not text.isdigit():
            return DayQuality(day, note=f"unreadable ({name}: {text[:40]!r})")
        counts[name] = int(text)
    return DayQuality(
        day,
        fraud_alerted=counts["fraud_alerted"],
        fraud_missed=counts["fraud_missed"],
        clean_alerted=counts["clean_alerted"],
        clean_quiet=counts["clean_quiet"],
        fraud_unknown=counts["fraud_unknown"],
        clean_unknown=counts["clean_unknown"],
    )


@dataclass(frozen=True)
class QualityStatus:
    """The days read, oldest first, from Redis at `redis` (no credentials), or why not."""

    redis: str
    days: list[DayQuality] = field(default_factory=list)
    error: str | None = None

    def total(self) -> DayQuality:
        """The readable days added up (`day`: the first day)."""
        readable = [d for d in self.days if not d.note]
        return DayQuality(
            self.days[0].day if self.days else 0,
            fraud_alerted=sum(d.fraud_alerted for d in readable),
            fraud_missed=sum(d.fraud_missed for d in readable),
            clean_alerted=sum(d.clean_alerted for d in readable),
            clean_quiet=sum(d.clean_quiet for d in readable),
            fraud_unknown=sum(d.fraud_unknown for d in readable),
            clean_unknown=sum(d.clean_unknown for d in readable),
        )

    def as_dict(self) -> dict[str, Any]:
        total = self.total().as_dict()
        for key in ("day", "date", "note"):
            total.pop(key)
        return {
            "redis": self.redis,
            "error": self.error,
            "days": [d.as_dict() for d in self.days],
            "total": total if self.error is None else None,
        }


def read_quality(client: Any, days: int, today: int) -> list[DayQuality]:
    """The last `days` days up to `today`, oldest first: one pipelined HGETALL per day, one
    round trip (on a cluster, one per node)."""
    wanted = list(range(today - days + 1, today + 1))
    pipe = client.pipeline(transaction=False)
    for day in wanted:
        pipe.hgetall(quality_key(day))
    replies = pipe.execute(raise_on_error=False)
    return [day_quality(day, reply) for day, reply in zip(wanted, replies, strict=True)]


def quality_status(
    redis_url: str,
    days: int = QUALITY_DAYS,
    cluster: bool = False,
    today: int | None = None,
    connect_timeout_s: float = 2.0,
    read_timeout_s: float = 5.0,
) -> QualityStatus:
    """Read the days from Redis within the timeouts. Never raises: a Redis that cannot be reached
    (or refuses the credentials) is the `error`, in words without the URL's credentials."""
    where = redis_location(redis_url)
    today = utc_day() if today is None else today
    options: dict[str, Any] = {
        "socket_connect_timeout": connect_timeout_s,
        "socket_timeout": read_timeout_s,
    }
    client: Any = None
    try:
        if cluster:
            client = redis.cluster.RedisCluster.from_url(redis_url, **options)
        else:
            client = redis.Redis.from_url(redis_url, **options)
        return QualityStatus(where, read_quality(client, days, today))
    except redis.AuthenticationError:
        return QualityStatus(where, error=f"Redis at {where} refused the credentials")
    except Exception as exc:  # any client error: reported in the output, not a traceback
        detail = f"{type(exc).__name__}: {exc}"[:200]
        return QualityStatus(where, error=f"cannot reach Redis at {where} ({detail})")
    finally:
        if client is not None:
            with contextlib.suppress(Exception):  # closing is best effort
                client.close()


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def render_quality(status: QualityStatus) -> str:
    """The section under the shard table: one row per day, oldest first, and the window's total."""
    if status.error is not None:
        return f"MODEL QUALITY  not read: {status.error}"
    header = (
        "DAY",
        "LABELLED",
        "FRAUD ALERTED",
        "FRAUD MISSED",
        "CLEAN ALERTED",
        "CLEAN QUIET",
        "UNKNOWN",
        "PRECISION",
        "RECALL",
    )
    rows: list[tuple[str, ...]] = [header]

    def row(label: str, d: DayQuality) -> tuple[str, ...]:
        if d.note:
            return (label, d.note)
        counts = (
            d.labelled,
            d.fraud_alerted,
            d.fraud_missed,
            d.clean_alerted,
            d.clean_quiet,
            d.unknown,
        )
        return (label, *(str(n) for n in counts), _percent(d.precision), _percent(d.recall))

    for day in status.days:
        rows.append(row(day.date, day))
    rows.append(row(f"all {len(status.days)} days", status.total()))
    full = [r for r in rows if len(r) == len(header)]  # an unreadable day's note spans them
    widths = [max(len(r[i]) for r in full) for i in range(len(header))]
    lines = [f"MODEL QUALITY  by day labelled (UTC), {status.redis}"]
    for cells in rows:
        if len(cells) < len(header):  # an unreadable day: its note across the columns
            lines.append(f"{cells[0].ljust(widths[0])}  {cells[1]}")
            continue
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        lines.append("  ".join([first, *rest]).rstrip())
    return "\n".join(lines)
