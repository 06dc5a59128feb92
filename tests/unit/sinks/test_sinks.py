import gzip
import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from consumer.infra.readback import drain_queue
from consumer.infra.retry import OutputGaveUp
from consumer.settings.config import FlushConfig, RetryConfig
from consumer.sinks.alerts import Alert, AlertPublisher, mask_account, subject_for
from consumer.sinks.s3_batches import (
    RecordPosition,
    S3JsonLinesBatch,
    dead_letter_key,
    flagged_key,
)
from tests.support.fakes import ManualClock

FAST_RETRY = RetryConfig(max_attempts=3, max_wait_s=0.01)
# 2026-11-28T23:59:59.500Z: an object's partition comes from its first record's arrival.
LATE = 1795910399500


def position(seq: int, arrival_ms: int = LATE, sub: int = 0) -> RecordPosition:
    return RecordPosition("shardId-000000000001", f"{seq:056d}", sub, arrival_ms)


def test_keys_follow_the_contract_layout() -> None:
    first = position(42)
    assert flagged_key("p/", first) == (
        f"p/flagged/dt=2026-11-28/hour=23/shardId-000000000001-{42:056d}.jsonl.gz"
    )
    assert dead_letter_key("", first) == (
        f"dead-letter/dt=2026-11-28/shardId-000000000001-{42:056d}.jsonl.gz"
    )
    assert position(42, sub=3).object_name.endswith(f"{42:056d}.3.jsonl.gz")


@pytest.fixture
def s3() -> Any:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="bkt")
        yield client


def read_object(s3: Any, key: str) -> list[dict[str, Any]]:
    body = s3.get_object(Bucket="bkt", Key=key)["Body"].read()
    return [json.loads(line) for line in gzip.decompress(body).splitlines()]


def test_batch_flushes_by_count_bytes_and_age(s3: Any) -> None:
    clock = ManualClock()
    batch = S3JsonLinesBatch(
        "flagged",
        s3,
        "bkt",
        "",
        flagged_key,
        FlushConfig(max_records=3, max_bytes=100, max_age_s=5),
        FAST_RETRY,
        clock,
    )
    assert not batch.is_due()
    batch.add(b'{"n":1}', position(1))
    batch.add(b'{"n":2}', position(2, arrival_ms=LATE + 10_000))  # next day: still first's key
    assert not batch.is_due()
    clock.now = 5.0
    assert batch.is_due()  # age
    key = batch.flush()
    assert (
        key is not None and "dt=2026-11-28/hour=23/" in key and key.endswith(f"{1:056d}.jsonl.gz")
    )
    assert read_object(s3, key) == [{"n": 1}, {"n": 2}]
    assert len(batch) == 0 and batch.flush() is None

    for n in range(3):
        batch.add(b'{"n":0}', position(10 + n))
    assert batch.is_full()  # count
    batch.flush()
    batch.add(b"x" * 100, position(20))
    assert batch.is_full()  # bytes


def test_a_replayed_batch_overwrites_the_same_object_with_the_same_bytes(s3: Any) -> None:
    def write() -> bytes:
        batch = S3JsonLinesBatch("flagged", s3, "bkt", "", flagged_key, FlushConfig(), FAST_RETRY)
        batch.add(b'{"n":1}', position(7))
        key = batch.flush()
        return s3.get_object(Bucket="bkt", Key=key)["Body"].read()

    first, second = write(), write()
    assert first == second
    assert s3.list_objects_v2(Bucket="bkt")["KeyCount"] == 1


def test_discard_drops_the_buffer_without_writing(s3: Any) -> None:
    batch = S3JsonLinesBatch("flagged", s3, "bkt", "", flagged_key, FlushConfig(), FAST_RETRY)
    batch.add(b"{}", position(1))
    batch.discard()
    assert batch.flush() is None
    assert s3.list_objects_v2(Bucket="bkt")["KeyCount"] == 0


