"""The load tests take alerts by HTTP from a real moto server for the run and leave the stack's
SQS tap as they found it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from load_test.alert_tap import HttpAlertTap


@pytest.fixture()
def clients() -> Iterator[tuple[Any, Any]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    options = {
        "endpoint_url": f"http://127.0.0.1:{port}",
        "region_name": "us-east-1",
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    try:
        yield boto3.client("sns", **options), boto3.client("sqs", **options)
    finally:
        server.stop()


def _stack(sns: Any, sqs: Any) -> tuple[str, str, str]:
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    url = sqs.create_queue(QueueName="alerts-tap")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return topic, url, arn


def _endpoints(sns: Any, topic: str) -> list[tuple[str, str]]:
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    return sorted((s["Protocol"], s["Endpoint"]) for s in subscriptions)


def test_every_alert_arrives_once_and_the_sqs_tap_is_put_back(clients: tuple[Any, Any]) -> None:
    sns, sqs = clients
    topic, url, arn = _stack(sns, sqs)
    tap = HttpAlertTap(sns, sqs, topic, url)
    tap.start()
    assert _endpoints(sns, topic) == [("http", tap.endpoint)]
    for batch in range(3):
        sns.publish_batch(
            TopicArn=topic,
            PublishBatchRequestEntries=[
                {"Id": str(i), "Message": f"alert {batch}-{i}"} for i in range(10)
            ],
        )
    received = tap.stop()
    assert sorted(m["Message"] for m in received) == sorted(
        f"alert {b}-{i}" for b in range(3) for i in range(10)
    )
    assert all(m["Timestamp"] and m["MessageId"] for m in received)
    assert _endpoints(sns, topic) == [("sqs", arn)]
    # Nothing went to the queue while the HTTP tap ran; what comes after does again.
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    sns.publish(TopicArn=topic, Message="after")
    assert len(sqs.receive_message(QueueUrl=url)["Messages"]) == 1
    tap.close()  # idempotent (it also runs at exit)
    assert _endpoints(sns, topic) == [("sqs", arn)]


def test_a_dead_runs_endpoint_is_removed_so_publishing_works(clients: tuple[Any, Any]) -> None:
    sns, sqs = clients
    topic, url, _ = _stack(sns, sqs)
    with socket.socket() as probe:  # a loopback port nobody serves
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=dead)
    tap = HttpAlertTap(sns, sqs, topic, url)
    tap.start()
    assert ("http", dead) not in _endpoints(sns, topic)
    sns.publish(TopicArn=topic, Message="one")
    assert [m["Message"] for m in tap.stop()] == ["one"]
