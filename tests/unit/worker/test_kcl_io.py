"""consumer/worker/kcl_io.py: the fast reader of the daemon's lines decodes what kclpy's decodes."""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import sys

import pytest
from amazon_kclpy import dispatch
from amazon_kclpy.messages import InitializeInput, ProcessRecordsInput, ShutdownRequestedInput
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.worker.kcl_io import (
    PROTOCOL_BUFFER_BYTES,
    KinesisRecord,
    RawRecord,
    load_action,
    protocol_in,
)


def _records_line(*datas: bytes, behind: int | None = 17) -> str:
    records = [
        {
            "action": "record",
            "data": base64.b64encode(data).decode(),
            "partitionKey": f"pk{i}",
            "sequenceNumber": str(49_000_000_000_000_000_000_000_000 + i),
            "subSequenceNumber": i or None,
            "approximateArrivalTimestamp": 1_772_442_000_000 + i,
        }
        for i, data in enumerate(datas)
    ]
    message = {"action": "processRecords", "records": records, "millisBehindLatest": behind}
    return json.dumps(message, separators=(",", ":"))


def test_process_records_line_gives_the_same_records_as_kclpy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def lenient_path(message: object) -> None:
        raise AssertionError("a usual line is decoded straight into records")

    monkeypatch.setattr(RawRecord, "from_message", lenient_path)
    line = _records_line(b'{"a":1}', b"\x00\xffbinary", b"")
    ours = load_action(line)
    theirs = json.loads(line, object_hook=dispatch.message_decode)
    assert isinstance(ours, ProcessRecordsInput)
    assert ours.action == "processRecords" and ours.millis_behind_latest == 17
    assert len(ours.records) == len(theirs.records) == 3
    for mine, kclpy in zip(ours.records, theirs.records, strict=True):
        assert isinstance(mine, KinesisRecord)
        assert mine.binary_data == kclpy.binary_data
        assert mine.data == kclpy.data
        assert mine.sequence_number == kclpy.sequence_number
        assert mine.sub_sequence_number == kclpy.sub_sequence_number
        assert mine.timestamp_millis == kclpy.timestamp_millis
        assert mine.partition_key == kclpy.partition_key


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            '"approximateArrivalTimestamp":1772442000000',
            '"approximateArrivalTimestamp":1772442000000.0',
        ),
        ('"millisBehindLatest":17', '"millisBehindLatest":"17"'),
        ('"subSequenceNumber":null', '"subSequenceNumber":0'),
    ],
)
def test_unusual_lines_take_the_lenient_path_and_agree_with_kclpy(old: str, new: str) -> None:
    line = _records_line(b'{"a":1}')
    assert old in line
    line = line.replace(old, new)
    ours = load_action(line)
    theirs = json.loads(line, object_hook=dispatch.message_decode)
    assert ours.millis_behind_latest == theirs.millis_behind_latest
    mine, kclpy = ours.records[0], theirs.records[0]
    assert mine.timestamp_millis == kclpy.timestamp_millis == 1_772_442_000_000
    assert mine.binary_data == kclpy.binary_data
    assert mine.sub_sequence_number == kclpy.sub_sequence_number


def test_a_records_line_without_a_required_field_fails_as_in_kclpy() -> None:
    line = _records_line(b"x").replace(',"millisBehindLatest":17', "")
    with pytest.raises(KeyError):
        load_action(line)
    with pytest.raises(KeyError):
        json.loads(line, object_hook=dispatch.message_decode).millis_behind_latest  # noqa: B018


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=5))
def test_any_data_decodes_to_the_bytes_kclpy_gives(datas: list[bytes]) -> None:
    line = _records_line(*datas)
    ours = load_action(line).records
    theirs = json.loads(line, object_hook=dispatch.message_decode).records
    assert all(isinstance(record, KinesisRecord) for record in ours)
    assert [r.binary_data for r in ours] == [r.binary_data for r in theirs] == datas
    assert [r.data for r in ours] == [r.data for r in theirs]


@pytest.mark.parametrize("encoded", ["eA==\\n", "e A==", "eB=="])
def test_base64_the_strict_decoder_refuses_is_read_as_kclpy_reads_it(encoded: str) -> None:
    line = _records_line(b"x").replace('"data":"eA=="', f'"data":"{encoded}"')
    assert encoded in line
    ours = load_action(line).records[0]
    theirs = json.loads(line, object_hook=dispatch.message_decode).records[0]
    assert ours.binary_data == theirs.binary_data == b"x"


def test_bad_base64_raises_as_kclpy_does() -> None:
    line = _records_line(b"x").replace('"data":"eA=="', '"data":"eA="')
    ours = load_action(line).records[0]
    theirs = json.loads(line, object_hook=dispatch.message_decode).records[0]
    with pytest.raises(binascii.Error):
        _ = theirs.binary_data
    with pytest.raises(binascii.Error):
        _ = ours.binary_data


def test_other_messages_go_through_kclpy() -> None:
    init = load_action(
        '{"action":"initialize","shardId":"s-1","sequenceNumber":"TRIM_HORIZON"'
        ',"subSequenceNumber":0}'
    )
    assert isinstance(init, InitializeInput) and init.shard_id == "s-1"
    assert isinstance(load_action('{"action":"shutdownRequested"}'), ShutdownRequestedInput)
    reply = load_action(
        '{"action":"checkpoint","sequenceNumber":"5","subSequenceNumber":0,"error":null}'
    )
    assert reply.sequence_number == "5" and reply.error is None


def test_a_line_that_is_not_json_fails_as_in_kclpy() -> None:
    with pytest.raises(json.JSONDecodeError):
        load_action("{not json")


def test_the_protocol_pipe_is_read_as_bytes_and_every_message_decodes_as_from_text() -> None:
    """The processor reads the daemon's pipe through `protocol_in` (bytes, a 1 MB buffer and,
    where Linux allows, a 1 MB pipe): every kind of line gives the action the text line gives."""
    lines = [
        '{"action":"initialize","shardId":"s-1","sequenceNumber":"TRIM_HORIZON"'
        ',"subSequenceNumber":0}',
        _records_line(b'{"a":1}', b"\x00\xffbinary"),
        _records_line(b"x").replace('"subSequenceNumber":null', '"subSequenceNumber":0'),
        '{"action":"checkpoint","sequenceNumber":"5","subSequenceNumber":0,"error":null}',
        '{"action":"checkpoint","sequenceNumber":"5","subSequenceNumber":0,'
        '"error":"ThrottlingException"}',
        '{"action":"shutdownRequested"}',
        '{"action":"leaseLost"}',
        '{"action":"shardEnded"}',
    ]
    read_end, write_end = os.pipe()
    try:
        reader = protocol_in(read_end)
        if sys.platform == "linux":
            assert fcntl.fcntl(read_end, fcntl.F_GETPIPE_SZ) == PROTOCOL_BUFFER_BYTES
        with os.fdopen(write_end, "wb") as writer:
            writer.write("".join(line + "\n" for line in lines).encode())
        for line in lines:
            raw = reader.readline()
            assert isinstance(raw, bytes) and raw.decode() == line + "\n"
            ours, from_text = load_action(raw), load_action(line)
            assert type(ours) is type(from_text)
            assert vars(ours) == vars(from_text)  # records compare by value (Structs)
        assert reader.readline() == b""  # the end of the pipe ends kclpy's loop
    finally:
        os.close(read_end)
