"""Kinesis's two wire formats: JSON 1.1 (boto3, the CLI) and CBOR 1.1 (the Java SDK the KCL uses).

They differ in two places the store does not care about: a record's Data is base64 text in JSON
and a byte string in CBOR, and a timestamp is epoch seconds (a decimal) in JSON and epoch
milliseconds (an integer) in CBOR, as the Java SDK v2 writes and reads them. The store keeps
milliseconds and bytes; this module converts at the edge.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import cbor2

from consumer.local.kinesis_server.store import KinesisError

JSON_TYPE = "application/x-amz-json-1.1"
CBOR_TYPE = "application/x-amz-cbor-1.1"
_TIMESTAMPS = ("StreamCreationTimestamp",)


def is_cbor(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == CBOR_TYPE


def decode_request(body: bytes, cbor: bool) -> dict[str, Any]:
    """The request's fields, with Data as bytes and Timestamp as epoch milliseconds."""
    try:
        if cbor:
            request = cbor2.loads(body, semantic_decoders={1: _tag1_epoch_millis})
        else:
            request = json.loads(body or b"{}")
    except (ValueError, cbor2.CBORDecodeError, UnicodeDecodeError) as error:
        raise KinesisError("SerializationException", f"the body is not valid: {error}") from None
    if not isinstance(request, dict):
        raise KinesisError("SerializationException", "the body must be an object")
    if not cbor:
        if "Data" in request:
            request["Data"] = _unbase64(request["Data"], "Data")
        records = request.get("Records")
        if isinstance(records, list):
            for index, entry in enumerate(records):
                if isinstance(entry, dict) and "Data" in entry:
                    entry["Data"] = _unbase64(entry["Data"], f"Records.{index}.Data")
    if "Timestamp" in request:
        request["Timestamp"] = _timestamp_ms(request["Timestamp"], cbor)
    return request


def _unbase64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise KinesisError("SerializationException", f"{where} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise KinesisError("SerializationException", f"{where} is not valid base64") from None


def _tag1_epoch_millis(value: Any, *_: Any) -> Any:
    """CBOR tag 1 as AWS's CBOR uses it: epoch milliseconds, not the seconds of RFC 8949 that
    cbor2 assumes (the Java SDK v2 writes an Instant as tag 1 around its epoch milliseconds).
    Older cbor2 releases hand over the decoder instead of the value."""
    return value.decode() if hasattr(value, "decode") and not isinstance(value, bytes) else value


def _timestamp_ms(value: Any, cbor: bool) -> Any:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value  # the store refuses it with its own message
    if not math.isfinite(value):
        raise KinesisError("InvalidArgumentException", f"Timestamp {value} is not a finite time")
    return int(value) if cbor else round(value * 1000)


def encode_response(answer: Mapping[str, Any], cbor: bool) -> bytes:
    """The answer in the request's format; GetRecords' record tuples become their wire shape."""
    shaped = dict(answer)
    if "Records" in shaped and shaped["Records"] and isinstance(shaped["Records"][0], tuple):
        shaped["Records"] = _records(shaped["Records"], cbor)
    for key in ("StreamDescription", "StreamDescriptionSummary"):
        if key in shaped:
            shaped[key] = _with_time(shaped[key], cbor)
    if "StreamSummaries" in shaped:
        shaped["StreamSummaries"] = [_with_time(entry, cbor) for entry in shaped["StreamSummaries"]]
    if cbor:
        return bytes(cbor2.dumps(shaped))
    return json.dumps(shaped, separators=(",", ":")).encode()


def _with_time(fields: Mapping[str, Any], cbor: bool) -> dict[str, Any]:
    shaped = dict(fields)
    for key in _TIMESTAMPS:
        if key in shaped and not cbor:
            shaped[key] = shaped[key] / 1000
    return shaped


def _records(records: list[tuple[str, bytes, str, int]], cbor: bool) -> list[dict[str, Any]]:
    if cbor:
        return [
            {
                "SequenceNumber": sequence,
                "Data": data,
                "PartitionKey": key,
                "ApproximateArrivalTimestamp": arrival,
            }
            for sequence, data, key, arrival in records
        ]
    b64 = base64.b64encode
    return [
        {
            "SequenceNumber": sequence,
            "Data": b64(data).decode(),
            "PartitionKey": key,
            "ApproximateArrivalTimestamp": arrival / 1000,
        }
        for sequence, data, key, arrival in records
    ]


def encode_error(error: KinesisError, cbor: bool) -> bytes:
    body = {"__type": error.error_type, "message": error.message}
    return bytes(cbor2.dumps(body)) if cbor else json.dumps(body).encode()
