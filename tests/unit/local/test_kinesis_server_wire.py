"""The local Kinesis server's two encodings (consumer/local/kinesis_server/wire.py).

JSON 1.1 is what boto3 and the CLI speak: Data as base64 text, timestamps as epoch seconds.
CBOR 1.1 is what the KCL's Java SDK v2 speaks: Data as a byte string, timestamps as epoch
milliseconds. The store sees bytes and milliseconds either way.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import cbor2
import pytest

from consumer.local.kinesis_server import wire
from consumer.local.kinesis_server.store import KinesisError, Streams

T0 = 1_700_000_000_123  # ms, with a fraction of a second that must survive the round trip
RECORD = ("49000000000000000000000000000000000000000000000000000001", b"\x00\x01\xfe\xff", "pk", T0)


def _serialization_error(body: bytes, cbor: bool) -> KinesisError:
    with pytest.raises(KinesisError) as caught:
        wire.decode_request(body, cbor)
    assert caught.value.error_type == "SerializationException"
    return caught.value


# --- content types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/x-amz-cbor-1.1", True),
        ("Application/X-Amz-Cbor-1.1; charset=utf-8", True),
        ("application/x-amz-json-1.1", False),
        ("", False),
    ],
)
def test_is_cbor_by_content_type(content_type: str, expected: bool) -> None:
    assert wire.is_cbor(content_type) is expected


# --- JSON ------------------------------------------------------------------------------------


def test_json_request_data_is_base64_decoded_to_bytes() -> None:
    raw = b"\x00\x01binary\xff"
    body = json.dumps(
        {"StreamName": "s", "PartitionKey": "k", "Data": base64.b64encode(raw).decode()}
    ).encode()
    request = wire.decode_request(body, cbor=False)
    assert request == {"StreamName": "s", "PartitionKey": "k", "Data": raw}


def test_json_put_records_entries_are_base64_decoded() -> None:
    datas = [b"one", b"\xff" * 3, b""]
    body = json.dumps(
        {
            "StreamName": "s",
            "Records": [
                {"Data": base64.b64encode(d).decode(), "PartitionKey": f"k{i}"}
                for i, d in enumerate(datas)
            ],
        }
    ).encode()
    request = wire.decode_request(body, cbor=False)
    assert [entry["Data"] for entry in request["Records"]] == datas


def test_json_timestamp_seconds_become_milliseconds() -> None:
    for seconds, ms in ((1_700_000_000, 1_700_000_000_000), (1_700_000_000.123, T0)):
        body = json.dumps({"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": seconds}).encode()
        request = wire.decode_request(body, cbor=False)
        assert request["Timestamp"] == ms
        assert isinstance(request["Timestamp"], int)
    # Not a number: left for the store to refuse with its own message.
    body = json.dumps({"Timestamp": "yesterday"}).encode()
    assert wire.decode_request(body, cbor=False)["Timestamp"] == "yesterday"


def test_json_empty_body_is_an_empty_request() -> None:
    assert wire.decode_request(b"", cbor=False) == {}


def test_json_records_out_carry_base64_data_and_seconds() -> None:
    body = wire.encode_response(
        {"Records": [RECORD], "NextShardIterator": "it", "MillisBehindLatest": 5}, cbor=False
    )
    answer = json.loads(body)
    (record,) = answer["Records"]
    assert record == {
        "SequenceNumber": RECORD[0],
        "Data": base64.b64encode(RECORD[1]).decode(),
        "PartitionKey": "pk",
        "ApproximateArrivalTimestamp": 1_700_000_000.123,
    }
    assert answer["NextShardIterator"] == "it"
    assert answer["MillisBehindLatest"] == 5


def test_json_arrival_time_round_trips_into_an_at_timestamp_request() -> None:
    """A client that takes a record's ApproximateArrivalTimestamp and asks for AT_TIMESTAMP at it
    must get an iterator at that record (the same millisecond), not the one before."""
    record = json.loads(wire.encode_response({"Records": [RECORD]}, cbor=False))["Records"][0]
    body = json.dumps({"Timestamp": record["ApproximateArrivalTimestamp"]}).encode()
    assert wire.decode_request(body, cbor=False)["Timestamp"] == T0


def test_json_stream_creation_timestamps_are_seconds() -> None:
    streams = Streams()
    streams.create_stream({"StreamName": "s", "ShardCount": 1}, T0)
    for answer, key in (
        (streams.describe_stream({"StreamName": "s"}), "StreamDescription"),
        (streams.describe_stream_summary({"StreamName": "s"}), "StreamDescriptionSummary"),
    ):
        encoded = json.loads(wire.encode_response(answer, cbor=False))
        assert encoded[key]["StreamCreationTimestamp"] == 1_700_000_000.123
        assert encoded[key]["StreamName"] == "s"
    listed = json.loads(wire.encode_response(streams.list_streams({}), cbor=False))
    assert listed["StreamNames"] == ["s"]
    assert listed["StreamSummaries"][0]["StreamCreationTimestamp"] == 1_700_000_000.123
    # The store's own answer is not changed by encoding it.
    assert (
        streams.describe_stream({"StreamName": "s"})["StreamDescription"]["StreamCreationTimestamp"]
        == T0
    )


def test_empty_records_encode_as_an_empty_list() -> None:
    for cbor in (False, True):
        body = wire.encode_response({"Records": [], "MillisBehindLatest": 0}, cbor=cbor)
        answer = cbor2.loads(body) if cbor else json.loads(body)
        assert answer == {"Records": [], "MillisBehindLatest": 0}


@pytest.mark.parametrize(
    "body",
    [b"not json", b"{", b"[1, 2]", b'"text"', b"42", b"\xff\xfe\x00"],
)
def test_json_invalid_bodies_are_serialization_exceptions(body: bytes) -> None:
    _serialization_error(body, cbor=False)


@pytest.mark.parametrize("bad", ["not base64!", "QQ", "QU JD", 17, None, ["QUJD"]])
def test_json_bad_base64_data_names_the_field(bad: Any) -> None:
    error = _serialization_error(json.dumps({"Data": bad, "PartitionKey": "k"}).encode(), False)
    assert "Data" in error.message
    body = json.dumps(
        {"Records": [{"Data": "QUJD", "PartitionKey": "k"}] * 2 + [{"Data": bad}]}
    ).encode()
    error = _serialization_error(body, cbor=False)
    assert "Records.2.Data" in error.message, error.message


# --- CBOR ------------------------------------------------------------------------------------


def test_cbor_request_data_stays_bytes() -> None:
    raw = b"\x00\xffcbor"
    body = cbor2.dumps(
        {"StreamName": "s", "Records": [{"Data": raw, "PartitionKey": "k"}], "Data": raw}
    )
    request = wire.decode_request(body, cbor=True)
    assert request["Data"] == raw
    assert request["Records"][0]["Data"] == raw


def test_cbor_base64_text_is_not_decoded() -> None:
    """In CBOR, Data is a byte string; text there is what the client sent, not base64 to undo
    (the store then refuses it as not bytes)."""
    request = wire.decode_request(cbor2.dumps({"Data": "QUJD"}), cbor=True)
    assert request["Data"] == "QUJD"


def test_cbor_timestamp_integer_milliseconds_stay_milliseconds() -> None:
    request = wire.decode_request(cbor2.dumps({"Timestamp": T0}), cbor=True)
    assert request["Timestamp"] == T0
    assert isinstance(request["Timestamp"], int)


def test_cbor_timestamp_as_the_java_sdk_writes_it() -> None:
    """The KCL's Java SDK v2 (SdkCborGenerator.writeValue(Instant)) writes a timestamp as CBOR
    tag 1 around epoch *milliseconds*: what GetShardIterator AT_TIMESTAMP carries from the KCL
    (the runbook's replay from a point in time). It must arrive in the store as those ms."""
    body = cbor2.dumps(
        {
            "StreamName": "s",
            "ShardId": "shardId-000000000000",
            "ShardIteratorType": "AT_TIMESTAMP",
            "Timestamp": cbor2.CBORTag(1, T0),
        }
    )
    request = wire.decode_request(body, cbor=True)
    assert request["Timestamp"] == T0


def test_cbor_list_shards_filter_timestamp_as_the_java_sdk_writes_it() -> None:
    """The KCL (HierarchicalShardSyncer) lists the shards of a new lease table with a ShardFilter
    from its initial position; AT_TIMESTAMP puts the same tag-1 milliseconds in it. The request
    must decode (the store ignores the filter: no resharding here, every shard is open)."""
    body = cbor2.dumps(
        {
            "StreamName": "s",
            "ShardFilter": {"Type": "AT_TIMESTAMP", "Timestamp": cbor2.CBORTag(1, T0)},
        }
    )
    request = wire.decode_request(body, cbor=True)
    assert request["StreamName"] == "s"
    assert request["ShardFilter"]["Type"] == "AT_TIMESTAMP"


@pytest.mark.parametrize(
    ("body", "cbor"),
    [
        (b'{"Timestamp": Infinity}', False),
        (b'{"Timestamp": NaN}', False),
        (b'{"Timestamp": -Infinity}', False),
        (cbor2.dumps({"Timestamp": float("inf")}), True),
        (cbor2.dumps({"Timestamp": float("nan")}), True),
    ],
    ids=["json-inf", "json-nan", "json-minus-inf", "cbor-inf", "cbor-nan"],
)
def test_a_timestamp_that_is_not_finite_is_an_error_answer_not_a_crash(
    body: bytes, cbor: bool
) -> None:
    """Python's json reads NaN and Infinity, and CBOR has them: converting one to milliseconds
    raises OverflowError or ValueError, which the app does not catch (a 500, no Kinesis error
    type). It must be an error answer the SDKs understand."""
    try:
        request = wire.decode_request(body, cbor)
    except KinesisError as error:
        assert error.error_type in ("SerializationException", "InvalidArgumentException")
        return
    # Passed through untouched is fine too: the store then refuses it by its own check.
    assert not isinstance(request["Timestamp"], int)


def test_cbor_records_out_carry_bytes_and_integer_milliseconds() -> None:
    body = wire.encode_response(
        {"Records": [RECORD], "NextShardIterator": "it", "MillisBehindLatest": 0}, cbor=True
    )
    answer = cbor2.loads(body)
    (record,) = answer["Records"]
    assert record == {
        "SequenceNumber": RECORD[0],
        "Data": RECORD[1],
        "PartitionKey": "pk",
        "ApproximateArrivalTimestamp": T0,
    }
    assert isinstance(record["Data"], bytes)
    assert isinstance(record["ApproximateArrivalTimestamp"], int)


def test_cbor_stream_creation_timestamps_are_milliseconds() -> None:
    streams = Streams()
    streams.create_stream({"StreamName": "s", "ShardCount": 2}, T0)
    answer = cbor2.loads(wire.encode_response(streams.describe_stream({"StreamName": "s"}), True))
    assert answer["StreamDescription"]["StreamCreationTimestamp"] == T0
    assert len(answer["StreamDescription"]["Shards"]) == 2
    listed = cbor2.loads(wire.encode_response(streams.list_streams({}), cbor=True))
    assert listed["StreamSummaries"][0]["StreamCreationTimestamp"] == T0


@pytest.mark.parametrize(
    "body",
    [b"", b"\xff\xff", b"\x9f", cbor2.dumps([1, 2]), cbor2.dumps("text"), cbor2.dumps(7)],
)
def test_cbor_invalid_bodies_are_serialization_exceptions(body: bytes) -> None:
    _serialization_error(body, cbor=True)


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error_type",
    ["ResourceNotFoundException", "InvalidArgumentException", "SerializationException"],
)
def test_error_bodies_carry_type_and_message_in_both_formats(error_type: str) -> None:
    error = KinesisError(error_type, "Stream x under account 000000000000 not found.")
    expected = {"__type": error_type, "message": error.message}
    assert json.loads(wire.encode_error(error, cbor=False)) == expected
    assert cbor2.loads(wire.encode_error(error, cbor=True)) == expected
