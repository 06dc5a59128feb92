"""The ASGI application: one POST per Kinesis operation, named by its X-Amz-Target header.

No web framework: every request is the same shape (a POST to /, the operation in a header, the
body in JSON or CBOR), so a dispatch table is all the routing there is. The server (hypercorn)
speaks HTTP/1.1 to boto3 and HTTP/2 cleartext with prior knowledge to the KCL's Java SDK.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from consumer.infra.logs import get_logger
from consumer.local.kinesis_server import wire
from consumer.local.kinesis_server.store import KinesisError, Streams

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

TARGET_PREFIX = "Kinesis_20131202."
MAX_BODY_BYTES = 12 * 1024 * 1024  # PutRecords' 5 MiB as base64 JSON, with room


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class KinesisApp:
    """The ASGI callable over one Streams store. Operations the store does not have are answered
    UnknownOperationException and logged, so a client that needs one shows up in the log."""

    def __init__(self, streams: Streams | None = None) -> None:
        self.streams = streams or Streams()
        # Calls answered per operation, and errors per type: logged when the server stops, so a
        # run's log says what its clients asked (docs/local-stack.md: what the KCL calls).
        self.calls: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        s = self.streams
        self.operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "CreateStream": lambda r: s.create_stream(r, _now_ms()),
            "DeleteStream": s.delete_stream,
            "ListStreams": s.list_streams,
            "DescribeStream": s.describe_stream,
            "DescribeStreamSummary": s.describe_stream_summary,
            "ListShards": s.list_shards,
            "PutRecord": lambda r: s.put_record(r, _now_ms()),
            "PutRecords": lambda r: s.put_records(r, _now_ms()),
            "GetShardIterator": lambda r: s.get_shard_iterator(r, _now_ms()),
            "GetRecords": lambda r: s.get_records(r, _now_ms()),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = {name.decode("latin-1").lower(): value for name, value in scope["headers"]}
        cbor = wire.is_cbor(headers.get("content-type", b"").decode("latin-1"))
        target = headers.get("x-amz-target", b"").decode("latin-1")
        error_headers: list[tuple[bytes, bytes]] = []
        try:
            body = await _read_body(receive)
            status, payload = 200, self.answer(scope["method"], target, body, cbor)
        except KinesisError as error:
            self.errors[error.error_type] += 1
            status, payload = 400, wire.encode_error(error, cbor)
            error_headers = [(b"x-amzn-errortype", error.error_type.encode())]
            if error.error_type == "UnknownOperationException":
                get_logger("kinesis_server").warning("unknown_operation", target=target)
        except Exception as error:  # a bug here: one JSON line and a 500, the server goes on
            self.errors["InternalFailure"] += 1
            get_logger("kinesis_server").error(
                "internal_error", target=target, error=repr(error), exc_info=True
            )
            status = 500
            payload = wire.encode_error(KinesisError("InternalFailure", "internal error"), cbor)
            error_headers = [(b"x-amzn-errortype", b"InternalFailure")]
        response_headers = [
            *error_headers,
            (b"content-type", (wire.CBOR_TYPE if cbor else wire.JSON_TYPE).encode()),
            (b"content-length", str(len(payload)).encode()),
            (b"x-amzn-requestid", str(uuid.uuid4()).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": payload})

    def answer(self, method: str, target: str, body: bytes, cbor: bool) -> bytes:
        if method != "POST":
            raise KinesisError("UnknownOperationException", f"{method} is not a Kinesis call")
        name = target.removeprefix(TARGET_PREFIX)
        operation = self.operations.get(name) if name != target else None
        if operation is None:
            raise KinesisError(
                "UnknownOperationException", f"{target or 'no X-Amz-Target'} is not served here"
            )
        self.calls[name] += 1
        return wire.encode_response(operation(wire.decode_request(body, cbor)), cbor)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise KinesisError("InvalidArgumentException", "the request body exceeds 12 MiB")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
