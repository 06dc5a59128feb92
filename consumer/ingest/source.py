"""Reading an ingest source: a local file or one S3 object, gunzipped when it is gzip, cut into
bounded lines.

Why it is shaped like this:
- **gzip by its magic bytes**, not its name: exports get renamed, and an object's key says
  nothing reliable about its bytes (the sniff and the bounded lines: consumer/labels/lines.py).
- **Bounded lines**: a line is held at most `MAX_LINE_BYTES` at a time, so a multi-gigabyte file
  without a newline costs one chunk of memory. A longer line cannot become a Kinesis record
  (1 MiB) anyway: it is reported as too long and its bytes are skipped.
- **Unreadable means exit 2**: a source that cannot be opened, or whose gzip stream turns out
  corrupt or truncated part-way, raises `SourceError`; the rows read before it stay put (a re-run
  is harmless: the stream drops duplicates by `transaction_id`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from consumer.errors import FraudstreamError
from consumer.ingest.entries import MAX_RECORD_BYTES
from consumer.labels.lines import bounded_lines, gunzipped
from consumer.settings.s3_uri import is_s3, parse_s3

__all__ = [
    "MAX_LINE_BYTES",
    "IngestInputError",
    "Opened",
    "SourceError",
    "decompressed",
    "lines",
    "open_source",
]

# A row longer than a Kinesis record can hold is refused, never held whole.
MAX_LINE_BYTES = MAX_RECORD_BYTES


class IngestInputError(FraudstreamError, ValueError):
    """The source or the mapping cannot be used: `fraudstream ingest` exits 2."""


class SourceError(IngestInputError):
    """The source cannot be opened or read to its end (missing, denied, corrupt gzip)."""


@dataclass
class Opened:
    """An opened source: its bytes as stored, the name used in messages, its size if known.
    `read_bytes` counts the stored bytes read so far (the progress measure)."""

    stream: Any
    name: str
    size: int | None
    read_bytes: int = 0

    def read(self, size: int = -1) -> bytes:
        data = bytes(self.stream.read(size))
        self.read_bytes += len(data)
        return data

    def close(self) -> None:
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()


def open_source(source: str, s3_client: Callable[[], Any]) -> Opened:
    """Open a path or `s3://bucket/key` (one object, not a prefix). `s3_client` is called only
    for an S3 source. Raises `SourceError` naming the source when it cannot be opened."""
    if is_s3(source):
        try:
            location = parse_s3(source)
        except ValueError as exc:
            raise SourceError(str(exc)) from None
        if not location.key or location.key.endswith("/"):
            raise SourceError(f"must be s3://<bucket>/<key> of one object, got {source!r}")
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            reply = s3_client().get_object(Bucket=location.bucket, Key=location.key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise SourceError(f"cannot read {source}: {code}") from None
        except BotoCoreError as exc:
            raise SourceError(f"cannot read {source}: {exc}") from None
        return Opened(reply["Body"], source, reply.get("ContentLength"))
    try:
        stream = open(source, "rb")  # noqa: SIM115 - Opened.close() closes it
    except OSError as exc:
        raise SourceError(f"cannot read {source}: {exc.strerror or exc}") from None
    return Opened(stream, source, os.fstat(stream.fileno()).st_size)


def decompressed(stream: BinaryIO | Any, name: str) -> Callable[[int], bytes]:
    """`read(n)` over the source's bytes, gunzipped when they start with gzip's magic bytes.
    A corrupt or truncated gzip stream raises `SourceError` naming the source when reached."""
    return gunzipped(stream, lambda reason: SourceError(f"{name}: {reason}"))


def lines(read: Callable[[int], bytes], max_bytes: int = MAX_LINE_BYTES) -> Iterator[bytes | None]:
    """The source's lines (consumer/labels/lines.py `bounded_lines`), at most MAX_LINE_BYTES."""
    return bounded_lines(read, max_bytes)
