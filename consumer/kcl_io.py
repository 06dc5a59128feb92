"""Reading the MultiLangDaemon's processRecords lines fast (kclpy's own reader is slow there).

kclpy decodes each line with the standard library's `json` and an object hook that builds a
`Record` per record, each computing a `datetime` we never read; at 10,000+ records/s that is a
few microseconds per record of pure overhead. `install` replaces the reader of one
`KCLProcess`: processRecords lines are decoded by msgspec into light `KinesisRecord`s that carry
exactly what the pipeline reads; every other message (initialize, checkpoint replies, shutdown)
still goes through kclpy's own decoder, so its dispatch and error behaviour are unchanged.
"""

from __future__ import annotations

import binascii
import json
from typing import Any

import msgspec
from amazon_kclpy import dispatch, kcl
from amazon_kclpy.messages import ProcessRecordsInput

__all__ = ["KinesisRecord", "install", "kcl_process", "load_action"]

_decode_line = msgspec.json.Decoder().decode


class KinesisRecord:
    """One record of a processRecords message: the fields of kclpy's `Record` we use."""

    __slots__ = (
        "data",
        "partition_key",
        "sequence_number",
        "sub_sequence_number",
        "timestamp_millis",
    )

    def __init__(self, message: dict[str, Any]) -> None:
        self.data: str = message["data"]
        self.partition_key: str = message["partitionKey"]
        self.sequence_number: str = message["sequenceNumber"]
        self.sub_sequence_number: int | None = message["subSequenceNumber"]
        self.timestamp_millis: int = int(message["approximateArrivalTimestamp"])

    @property
    def binary_data(self) -> bytes:
        """The record's bytes. Like kclpy's (base64.b64decode): characters outside the alphabet
        are skipped, bad padding raises binascii.Error (the pipeline dead-letters it)."""
        return binascii.a2b_base64(self.data)


def load_action(line: str | bytes) -> Any:
    """The dispatchable action of one protocol line."""
    try:
        message = _decode_line(line)
    except msgspec.DecodeError:
        message = None
    if type(message) is dict and message.get("action") == "processRecords":
        records = message.get("records")
        if type(records) is list:
            message["records"] = [KinesisRecord(record) for record in records]
            return ProcessRecordsInput(message)
    # Anything else, or a line msgspec refused: decoded as kclpy decodes it (and fails as it does).
    return json.loads(line, object_hook=dispatch.message_decode)


def install(process: kcl.KCLProcess) -> kcl.KCLProcess:
    """Make `process` (and its checkpointer, which shares the handler) read with `load_action`."""
    process.io_handler.load_action = load_action
    return process


def kcl_process(processor: Any, input_file: Any, output_file: Any, error_file: Any) -> Any:
    """kclpy's KCLProcess for `processor` on these pipes, reading with `load_action`."""
    return install(kcl.KCLProcess(processor, input_file, output_file, error_file))
