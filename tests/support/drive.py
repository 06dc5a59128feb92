"""Run the real record processor over the MultiLangDaemon protocol, with S3 and SNS in memory.

`drive` feeds batches of raw records to a FraudRecordProcessor through a real KCLProcess (the
fake daemon answers checkpoints), with real Redis, and returns what came out: dead letters,
flagged lines, alerts, checkpoints and the protocol replies. A SystemExit (the processor giving
up) propagates to the caller, so a test that expects the worker to stay up fails on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from consumer.settings.config import RetryConfig, Settings
from consumer.worker.kcl_io import kcl_process
from consumer.worker.processor import FraudRecordProcessor
from consumer.worker.wiring import assemble_pipeline
from tests.support import kcl_messages as msg
from tests.support.fake_daemon import FakeDaemon
from tests.support.memory_aws import MemoryS3, MemorySns

SHARD = "shardId-000000000000"
ARRIVAL = 1795910400000  # 2026-11-29T00:00:00Z


def seq(n: int) -> str:
    return f"{n:056d}"


@dataclass
class Outcome:
    daemon: FakeDaemon
    s3: MemoryS3
    sns: MemorySns
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    flagged: list[dict[str, Any]] = field(default_factory=list)

    @property
    def checkpoints(self) -> list[str | None]:
        return self.daemon.checkpoints

    @property
    def replies(self) -> list[str]:
        return self.daemon.status_replies()


def drive(
    batches: Sequence[Sequence[bytes]],
    redis_conn: Any,
    arrival_ms: int = ARRIVAL,
    first_seq: int = 1,
    **settings: Any,
) -> Outcome:
    """Each batch one processRecords call, sequence numbers counting from `first_seq`; then a
    shutdown request (which flushes and checkpoints what is pending)."""
    s3, sns = MemoryS3(), MemorySns()
    config = Settings(
        bucket="bkt",
        topic_arn="arn:aws:sns:us-east-1:123456789012:alerts",
        redis_url="redis://unused",
        retry=RetryConfig(max_attempts=2, max_wait_s=0.01),
        **settings,
    )
    script = [msg.initialize(SHARD)]
    n = first_seq
    for batch in batches:
        records = []
        for data in batch:
            records.append(msg.record(data, seq(n), arrival_ms))
            n += 1
        script.append(msg.process_records(records))
    script.append(msg.shutdown_requested())
    daemon = FakeDaemon(script)
    processor = FraudRecordProcessor(
        config, build=lambda shard, s: assemble_pipeline(shard, s, s3, sns, redis_conn)
    )
    kcl_process(processor, daemon.stdin, daemon.stdout, daemon.stderr).run()
    return Outcome(daemon, s3, sns, s3.dead_letters(), s3.flagged())
