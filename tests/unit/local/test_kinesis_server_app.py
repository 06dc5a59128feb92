"""The local Kinesis server's ASGI dispatch, driven without a network: answers, error answers,
the calls it counts, and a bug in an operation kept to one 500 and one log line."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import cbor2
import pytest

from consumer.infra.logs import configure_logging
from consumer.local.kinesis_server.app import TARGET_PREFIX, KinesisApp

JSON = "application/x-amz-json-1.1"
CBOR = "application/x-amz-cbor-1.1"


def _call(
    app: KinesisApp, target: str, body: bytes, content_type: str = JSON, method: str = "POST"
) -> tuple[int, dict[str, str], bytes]:
    """One request through the app, in chunks as a server hands them over."""
    scope = {
        "type": "http",
        "method": method,
        "headers": [
            (b"content-type", content_type.encode()),
            (b"x-amz-target", target.encode()),
        ],
    }
    chunks = [body[: len(body) // 2], body[len(body) // 2 :]]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, body_message = sent
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, body_message["body"]


def test_an_operation_answers_in_the_request_format_and_is_counted() -> None:
    app = KinesisApp()
    status, _, _ = _call(
        app, TARGET_PREFIX + "CreateStream", b'{"StreamName": "s", "ShardCount": 2}'
    )
    assert status == 200
    status, headers, body = _call(
        app, TARGET_PREFIX + "ListShards", cbor2.dumps({"StreamName": "s"}), CBOR
    )
    assert status == 200 and headers["content-type"] == CBOR
    assert [s["ShardId"] for s in cbor2.loads(body)["Shards"]] == [
        "shardId-000000000000",
        "shardId-000000000001",
    ]
    assert app.calls == {"CreateStream": 1, "ListShards": 1}


def test_a_refusal_is_a_400_with_the_aws_error_type_in_body_and_header() -> None:
    app = KinesisApp()
    status, headers, body = _call(app, TARGET_PREFIX + "DescribeStream", b'{"StreamName": "x"}')
    assert status == 400
    assert headers["x-amzn-errortype"] == "ResourceNotFoundException"
    assert json.loads(body)["__type"] == "ResourceNotFoundException"
    assert app.errors == {"ResourceNotFoundException": 1}


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("POST", "Kinesis_20131202.SplitShard"),
        ("POST", "DynamoDB_20120810.ListTables"),
        ("GET", ""),
    ],
)
def test_what_is_not_served_is_unknown_operation(method: str, target: str) -> None:
    status, headers, _ = _call(KinesisApp(), target, b"{}", method=method)
    assert status == 400 and headers["x-amzn-errortype"] == "UnknownOperationException"


def test_a_bug_in_an_operation_is_one_500_and_one_json_line_and_the_server_goes_on() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    app = KinesisApp()

    def broken(_: dict[str, Any]) -> dict[str, Any]:
        raise ZeroDivisionError("a bug")

    app.operations["ListStreams"] = broken
    status, headers, body = _call(app, TARGET_PREFIX + "ListStreams", b"{}")
    assert status == 500 and headers["x-amzn-errortype"] == "InternalFailure"
    assert json.loads(body)["__type"] == "InternalFailure"
    configure_logging("warning")  # as tests/conftest.py leaves it
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["internal_error"]
    assert "ZeroDivisionError" in lines[0]["error"]
    # The next request is served.
    status, _, _ = _call(app, TARGET_PREFIX + "CreateStream", b'{"StreamName": "s"}')
    assert status == 200
