"""The record processor driven through the real kclpy protocol loop, against moto's S3 and SNS."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import structlog
from amazon_kclpy import kcl
from botocore.exceptions import ClientError
from moto import mock_aws

from consumer.config import FlushConfig, RetryConfig, Settings
from consumer.processor import EXIT_GAVE_UP, FraudRecordProcessor
from consumer.wiring import assemble_pipeline
from tests.support import kcl_messages as msg
from tests.support.fake_daemon import FakeDaemon

SHARD = "shardId-000000000000"
ARRIVAL = 1795910400000  # 2026-11-29T00:00:00Z


def txn(tid: str, amount: str, account: str = "acct-0001") -> bytes:
    return (
        f'{{"transaction_id":"{tid}","account_id":"{account}","amount":{amount},'
        f'"timestamp":"2026-11-28T23:59:00Z","merchant":{{"id":"m-1"}}}}'
    ).encode()


def seq(n: int) -> str:
    return f"{n:056d}"


class Aws:
    def __init__(self, events: list[str], redis_conn: Any) -> None:
        self.redis = redis_conn
        self.s3 = boto3.client("s3", region_name="us-east-1")
        self.s3.create_bucket(Bucket="bkt")
        self.sns = boto3.client("sns", region_name="us-east-1")
        self.topic = self.sns.create_topic(Name="alerts")["TopicArn"]
        sqs = boto3.client("sqs", region_name="us-east-1")
        self.queue = sqs.create_queue(QueueName="tap")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])
        self.sns.subscribe(
            TopicArn=self.topic, Protocol="sqs", Endpoint=arn["Attributes"]["QueueArn"]
        )
        self.sqs = sqs
        real_put = self.s3.put_object

        def recording_put(**kwargs: Any) -> Any:
            response = real_put(**kwargs)
            events.append(f"put:{kwargs['Key'].split('/')[0]}")
            return response

        self.s3.put_object = recording_put

    def objects(self, prefix: str) -> dict[str, list[dict[str, Any]]]:
        found = {}
        listing = self.s3.list_objects_v2(Bucket="bkt", Prefix=prefix).get("Contents", [])
        for item in listing:
            body = self.s3.get_object(Bucket="bkt", Key=item["Key"])["Body"].read()
            found[item["Key"]] = [json.loads(x) for x in gzip.decompress(body).splitlines()]
        return found

    def alerts(self) -> list[dict[str, Any]]:
        got = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10)
        return [json.loads(json.loads(m["Body"])["Message"]) for m in got.get("Messages", [])]


@pytest.fixture
def events() -> list[str]:
    return []


@pytest.fixture
def aws(events: list[str], redis_conn: Any) -> Iterator[Aws]:
    with mock_aws():
        yield Aws(events, redis_conn)


def run(
    aws: Aws,
    script: list[str],
    events: list[str],
    checkpoint_errors: tuple[str, ...] = (),
    **settings: Any,
) -> FakeDaemon:
    config = Settings(
        bucket="bkt",
        topic_arn=aws.topic,
        redis_url="redis://unused",
        retry=RetryConfig(max_attempts=2, max_wait_s=0.01),
        **settings,
    )
    daemon = FakeDaemon(script, events)
    daemon.checkpoint_errors.extend(checkpoint_errors)
    processor = FraudRecordProcessor(
        config, build=lambda shard, s: assemble_pipeline(shard, s, aws.s3, aws.sns, aws.redis)
    )
    kcl.KCLProcess(processor, daemon.stdin, daemon.stdout, daemon.stderr).run()
    return daemon


def test_a_batch_is_judged_written_and_checkpointed_only_after_the_writes(
    aws: Aws, events: list[str]
) -> None:
    batch = [
        msg.record(txn("t-1", "10000"), seq(1), ARRIVAL),
        msg.record(txn("t-2", "10000.01"), seq(2), ARRIVAL),
        msg.record(b"{not json", seq(3), ARRIVAL),
        msg.record(txn("t-4", "25000.5", account="4111111111111111"), seq(4), ARRIVAL),
        msg.record(txn("t-5", "12.50"), seq(5), ARRIVAL),
    ]
    script = [msg.initialize(SHARD), msg.process_records(batch), msg.shutdown_requested()]
    daemon = run(aws, script, events)

    assert daemon.status_replies() == ["initialize", "processRecords", "shutdownRequested"]
    assert daemon.checkpoints == [seq(5)]
    # Both objects were PUT before the checkpoint was requested.
    assert events == ["put:flagged", "put:dead-letter", f"checkpoint:{seq(5)}"]

    flagged = aws.objects("flagged/")
    assert list(flagged) == [f"flagged/dt=2026-11-29/hour=00/{SHARD}-{seq(2)}.jsonl.gz"]
    lines = flagged[next(iter(flagged))]
    assert [line["transaction_id"] for line in lines] == ["t-2", "t-4"]
    assert lines[0]["reasons"][0]["rule"] == "high_amount"
    assert lines[0]["severity"] == "high"
    assert lines[0]["sequence_number"] == seq(2) and lines[0]["shard_id"] == SHARD
    # The record passes through untouched, extra fields and exact numbers included.
    assert lines[1]["transaction"]["amount"] == 25000.5
    assert lines[1]["transaction"]["merchant"] == {"id": "m-1"}
    assert '"amount":10000.01' in json.dumps(lines[0]["transaction"], separators=(",", ":"))

    dead = aws.objects("dead-letter/")
    [(key, [letter])] = dead.items()
    assert key == f"dead-letter/dt=2026-11-29/{SHARD}-{seq(3)}.jsonl.gz"
    assert letter["sequence_number"] == seq(3)
    assert "JSON" in letter["error"]

    assert sorted(a["transaction_id"] for a in aws.alerts()) == ["t-2", "t-4"]


def test_nothing_but_protocol_reaches_stdout(aws: Aws, events: list[str]) -> None:
    batch = [msg.record(txn("t-1", "99999"), seq(1), ARRIVAL), msg.record(b"\xff", seq(2), ARRIVAL)]
    daemon = run(aws, [msg.initialize(SHARD), msg.process_records(batch)], events)
    for line in daemon.stdout_lines:
        assert json.loads(line)["action"] in ("status", "checkpoint")


def test_a_full_buffer_commits_mid_stream(aws: Aws, events: list[str]) -> None:
    batch = [msg.record(txn(f"t-{n}", "20000"), seq(n), ARRIVAL) for n in range(1, 4)]
    script = [msg.initialize(SHARD), msg.process_records(batch)]
    daemon = run(aws, script, events, flush=FlushConfig(max_records=3))
    assert daemon.checkpoints == [seq(3)]
    assert len(aws.objects("flagged/")) == 1


def test_outputs_that_stay_unwritable_exit_the_worker_without_checkpointing(
    aws: Aws, events: list[str]
) -> None:
    aws.s3.delete_bucket(Bucket="bkt")
    batch = [msg.record(txn("t-1", "20000"), seq(1), ARRIVAL)]
    script = [msg.initialize(SHARD), msg.process_records(batch), msg.shutdown_requested()]
    with pytest.raises(SystemExit) as exited:
        run(aws, script, events, flush=FlushConfig(max_records=1))
    assert exited.value.code == EXIT_GAVE_UP
    assert not any(e.startswith("checkpoint") for e in events)


def test_lease_lost_drops_buffers_and_never_checkpoints(aws: Aws, events: list[str]) -> None:
    batch = [msg.record(txn("t-1", "20000"), seq(1), ARRIVAL)]
    daemon = run(aws, [msg.initialize(SHARD), msg.process_records(batch), msg.lease_lost()], events)
    assert daemon.checkpoints == []
    assert aws.objects("flagged/") == {}
    assert daemon.status_replies()[-1] == "leaseLost"


def test_shard_end_flushes_then_checkpoints_the_end(aws: Aws, events: list[str]) -> None:
    batch = [msg.record(txn("t-1", "20000"), seq(1), ARRIVAL)]
    daemon = run(
        aws, [msg.initialize(SHARD), msg.process_records(batch), msg.shard_ended()], events
    )
    assert events == ["put:flagged", "checkpoint:None"]
    assert daemon.checkpoints == [None]


def test_every_line_a_processor_logs_after_initialize_names_its_shard(
    aws: Aws, events: list[str]
) -> None:
    structlog.contextvars.clear_contextvars()
    try:
        run(aws, [msg.initialize(SHARD)], events)
        assert structlog.contextvars.get_contextvars().get("shard_id") == SHARD
    finally:
        structlog.contextvars.unbind_contextvars("shard_id")


def test_after_the_kcl_says_the_lease_is_gone_the_processor_writes_nothing_more(
    aws: Aws, events: list[str]
) -> None:
    one = [msg.record(txn("t-1", "20000"), seq(1), ARRIVAL)]
    two = [msg.record(txn("t-2", "20000"), seq(2), ARRIVAL)]
    script = [
        msg.initialize(SHARD),
        msg.process_records(one),
        msg.process_records(two),
        msg.shutdown_requested(),
    ]
    daemon = run(aws, script, events, ("ShutdownException",), flush=FlushConfig(max_records=1))
    # The worker stays up (other shards go on), but this shard produces nothing further:
    # a second unconfirmed object would race the new owner's replay.
    assert daemon.status_replies() == [
        "initialize",
        "processRecords",
        "processRecords",
        "shutdownRequested",
    ]
    assert daemon.checkpoints == []
    assert events == ["put:flagged"]


@pytest.mark.parametrize("error", ["InvalidStateException", "IllegalArgumentException"])
def test_a_checkpoint_refused_for_other_reasons_exits_the_worker(
    aws: Aws, events: list[str], error: str
) -> None:
    batch = [msg.record(txn("t-1", "20000"), seq(1), ARRIVAL)]
    with pytest.raises(SystemExit) as exited:
        run(
            aws,
            [msg.initialize(SHARD), msg.process_records(batch)],
            events,
            (error,),
            flush=FlushConfig(max_records=1),
        )
    assert exited.value.code == EXIT_GAVE_UP


def test_a_refused_checkpoint_then_a_crash_duplicates_nothing(aws: Aws, events: list[str]) -> None:
    one = [msg.record(txn("t-1", "20000"), seq(1), ARRIVAL)]
    two = [msg.record(txn("t-2", "20000"), seq(2), ARRIVAL)]
    with pytest.raises(SystemExit):
        run(
            aws,
            [msg.initialize(SHARD), msg.process_records(one), msg.process_records(two)],
            events,
            ("InvalidStateException",),
            flush=FlushConfig(max_records=1),
        )
    # The restarted worker replays from the last checkpoint (none), batched differently.
    run(
        aws,
        [msg.initialize(SHARD), msg.process_records(one + two), msg.shutdown_requested()],
        events,
    )
    ids = [line["transaction_id"] for lines in aws.objects("flagged/").values() for line in lines]
    assert sorted(ids) == ["t-1", "t-2"]


def test_an_alert_sns_rejects_for_good_is_kept_in_the_dead_letters(
    aws: Aws, events: list[str]
) -> None:
    class RejectingSns:
        def publish_batch(self, TopicArn: str, PublishBatchRequestEntries: list[Any]) -> Any:
            failed = [
                {"Id": e["Id"], "Code": "InvalidParameter", "SenderFault": True, "Message": "no"}
                for e in PublishBatchRequestEntries
            ]
            return {"Successful": [], "Failed": failed}

    aws.sns = RejectingSns()
    batch = [msg.record(txn("t-1", "20000"), seq(1), ARRIVAL)]
    daemon = run(
        aws, [msg.initialize(SHARD), msg.process_records(batch), msg.shutdown_requested()], events
    )
    assert daemon.checkpoints == [seq(1)]
    [(_, [letter])] = aws.objects("dead-letter/").items()
    assert letter["error"].startswith("alert rejected by SNS (InvalidParameter)")
    assert json.loads(base64.b64decode(letter["data"]))["transaction_id"] == "t-1"
    assert len(aws.objects("flagged/")) == 1  # the S3 line is there all the same


class SlowRecordingSns:
    """SNS that takes its time, and notes when each PublishBatch is accepted."""

    def __init__(self, real: Any, events: list[str], delay_s: float) -> None:
        self._real = real
        self._events = events
        self._delay_s = delay_s

    def publish_batch(self, **kwargs: Any) -> Any:
        time.sleep(self._delay_s)
        response = self._real.publish_batch(**kwargs)
        self._events.append(f"published:{len(kwargs['PublishBatchRequestEntries'])}")
        return response


def test_alerts_go_out_in_the_background_and_the_checkpoint_waits_for_them(
    aws: Aws, events: list[str]
) -> None:
    aws.sns = SlowRecordingSns(aws.sns, events, delay_s=0.3)
    one = [msg.record(txn("t-1", "20000"), seq(1), ARRIVAL)]
    two = [msg.record(txn("t-2", "12.50"), seq(2), ARRIVAL)]
    script = [
        msg.initialize(SHARD),
        msg.process_records(one),
        msg.process_records(two),
        msg.shutdown_requested(),
    ]
    started = time.monotonic()
    daemon = run(aws, script, events)
    assert time.monotonic() - started >= 0.3
    # Settled first (SNS accepted the alert), then the S3 buffers, then the checkpoint.
    assert events == ["published:1", "put:flagged", f"checkpoint:{seq(2)}"]
    assert daemon.checkpoints == [seq(2)]
    assert [a["transaction_id"] for a in aws.alerts()] == ["t-1"]


def test_alerts_that_stay_unpublishable_exit_the_worker_without_checkpointing(
    aws: Aws, events: list[str]
) -> None:
    class ThrottledSns:
        def publish_batch(self, **kwargs: Any) -> Any:
            raise ClientError(
                {"Error": {"Code": "Throttling", "Message": "slow down"}}, "PublishBatch"
            )

    aws.sns = ThrottledSns()
    batch = [msg.record(txn("t-1", "20000"), seq(1), ARRIVAL)]
    script = [msg.initialize(SHARD), msg.process_records(batch), msg.shutdown_requested()]
    with pytest.raises(SystemExit) as exited:
        run(aws, script, events)
    assert exited.value.code == EXIT_GAVE_UP
    assert not any(e.startswith("checkpoint") for e in events)


def test_stray_writes_to_stdout_cannot_reach_the_protocol() -> None:
    code = (
        "import sys; from consumer.processor import claim_stdout\n"
        "out = claim_stdout()\n"
        "print('stray print'); sys.stdout.write('stray write\\n')\n"
        "import os; os.write(1, b'stray fd write\\n')\n"
        'out.write(\'{"action": "status"}\\n\'); out.flush()\n'
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert result.stdout == '{"action": "status"}\n'
    assert "stray print" in result.stderr and "stray fd write" in result.stderr