class FlakyS3:
    """Raises the given S3 error codes on the first calls, then accepts."""

    def __init__(self, *codes: str) -> None:
        self.codes = list(codes)
        self.calls = 0

    def put_object(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.codes:
            code = self.codes.pop(0)
            status = 503 if code == "SlowDown" else 403
            raise ClientError(
                {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                "PutObject",
            )
        return {}


def test_s3_throttling_is_retried_and_then_succeeds() -> None:
    s3 = FlakyS3("SlowDown", "SlowDown")
    batch = S3JsonLinesBatch("flagged", s3, "b", "", flagged_key, FlushConfig(), FAST_RETRY)
    batch.add(b"{}", position(1))
    assert batch.flush() is not None
    assert s3.calls == 3


def test_s3_gives_up_after_the_retry_budget() -> None:
    s3 = FlakyS3(*["SlowDown"] * 10)
    batch = S3JsonLinesBatch("flagged", s3, "b", "", flagged_key, FlushConfig(), FAST_RETRY)
    batch.add(b"{}", position(1))
    with pytest.raises(OutputGaveUp, match="s3_flagged"):
        batch.flush()
    assert s3.calls == FAST_RETRY.max_attempts
    assert len(batch) == 1  # nothing forgotten: the next worker replays it


def test_a_permanent_s3_error_gives_up_at_once() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")  # no bucket: NoSuchBucket
        batch = S3JsonLinesBatch(
            "flagged", s3, "missing", "", flagged_key, FlushConfig(), FAST_RETRY
        )
        batch.add(b"{}", position(1))
        with pytest.raises(OutputGaveUp, match="NoSuchBucket"):
            batch.flush()


def alert(n: int, account: str = "acct-1234567", message: str | None = None) -> Alert:
    body = message or json.dumps({"transaction_id": f"t-{n}", "severity": "high"})
    return Alert(f"t-{n}", account, "high", ("high_amount",), body, position(n))


def test_subject_masks_the_account() -> None:
    subject = subject_for(alert(1, account="4111111111111111"))
    assert "4111111111111111" not in subject and "****1111" in subject
    assert mask_account("abc") == "****"
    assert len(subject_for(alert(1, account="x" * 500))) <= 100


def sqs_tap(sns: Any, topic_arn: str) -> tuple[Any, str]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="tap")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn["QueueArn"])
    return sqs, url


def test_alerts_go_out_in_batches_of_ten_with_attributes() -> None:
    with mock_aws():
        sns = boto3.client("sns", region_name="us-east-1")
        topic = sns.create_topic(Name="alerts")["TopicArn"]
        sqs, url = sqs_tap(sns, topic)
        calls: list[int] = []
        real = sns.publish_batch

        def counting(**kwargs: Any) -> Any:
            calls.append(len(kwargs["PublishBatchRequestEntries"]))
            return real(**kwargs)

        sns.publish_batch = counting
        AlertPublisher(sns, topic, FAST_RETRY).publish([alert(n) for n in range(23)])
        assert sorted(calls) == [3, 10, 10]  # published side by side, any order
        received = drain_queue(sqs, url)
        assert sorted(json.loads(m["Message"])["transaction_id"] for m in received) == sorted(
            f"t-{n}" for n in range(23)
        )
        attributes = received[0]["MessageAttributes"]
        assert attributes["severity"]["Value"] == "high"
        assert attributes["rules"]["Value"] == "high_amount"
        assert "1234567" not in received[0]["Subject"]


