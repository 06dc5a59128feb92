"""The record processor driven through the real kclpy protocol loop, against moto's S3 and SNS."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
import structlog
from botocore.exceptions import ClientError
from moto import mock_aws

from consumer.infra.cloudwatch import CloudWatchPublisher
from consumer.infra.metrics import METRICS
from consumer.settings.config import FlushConfig, MetricsConfig, RetryConfig, Settings, StateConfig
from consumer.sinks.alert_process import AlertProcess
from consumer.state.store import AccountStateStore
from consumer.worker.kcl_io import kcl_process
from consumer.worker.processor import EXIT_GAVE_UP, FraudRecordProcessor
from consumer.worker.wiring import assemble_pipeline
from tests.support import kcl_messages as msg
from tests.support.alert_sinks import file_sink
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
    publisher: CloudWatchPublisher | None = None,
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
        config,
        build=lambda shard, s: assemble_pipeline(shard, s, aws.s3, aws.sns, aws.redis),
        publisher=publisher,
    )
    kcl_process(processor, daemon.stdin, daemon.stdout, daemon.stderr).run()
    return daemon


def one_batch_then_shutdown(batch: list[dict[str, Any]]) -> list[str]:
    """The daemon's script: initialize, one processRecords, then a requested shutdown."""
    return [msg.initialize(SHARD), msg.process_records(batch), msg.shutdown_requested()]


def assert_gives_up_without_checkpointing(
    aws: Aws, events: list[str], batch: list[dict[str, Any]], **settings: Any
) -> None:
    """One batch whose outputs cannot be written: the worker exits, nothing checkpointed."""
    with pytest.raises(SystemExit) as exited:
        run(aws, one_batch_then_shutdown(batch), events, **settings)
    assert exited.value.code == EXIT_GAVE_UP
    assert not any(e.startswith("checkpoint") for e in events)


def two_batches_then_shutdown(one: list[dict[str, Any]], two: list[dict[str, Any]]) -> list[str]:
    """The daemon's script: initialize, two processRecords, then a requested shutdown."""
    return [
        msg.initialize(SHARD),
        msg.process_records(one),
        msg.process_records(two),
        msg.shutdown_requested(),
    ]


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
    script = one_batch_then_shutdown(batch)
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
    assert lines[0]["sub_sequence_number"] == 0
    assert lines[0]["rules_version"] == "builtin"
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
    assert_gives_up_without_checkpointing(aws, events, batch, flush=FlushConfig(max_records=1))


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
    script = two_batches_then_shutdown(one, two)
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
    daemon = run(aws, one_batch_then_shutdown(batch), events)
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
    script = two_batches_then_shutdown(one, two)
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
    assert_gives_up_without_checkpointing(aws, events, batch)


def _slow_state_writes(
    monkeypatch: pytest.MonkeyPatch, events: list[str], delay_s: float, fail: bool = False
) -> None:
    """Saves that take `delay_s` (or fail) and loads, recorded with the thread they ran on."""
    real_write = AccountStateStore.write
    real_load = AccountStateStore.load

    def write(self: AccountStateStore, prepared: Any) -> int:
        time.sleep(delay_s)
        if fail:
            raise redis.ConnectionError("redis unreachable")
        written = real_write(self, prepared)
        events.append(f"saved-on:{threading.current_thread().name.split('_')[0]}")
        return written

    def load(self: AccountStateStore, items: Any, in_flight: Any = None) -> Any:
        loaded = real_load(self, items, in_flight)
        events.append("load")  # once it has read Redis
        return loaded

    monkeypatch.setattr(AccountStateStore, "write", write)
    monkeypatch.setattr(AccountStateStore, "load", load)


