"""The load test's alert tap drains the queue while the run goes on, and loses nothing."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
from moto import mock_aws

from load_test.alert_tap import AlertTap


def _waiting(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


@mock_aws
def test_messages_sent_before_during_and_after_are_each_returned_once() -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    tap = AlertTap(sqs, url, interval_s=0.05)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": 0}))

    tap.start()
    for n in range(1, 20):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": n}))
    deadline = time.monotonic() + 10
    while _waiting(sqs, url):  # drained while running, not only at stop()
        assert time.monotonic() < deadline, "the tap did not drain the queue"
        time.sleep(0.02)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": 20}))
    messages = tap.stop()

    assert sorted(message["n"] for message in messages) == list(range(21))
    assert _waiting(sqs, url) == 0


class FlakyQueue:
    """Its first receive fails; then it holds one message, whose first delete is refused (so
    SQS hands it out again), then nothing."""

    def __init__(self) -> None:
        self.receives = 0
        self.deletes = 0
        self.failed_once = threading.Event()

    def receive_message(self, **_: Any) -> dict[str, Any]:
        self.receives += 1
        if self.receives == 1:
            self.failed_once.set()
            raise ConnectionError("moto is busy")
        if self.deletes < 2:
            body = json.dumps({"MessageId": "m-1", "Message": "{}"})
            return {"Messages": [{"Body": body, "ReceiptHandle": f"h{self.receives}"}]}
        return {}

    def delete_message_batch(self, **_: Any) -> dict[str, Any]:
        self.deletes += 1
        if self.deletes == 1:
            return {"Failed": [{"Id": "0", "Code": "ReceiptHandleIsInvalid"}]}
        return {"Successful": [{"Id": "0"}]}


def test_a_failed_drain_is_retried_and_a_message_seen_twice_is_kept_once() -> None:
    queue = FlakyQueue()
    tap = AlertTap(queue, "queue", interval_s=0.01)
    tap.start()
    assert queue.failed_once.wait(5)
    deadline = time.monotonic() + 5
    while queue.deletes < 2:
        assert time.monotonic() < deadline, "the tap stopped after its first failure"
        time.sleep(0.01)

    messages = tap.stop()

    assert tap.errors == 2  # the failed receive and the refused delete, both retried
    assert [message["MessageId"] for message in messages] == ["m-1"]
