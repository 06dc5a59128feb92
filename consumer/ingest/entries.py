"""One record to put to Kinesis: its bytes and its partition key (:class:`Entry`).

An Entry is what a producer hands to the stream: `fraudstream ingest` makes them from a file's
rows, the load test's synthetic generator (load_test/synthetic.py) and replay files make them,
and the producer (:mod:`consumer.ingest.producer`) batches and sends them. It lives in a module
of its own so that what makes entries need not import what sends them.

Kinesis' per-record limits are checked here, when the entry is made: a partition key of
1..256 characters and at most 1 MiB of data plus partition key, so every entry is sendable.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_RECORD_BYTES = 1024 * 1024
MAX_PARTITION_KEY_CHARS = 256


@dataclass(frozen=True)
class Entry:
    """One record to put: its bytes and its partition key."""

    data: bytes
    partition_key: str

    def __post_init__(self) -> None:
        if not isinstance(self.data, bytes):
            raise TypeError(f"data must be bytes, not {type(self.data).__name__}")
        if not isinstance(self.partition_key, str):
            raise TypeError("partition_key must be a str")
        if not 1 <= len(self.partition_key) <= MAX_PARTITION_KEY_CHARS:
            raise ValueError(
                f"partition key must be 1..{MAX_PARTITION_KEY_CHARS} characters, "
                f"got {len(self.partition_key)}"
            )
        try:
            self.partition_key.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError("partition key is not encodable as UTF-8") from exc
        if self.size > MAX_RECORD_BYTES:
            raise ValueError(
                f"record is {self.size} bytes (data + partition key), "
                f"more than the {MAX_RECORD_BYTES} allowed"
            )

    @property
    def size(self) -> int:
        """Bytes this entry counts against the PutRecords limits."""
        return len(self.data) + len(self.partition_key.encode("utf-8"))