def test_the_state_save_runs_in_the_background_and_every_read_and_checkpoint_waits_for_it(
    aws: Aws, events: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _slow_state_writes(monkeypatch, events, delay_s=0.2)
    # One device, two batches, no in-process cache: batch 2 reads batch 1's state from Redis.
    one = [msg.record(txn("t-1", "20000"), seq(1), ARRIVAL)]
    two = [msg.record(txn("t-2", "12.50"), seq(2), ARRIVAL)]
    script = two_batches_then_shutdown(one, two)
    daemon = run(aws, script, events, state=StateConfig(cache_accounts=0))
    assert events == [
        "load",
        "saved-on:state-save",  # off the batch's thread, and before the next batch reads state
        "load",
        "saved-on:state-save",  # and before anything is flushed or checkpointed
        "put:flagged",
        f"checkpoint:{seq(2)}",
    ]
    assert daemon.checkpoints == [seq(2)]
    # The alerted mark (SET XX on the key the save creates) waited for the slow save.
    assert aws.redis.get("fs:txn:{t-1}").endswith(b"|A")
    assert [a["transaction_id"] for a in aws.alerts()] == ["t-1"]


def test_a_batch_whose_accounts_are_cached_loads_while_the_previous_save_is_written(
    aws: Aws, events: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _slow_state_writes(monkeypatch, events, delay_s=0.2)
    # The same account twice, the in-process cache on: batch 2 need not wait for batch 1's save;
    # it still sees batch 1 (t-1 again is a duplicate: not judged, stored or alerted twice).
    one = [msg.record(txn("t-1", "20000"), seq(1), ARRIVAL)]
    two = [msg.record(txn("t-1", "20000"), seq(2), ARRIVAL)]
    two.append(msg.record(txn("t-2", "12.50"), seq(3), ARRIVAL))
    script = two_batches_then_shutdown(one, two)
    daemon = run(aws, script, events)
    assert events[:4] == ["load", "load", "saved-on:state-save", "saved-on:state-save"]
    assert events[4:] == ["put:flagged", f"checkpoint:{seq(3)}"]
    assert daemon.checkpoints == [seq(3)]
    assert aws.redis.zcard("fs:acct:{acct-0001}:recent") == 2  # t-1 once, t-2
    assert [a["transaction_id"] for a in aws.alerts()] == ["t-1"]


def test_a_state_save_that_gives_up_exits_the_worker_without_checkpointing(
    aws: Aws, events: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _slow_state_writes(monkeypatch, events, delay_s=0, fail=True)
    batch = [msg.record(txn("t-1", "12.50"), seq(1), ARRIVAL)]
    assert_gives_up_without_checkpointing(aws, events, batch)
    assert aws.objects("flagged/") == {}


def test_a_save_that_gives_up_is_not_lost_when_the_next_load_need_not_wait_for_it(
    aws: Aws, events: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slow and failing: batch 2's load (the same account, cached) runs while it is in flight.
    _slow_state_writes(monkeypatch, events, delay_s=0.2, fail=True)
    one = [msg.record(txn("t-1", "12.50"), seq(1), ARRIVAL)]
    two = [msg.record(txn("t-2", "20000"), seq(2), ARRIVAL)]  # would alert
    with pytest.raises(SystemExit) as exited:
        run(aws, two_batches_then_shutdown(one, two), events)
    assert exited.value.code == EXIT_GAVE_UP
    assert events.count("load") == 2  # batch 2 was loaded and judged beside the failing save
    assert not any(e.startswith(("checkpoint", "put")) for e in events)
    assert aws.alerts() == []  # nothing of batch 2 went out on a state that was never saved


def test_stray_writes_to_stdout_cannot_reach_the_protocol() -> None:
    code = (
        "import sys; from consumer.worker.processor import claim_stdout\n"
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


def test_metrics_of_the_batches_are_in_cloudwatch_after_shutdown(
    aws: Aws, events: list[str]
) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    METRICS.snapshot_and_reset()  # counts other tests left behind
    # An interval far longer than the test: only the final flush at shutdown publishes.
    config = MetricsConfig(namespace="FraudTest", application="fraud-app", interval_s=3600)
    publisher = CloudWatchPublisher(cloudwatch, config)
    first = [
        msg.record(txn("t-1", "10000.01"), seq(1), ARRIVAL),  # high_amount
        msg.record(txn("t-2", "12.50"), seq(2), ARRIVAL),
        msg.record(b"{not json", seq(3), ARRIVAL),
    ]
    second = [
        msg.record(txn("t-1", "10000.01"), seq(4), ARRIVAL),  # a producer retry of t-1
        msg.record(txn("t-5", "30000"), seq(5), ARRIVAL),
    ]
    script = [
        msg.initialize(SHARD),
        msg.process_records(first, millis_behind_latest=4000),
        msg.process_records(second, millis_behind_latest=1500),
        msg.shutdown_requested(),
    ]
    try:
        daemon = run(aws, script, events, publisher=publisher)
    finally:
        publisher.close()
    assert daemon.checkpoints == [seq(5)]
    assert publisher.calls == 1  # one PutMetricData for the whole run

    listed = cloudwatch.list_metrics(Namespace="FraudTest")["Metrics"]
    assert all({"Name": "Application", "Value": "fraud-app"} in m["Dimensions"] for m in listed)
    names = {m["MetricName"] for m in listed}
    assert {"RecordsJudged", "BatchProcessingTime", "RedisLatency", "S3FlushLatency"} <= names

    def stat(metric: str, statistic: str, **extra: str) -> float:
        now = datetime.now(UTC)
        dimensions = [{"Name": "Application", "Value": "fraud-app"}]
        dimensions += [{"Name": k, "Value": v} for k, v in extra.items()]
        points = cloudwatch.get_metric_statistics(
            Namespace="FraudTest",
            MetricName=metric,
            Dimensions=dimensions,
            StartTime=now - timedelta(minutes=5),
            EndTime=now + timedelta(minutes=5),
            Period=60,
            Statistics=[statistic],
        )["Datapoints"]
        assert len(points) == 1, (metric, points)
        return float(points[0][statistic])

    assert stat("RecordsJudged", "Sum") == 3
    assert stat("RecordsFlagged", "Sum") == 2
    assert stat("FlaggedByRule", "Sum", Rule="high_amount") == 2
    assert stat("FlaggedBySeverity", "Sum", Severity="high") == 2
    assert stat("RecordsDuplicate", "Sum") == 1
    assert stat("RecordsInvalid", "Sum") == 1
    assert stat("DeadLetters", "Sum") == 1
    assert stat("AlertsSent", "Sum") == 2
    assert stat("S3Flushes", "Sum") == 2
    assert stat("Checkpoints", "Sum") == 1
    assert stat("ProcessingErrors", "Sum") == 0
    assert stat("MillisBehindLatest", "Maximum") == 4000
    assert stat("BatchProcessingTime", "SampleCount") == 2
    assert stat("S3FlushLatency", "SampleCount") == 2
    assert stat("RedisLatency", "SampleCount") >= 2  # a load and a save per batch, at least


def test_a_cloudwatch_outage_costs_the_metrics_not_the_records(aws: Aws, events: list[str]) -> None:
    class DownCloudWatch:
        calls = 0

        def put_metric_data(self, **kwargs: Any) -> None:
            DownCloudWatch.calls += 1
            raise ConnectionResetError("cloudwatch unreachable")

    METRICS.snapshot_and_reset()
    publisher = CloudWatchPublisher(DownCloudWatch(), MetricsConfig(interval_s=3600))
    batch = [msg.record(txn("t-1", "20000"), seq(1), ARRIVAL)]
    script = one_batch_then_shutdown(batch)
    try:
        daemon = run(aws, script, events, publisher=publisher)
    finally:
        publisher.close()
    assert daemon.status_replies() == ["initialize", "processRecords", "shutdownRequested"]
    assert daemon.checkpoints == [seq(1)]
    assert len(aws.objects("flagged/")) == 1
    assert 1 <= DownCloudWatch.calls <= 2 * 3  # bounded: the shutdown flush and the close
    assert METRICS.snapshot_and_reset()["metrics.dropped_datums"] > 0


def test_a_processor_whose_daemon_is_gone_exits_on_its_own(tmp_path: Any) -> None:
    """The daemon dies while the processor is busy (here: sleeping): it must not live on."""
    pid_file = tmp_path / "child.pid"
    child = (
        "import os, time\n"
        "from consumer.worker.processor import exit_when_orphaned\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "exit_when_orphaned(os.getppid(), poll_s=0.05)\n"
        "time.sleep(60)\n"
    )
    daemon = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', {child!r}])\n"
        "time.sleep(1.5)\n"  # the child is up and watching; then the 'daemon' dies
    )
    subprocess.run([sys.executable, "-c", daemon], check=True, timeout=30)
    child_pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child_pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return not any(line.startswith("State:\tZ") for line in status)
    except FileNotFoundError:
        return False


def test_alerts_through_an_alert_process_refusals_dead_lettered_and_the_child_reaped(
    aws: Aws, events: list[str], tmp_path: Path
) -> None:
    """The worker's wiring with FRAUD_ALERT_PROCESS: the batch's alerts are published by the
    child before the checkpoint, one the child's sink refuses is dead-lettered by the worker,
    and closing the processor (the end of the shard's work) reaps the child."""
    sent = tmp_path / "published.jsonl"
    children: list[AlertProcess] = []

    def build(shard: str, settings: Settings) -> Any:
        child = AlertProcess(
            partial(file_sink, str(sent), refuse=("t-4",)), retry_deadline_s=1.0, shard_id=shard
        )
        children.append(child)
        return assemble_pipeline(shard, settings, aws.s3, None, aws.redis, child)

    batch = [
        msg.record(txn("t-1", "12.50"), seq(1), ARRIVAL),
        msg.record(txn("t-2", "10000.01"), seq(2), ARRIVAL),
        msg.record(txn("t-4", "25000.5", account="4111111111111111"), seq(4), ARRIVAL),
    ]
    daemon = FakeDaemon(one_batch_then_shutdown(batch), events)
    config = Settings(bucket="bkt", topic_arn=aws.topic, redis_url="redis://unused")
    processor = FraudRecordProcessor(config, build=build)
    kcl_process(processor, daemon.stdin, daemon.stdout, daemon.stderr).run()

    assert daemon.checkpoints == [seq(4)]
    [child] = children
    published = [json.loads(line) for line in sent.read_text().splitlines()]
    assert [line["ids"] for line in published] == [["t-2"]]  # t-4 refused
    assert published[0]["pid"] == child.pid
    [letters] = aws.objects("dead-letter/").values()
    assert [letter["sequence_number"] for letter in letters] == [seq(4)]
    assert "alert rejected by SNS (InvalidParameter)" in letters[0]["error"]
    processor.close()
    assert not Path(f"/proc/{child.pid}").exists()
