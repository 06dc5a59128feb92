"""Reading the MultiLangDaemon's processRecords lines fast (kclpy's own reader is slow there).

kclpy decodes each line with the standard library's `json` and an object hook that builds a `Record`
per record, each computing a `datetime` we never read: pure overhead on every record (measured:
docs/benchmarks.md#kcl-protocol-reader). `install` replaces the reader of one `KCLProcess`:
processRecords lines are decoded by msgspec straight into `KinesisRecord` Structs that carry exactly
what the pipeline reads, base64 included; a line that does not fit that shape takes the lenient
path, a dict per record as kclpy decodes it (`RawRecord`), and every other message (initialize,
checkpoint replies, shutdown) still goes through kclpy's own decoder, so its dispatch and error
behaviour are unchanged.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import sys
from typing import Any, BinaryIO, Literal

import msgspec
from amazon_kclpy import dispatch, kcl
from amazon_kclpy.messages import ProcessRecordsInput

__all__ = [
    "KinesisRecord",
    "RawRecord",
    "install",
    "kcl_process",
    "load_action",
    "protocol_in",
]

# A processRecords line of a full GetRecords batch is a few hundred KB to several MB.
PROTOCOL_BUFFER_BYTES = 1 << 20

_decode_line = msgspec.json.Decoder().decode


class KinesisRecord(msgspec.Struct, gc=False):
    """One record of a processRecords message, as the decoder builds it in C: the fields of
    kclpy's `Record` we use, its base64 data already decoded (strict base64: a record the
    decoder refuses sends its whole line to the lenient path, which decodes as kclpy does)."""

    binary_data: bytes = msgspec.field(name="data")
    partition_key: str = msgspec.field(name="partitionKey")
    sequence_number: str = msgspec.field(name="sequenceNumber")
    sub_sequence_number: int | None = msgspec.field(name="subSequenceNumber")
    timestamp_millis: int = msgspec.field(name="approximateArrivalTimestamp")

    @property
    def data(self) -> str:
        """The data in base64, canonical (the strict decoder took it: only dead letters of
        undecodable data read this, and those come from RawRecord)."""
        return base64.b64encode(self.binary_data).decode("ascii")


class RawRecord(msgspec.Struct, gc=False):
    """A record from the lenient path: its base64 decoded when read, as kclpy's `Record`."""

    data: str
    partition_key: str
    sequence_number: str
    sub_sequence_number: int | None
    timestamp_millis: int

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> RawRecord:
        """From a record's decoded JSON object (any timestamp int() takes)."""
        return cls(
            message["data"],
            message["partitionKey"],
            message["sequenceNumber"],
            message["subSequenceNumber"],
            int(message["approximateArrivalTimestamp"]),
        )

    @property
    def binary_data(self) -> bytes:
        """The record's bytes. Like kclpy's (base64.b64decode): characters outside the alphabet
        are skipped, bad padding raises binascii.Error (the pipeline dead-letters it)."""
        return binascii.a2b_base64(self.data)


class _ProcessRecords(msgspec.Struct):
    """A processRecords message as the daemon writes it (other fields are ignored)."""

    action: Literal["processRecords"]
    records: list[KinesisRecord]
    millis_behind_latest: int | None = msgspec.field(name="millisBehindLatest")


_decode_records = msgspec.json.Decoder(_ProcessRecords).decode


def load_action(line: str | bytes) -> Any:
    """The dispatchable action of one protocol line."""
    try:  # the usual line: decoded straight into records
        typed = _decode_records(line)
    except msgspec.DecodeError:  # another message, or an unusual one (ValidationError too)
        pass
    else:
        return ProcessRecordsInput(
            {
                "action": typed.action,
                "records": typed.records,
                "millisBehindLatest": typed.millis_behind_latest,
            }
        )
    try:
        message = _decode_line(line)
    except msgspec.DecodeError:
        message = None
    if type(message) is dict and message.get("action") == "processRecords":
        records = message.get("records")
        if type(records) is list:
            message["records"] = [RawRecord.from_message(record) for record in records]
            return ProcessRecordsInput(message)
    # Anything else, or a line msgspec refused: decoded as kclpy decodes it (and fails as it does).
    return json.loads(line, object_hook=dispatch.message_decode)


def protocol_in(fd: int | None = None) -> BinaryIO:
    """The daemon's pipe to this process, read as bytes with a 1 MB buffer, the pipe itself
    enlarged to 1 MB where Linux allows it.

    Why: a processRecords line is hundreds of KB. Through the default text stdin (8 KB reads
    of a 64 KB pipe) one line is ~45 read calls, and each gives up the GIL: when the alert or
    state-save threads hold it, the main thread waits for it back at every one of them. Bytes
    need no decoding either: the line goes to msgspec as it is.
    """
    if fd is None:
        fd = sys.stdin.fileno()
    # Not a pipe, not Linux, or above pipe-max-size: the default pipe, still read in big chunks.
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PROTOCOL_BUFFER_BYTES)
    return open(fd, "rb", buffering=PROTOCOL_BUFFER_BYTES, closefd=False)


def install(process: kcl.KCLProcess) -> kcl.KCLProcess:
    """Make `process` (and its checkpointer, which shares the handler) read with `load_action`."""
    process.io_handler.load_action = load_action
    return process


def kcl_process(processor: Any, input_file: Any, output_file: Any, error_file: Any) -> Any:
    """kclpy's KCLProcess for `processor` on these pipes, reading with `load_action`."""
    return install(kcl.KCLProcess(processor, input_file, output_file, error_file))
