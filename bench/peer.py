"""The peer: a deliberately naive per-record consumer, as a straightforward Lambda would be.

It gets the same processRecords batches (the same bytes) and uses the same decoder and rules
(consumer.records.parse_transaction, consumer.rules.judge), so the difference measured is the
shape of the I/O, not the logic. Per record it makes one network call per operation:

  GET / SET      fs-peer:txn:{id}            producer-retry duplicate check, then mark seen
  ZRANGEBYSCORE  fs-peer:acct:{id}:recent    the account's history within the rule horizon
  HGET           fs-peer:acct:{id}:devices   device seen before?
  GET            fs-peer:acct:{id}:first     account has history?
  (judge)
  ZADD           ...:recent                  this transaction
  HSET           ...:devices                 this device
  SET NX         ...:first                   first transaction of the account

then one S3 PutObject per flagged transaction (one JSON object per key) and one SNS Publish per
alert (severity >= medium). Invalid records get one PutObject each under dead-letter/.
Run as `python -m bench.peer ...` by the harness, in its own process; writes --results JSON.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import resource
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis

from bench.servers import aws_client
from consumer.batch.lines import dead_letter_line, flagged_line, to_json
from consumer.records import InvalidRecord, RecordPosition, parse_transaction
from consumer.rules import (
    AccountHistory,
    HistoryEntry,
    RulesConfig,
    judge,
    severity_at_least,
    state_horizon_s,
)
from consumer.sinks.alerts import mask_account
from load_test.procfs import cpu_seconds, peak_rss_mb

DEDUP_TTL_S = 86400
LATENESS_S = 3600


class NaivePeer:
    """One record at a time, one call per operation."""

    def __init__(
        self,
        redis_conn: Any,
        s3: Any,
        sns: Any,
        bucket: str,
        topic_arn: str,
        shard_id: str,
        rules: RulesConfig | None = None,
        alert_severity: str = "medium",
    ) -> None:
        self._r = redis_conn
        self._s3 = s3
        self._sns = sns
        self._bucket = bucket
        self._topic_arn = topic_arn
        self._shard_id = shard_id
        self._rules = rules if rules is not None else RulesConfig()
        self._alert_severity = alert_severity
        self._keep_s = float(state_horizon_s(self._rules)) + LATENESS_S
        self.counts = {"records": 0, "invalid": 0, "duplicate": 0, "flagged": 0, "alerts": 0}

    def handle_batch(self, line: str) -> None:
        """One processRecords message as the daemon (or a Lambda event) delivers it."""
        for record in json.loads(line)["records"]:
            self.handle_record(record)

    def handle_record(self, record: dict[str, Any]) -> None:
        r = self._r
        self.counts["records"] += 1
        position = RecordPosition(
            self._shard_id,
            record["sequenceNumber"],
            int(record.get("subSequenceNumber") or 0),
            int(record["approximateArrivalTimestamp"]),
        )
        try:
            data = base64.b64decode(record["data"])
        except (binascii.Error, ValueError) as exc:
            self._dead_letter(str(record["data"]).encode(), position, f"data: {exc}")
            return
        txn = parse_transaction(data)
        if isinstance(txn, InvalidRecord):
            self._dead_letter(data, position, txn.reason)
            return

        seen_key = f"fs-peer:txn:{{{txn.transaction_id}}}"
        if r.get(seen_key) is not None:
            self.counts["duplicate"] += 1
            return
        r.set(seen_key, position.sequence_number, ex=DEDUP_TTL_S)

        account = f"fs-peer:acct:{{{txn.account_id}}}"
        event_time = float(txn.event_time)
        members = r.zrangebyscore(f"{account}:recent", event_time - self._keep_s, event_time)
        recent = [_decode(member) for member in members]
        device_seen = txn.device_id is not None and (
            r.hget(f"{account}:devices", txn.device_id) is not None
        )
        has_earlier = r.get(f"{account}:first") is not None

        decision = judge(txn, AccountHistory(recent, device_seen, has_earlier), self._rules)

        r.zadd(f"{account}:recent", {_encode(position, txn.event_time, txn): event_time})
        if txn.device_id is not None:
            r.hset(f"{account}:devices", txn.device_id, position.sequence_number)
        r.set(f"{account}:first", position.sequence_number, nx=True)

        if not decision.flagged or decision.severity is None:
            return
        self.counts["flagged"] += 1
        detected_at = datetime.now(UTC)
        message = to_json(flagged_line(txn, decision, position, detected_at, "builtin"))
        at = position.arrival
        self._s3.put_object(
            Bucket=self._bucket,
            Key=f"peer/flagged/dt={at:%Y-%m-%d}/hour={at:%H}/{txn.transaction_id}.json",
            Body=message.encode(),
            ContentType="application/json",
        )
        if severity_at_least(decision.severity, self._alert_severity):
            self.counts["alerts"] += 1
            rules = ",".join(reason.rule for reason in decision.reasons)
            self._sns.publish(
                TopicArn=self._topic_arn,
                Message=message,
                Subject=(
                    f"fraudstream {decision.severity}: account {mask_account(txn.account_id)}"
                )[:100],
                MessageAttributes={
                    "severity": {"DataType": "String", "StringValue": decision.severity},
                    "rules": {"DataType": "String", "StringValue": rules},
                },
            )

    def _dead_letter(self, data: bytes, position: RecordPosition, reason: str) -> None:
        self.counts["invalid"] += 1
        self._s3.put_object(
            Bucket=self._bucket,
            Key=f"peer/dead-letter/{position.shard_id}-{position.sequence_number}.json",
            Body=to_json(dead_letter_line(data, position, reason)).encode(),
        )


def _encode(position: RecordPosition, event_time: Decimal, txn: Any) -> str:
    lat = "" if txn.latitude is None else repr(txn.latitude)
    lon = "" if txn.longitude is None else repr(txn.longitude)
    return f"{position.sequence_number}|{event_time}|{txn.amount}|{lat}|{lon}"


def _decode(member: bytes | str) -> HistoryEntry:
    text = member.decode() if isinstance(member, bytes) else member
    sequence, event_time, amount, lat, lon = text.split("|")
    return HistoryEntry(
        position=(int(sequence), 0),
        event_time=Decimal(event_time),
        amount=Decimal(amount),
        latitude=float(lat) if lat else None,
        longitude=float(lon) if lon else None,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__)
    parser.add_argument("--lines", type=Path, required=True, help="processRecords lines")
    parser.add_argument("--warmup-batches", type=int, default=0)
    parser.add_argument("--shard-id", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--topic-arn", required=True)
    parser.add_argument("--watch-pid", type=int, action="append", default=[])
    parser.add_argument("--results", type=Path, required=True)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    batches = args.lines.read_text().splitlines()
    redis_conn = redis.Redis.from_url(args.redis_url, socket_connect_timeout=2, socket_timeout=5)
    redis_conn.ping()
    peer = NaivePeer(
        redis_conn,
        aws_client("s3", args.endpoint_url),
        aws_client("sns", args.endpoint_url),
        args.bucket,
        args.topic_arn,
        args.shard_id,
    )
    for line in batches[: args.warmup_batches]:
        peer.handle_batch(line)
    warm_records = peer.counts["records"]

    watched = {pid: cpu_seconds(pid) for pid in args.watch_pid}
    commands_before = int(redis_conn.info("stats")["total_commands_processed"])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    batch_seconds: list[float] = []
    started = time.perf_counter()
    for line in batches[args.warmup_batches :]:
        t0 = time.perf_counter()
        peer.handle_batch(line)
        batch_seconds.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    commands = int(redis_conn.info("stats")["total_commands_processed"]) - commands_before - 1

    results = {
        "records": peer.counts["records"] - warm_records,
        "seconds": elapsed,
        "batch_seconds": batch_seconds,
        "redis_commands": commands,
        "cpu_s": (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime),
        "watched_cpu_s": {str(pid): cpu_seconds(pid) - cpu for pid, cpu in watched.items()},
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "counts": peer.counts,
    }
    args.results.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
