"""An SNS call's body is url-encoded once, to the very bytes botocore would send
(consumer/infra/query_body.py)."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from botocore import awsrequest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from consumer.infra.query_body import encode_body_once, form_encode
from consumer.infra.readback import drain_queue
from consumer.worker import wiring

EXAMPLES = int(os.environ.get("FRAUD_FUZZ_EXAMPLES", "300"))

REGION = "us-east-1"
# Characters that need escaping, a space, non-ASCII and a character outside the BMP.
MESSAGE = json.dumps(
    {"detail": "amount > 5000 & 'x'=1; ünï €uro 😀 a+b/c?d#e%f"}, ensure_ascii=False
)


def _publish_and_capture(sns: Any, topic_arn: str) -> tuple[bytes, int]:
    """The body sent for one PublishBatch, and how many times botocore url-encoded it."""
    sent: list[bytes] = []
    sns.meta.events.register("before-send.sns", lambda request, **_: sent.append(request.body))
    calls = 0
    real = awsrequest.urlencode

    def counting(*args: Any, **kwargs: Any) -> str:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(awsrequest, "urlencode", counting)
        response = sns.publish_batch(
            TopicArn=topic_arn,
            PublishBatchRequestEntries=[
                {
                    "Id": str(i),
                    "Message": MESSAGE,
                    "Subject": "fraud alert ****1234",
                    "MessageAttributes": {
                        "severity": {"DataType": "String", "StringValue": "high"}
                    },
                }
                for i in range(3)
            ],
        )
    assert len(response["Successful"]) == 3
    return sent[-1], calls


@mock_aws
def test_the_body_is_encoded_once_to_the_same_bytes_and_arrives_intact() -> None:
    plain = boto3.client("sns", region_name=REGION)
    once = encode_body_once(boto3.client("sns", region_name=REGION))
    topic_arn = plain.create_topic(Name="alerts")["TopicArn"]
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="watch")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    plain.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)

    body_plain, encodings_plain = _publish_and_capture(plain, topic_arn)
    body_once, encodings_once = _publish_and_capture(once, topic_arn)

    assert encodings_plain == 2  # botocore's own: the payload hash, then the request
    assert encodings_once == 0  # ours did it before either read the body
    assert body_once == body_plain
    delivered = [envelope["Message"] for envelope in drain_queue(sqs, queue_url)]
    assert delivered == [MESSAGE] * 6


@mock_aws
def test_registering_twice_keeps_one_handler() -> None:
    sns = encode_body_once(encode_body_once(boto3.client("sns", region_name=REGION)))
    topic_arn = sns.create_topic(Name="alerts")["TopicArn"]
    _, encodings = _publish_and_capture(sns, topic_arn)
    assert encodings == 0


@mock_aws
def test_the_workers_sns_client_encodes_once() -> None:
    wiring.aws_client.cache_clear()
    try:
        sns = wiring.aws_client("sns", REGION)
        topic_arn = sns.create_topic(Name="alerts")["TopicArn"]
        _, encodings = _publish_and_capture(sns, topic_arn)
    finally:
        wiring.aws_client.cache_clear()
    assert encodings == 0


_FIELD = st.one_of(st.text(), st.binary(), st.integers())
_VALUE = st.one_of(_FIELD, st.lists(_FIELD, max_size=3), st.tuples(_FIELD, _FIELD))


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.text(), st.binary()), _VALUE), max_size=8))
def test_form_encode_is_the_standard_librarys_urlencode(fields: list[tuple[Any, Any]]) -> None:
    assert form_encode(fields) == urlencode(fields, doseq=True)


def test_form_encode_escapes_every_byte_but_the_unreserved_ones() -> None:
    every_byte = bytes(range(256))
    assert form_encode([("k", every_byte)]) == urlencode([("k", every_byte)])
    assert form_encode([("a b", "x y+z")]) == "a+b=x+y%2Bz"
