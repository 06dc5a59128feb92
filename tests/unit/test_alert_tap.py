"""The load test's alert tap drains the queue while the run goes on, and loses nothing."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from moto import mock_aws

from load_test.alert_tap import AlertTap


@mock_aws
def test_messages_sent_before_during_and_after_are_each_returned_once() -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    tap = AlertTap(sqs, url, interval_s=0.05)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": 0}))

    tap.start()
    for n in range(1, 20):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": n}))
        time.sleep(0.01)
    time.sleep(0.3)
    waiting = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert waiting["Attributes"]["ApproximateNumberOfMessages"] == "0"  # drained as they came
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": 20}))
    messages = tap.stop()

    assert sorted(message["n"] for message in messages) == list(range(21))
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []


class BrokenQueue:
    def receive_message(self, **_: Any) -> dict[str, Any]:
        raise ConnectionError("the queue went away")


def test_a_failure_in_the_thread_is_raised_by_stop() -> None:
    tap = AlertTap(BrokenQueue(), "queue", interval_s=0.01)
    tap.start()
    time.sleep(0.1)

    with pytest.raises(ConnectionError, match="the queue went away"):
        tap.stop()