def test_fifo_topics_get_the_transaction_id_as_deduplication_key() -> None:
    with mock_aws():
        sns = boto3.client("sns", region_name="us-east-1")
        topic = sns.create_topic(Name="alerts.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
        seen: list[dict[str, Any]] = []
        real = sns.publish_batch

        def spy(**kwargs: Any) -> Any:
            seen.extend(kwargs["PublishBatchRequestEntries"])
            return real(**kwargs)

        sns.publish_batch = spy
        AlertPublisher(sns, topic, FAST_RETRY).publish([alert(1)])
        assert seen[0]["MessageDeduplicationId"] == "t-1"
        assert "acct" not in seen[0]["MessageGroupId"]


class FlakySns:
    """Fails chosen entries on the first call, then accepts everything."""

    def __init__(self, fail_ids: set[str], failures: int = 1, sender_fault: bool = False) -> None:
        self.fail_ids = fail_ids
        self.failures = failures
        self.sender_fault = sender_fault
        self.calls: list[list[str]] = []
        self.entries: list[list[dict[str, Any]]] = []

    def publish_batch(self, TopicArn: str, PublishBatchRequestEntries: list[Any]) -> Any:
        ids = [e["Id"] for e in PublishBatchRequestEntries]
        self.calls.append(ids)
        self.entries.append(PublishBatchRequestEntries)
        failing = self.fail_ids if len(self.calls) <= self.failures else set()
        return {
            "Successful": [{"Id": i} for i in ids if i not in failing],
            "Failed": [
                {"Id": i, "Code": "InternalError", "SenderFault": self.sender_fault}
                for i in ids
                if i in failing
            ],
        }


def test_only_failed_alert_entries_are_retried() -> None:
    sns = FlakySns({"1", "4"})
    AlertPublisher(sns, "arn:aws:sns:us-east-1:1:t", FAST_RETRY).publish(
        [alert(n) for n in range(6)]
    )
    assert sns.calls == [["0", "1", "2", "3", "4", "5"], ["1", "4"]]


def test_alerts_give_up_visibly_after_the_budget() -> None:
    sns = FlakySns({"0"}, failures=99)
    with pytest.raises(OutputGaveUp, match="sns_alerts"):
        AlertPublisher(sns, "arn:aws:sns:us-east-1:1:t", FAST_RETRY).publish([alert(0)])
    assert len(sns.calls) == FAST_RETRY.max_attempts


def test_batches_stay_under_the_256_kib_request_limit() -> None:
    sns = FlakySns(set(), failures=0)
    big = [
        alert(n, message=json.dumps({"transaction_id": f"t-{n}", "pad": "x" * 60_000}))
        for n in range(10)
    ]
    AlertPublisher(sns, "arn:aws:sns:us-east-1:1:t", FAST_RETRY).publish(big)
    assert sum(len(call) for call in sns.calls) == 10
    for entries in sns.entries:
        assert sum(len(e["Message"].encode()) for e in entries) <= 256 * 1024


def test_a_record_too_large_for_sns_keeps_every_other_field() -> None:
    sns = FlakySns(set(), failures=0)
    line = {
        "transaction_id": "t-1",
        "severity": "high",
        "reasons": [],
        "transaction": {"pad": "x" * 300_000},
    }
    AlertPublisher(sns, "arn:aws:sns:us-east-1:1:t", FAST_RETRY).publish(
        [alert(1, message=json.dumps(line))]
    )
    sent = json.loads(sns.entries[0][0]["Message"])
    assert sent == {
        "transaction_id": "t-1",
        "severity": "high",
        "reasons": [],
        "transaction_truncated": True,
    }


def test_alerts_sns_rejects_for_good_are_returned_not_retried() -> None:
    sns = FlakySns({"1"}, failures=99, sender_fault=True)
    rejected = AlertPublisher(sns, "arn:aws:sns:us-east-1:1:t", FAST_RETRY).publish(
        [alert(0), alert(1), alert(2)]
    )
    assert [r.alert.transaction_id for r in rejected] == ["t-1"]
    assert len(sns.calls) == 1


def test_odd_transaction_ids_travel_as_a_digest_in_attributes() -> None:
    sns = FlakySns(set(), failures=0)
    odd = Alert("t\x01\n", "acct-1", "high", ("high_amount",), "{}", position(1))
    AlertPublisher(sns, "arn:aws:sns:us-east-1:1:t", FAST_RETRY).publish([odd])
    value = sns.entries[0][0]["MessageAttributes"]["transaction_id"]["StringValue"]
    assert value.isalnum() and len(value) == 64
