"""Bounded lines of a file that may be gzip: shared by the label reader (consumer/labels/records.py)
and `fraudstream ingest` (consumer/ingest/), which both read files nobody here wrote.

- **Gzip by its magic bytes**, whatever the name says: the first two bytes are sniffed and kept
  (`_Peeked`), so an unseekable stream (an S3 body) needs no rewind. A reader may also trust a
  `.gz` name (the label reader does, so a gzip file that is not one fails loudly as such).
- **Bounded**: a line is held at most `max_bytes` at a time, so a multi-gigabyte file without a
  newline costs one chunk of memory, not the file; an over-long line comes out as None (its
  bytes skipped up to the next line break) for the caller to report.
- A corrupt or truncated gzip stream raises the caller's error when it is reached, with a
  message that names no input bytes.

Pure: no AWS, no logging.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator
from typing import Any, cast

__all__ = ["GZIP_MAGIC", "bounded_lines", "gunzipped"]

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 64 * 1024


class _Peeked:
    """A readable that first returns the bytes already read from `source` (the sniff)."""

    def __init__(self, head: bytes, source: Any) -> None:
        self._head = head
        self._source = source

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size is None or size < 0:
                data, self._head = self._head + bytes(self._source.read()), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return bytes(self._source.read(size))


def gunzipped(
    stream: Any, error: Callable[[str], Exception], *, gzip_if_named: str = ""
) -> Callable[[int], bytes]:
    """`read(n)` over the stream's bytes, gunzipped when they start with gzip's magic bytes (or,
    with `gzip_if_named`, when that name ends in `.gz`). A corrupt or truncated gzip stream
    raises `error(reason)`; I/O errors propagate."""
    head = bytes(stream.read(2))
    source = _Peeked(head, stream)
    if head != GZIP_MAGIC and not gzip_if_named.lower().endswith(".gz"):
        return source.read
    unzipped = gzip.GzipFile(fileobj=cast(Any, source), mode="rb")

    def read(size: int) -> bytes:
        try:
            data: bytes = unzipped.read(size)
        except gzip.BadGzipFile:
            raise error("not readable as gzip: not a gzip stream") from None
        except (EOFError, zlib.error):
            raise error("not readable as gzip: corrupt or truncated") from None
        return data

    return read


def bounded_lines(read: Callable[[int], bytes], max_bytes: int) -> Iterator[bytes | None]:
    """The lines without their `\\n` (a `\\r` before it is kept: CSV and JSON treat it as
    whitespace or strip it); None for a line longer than `max_bytes`, whose bytes are skipped up
    to the next line break, never held."""
    buffer = b""
    skipping = False
    while True:
        chunk = read(_CHUNK)
        if not chunk:
            break
        buffer += chunk
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            if skipping:
                skipping = False
            elif end - start > max_bytes:
                yield None
            else:
                yield buffer[start:end]
            start = end + 1
        buffer = buffer[start:]
        if len(buffer) > max_bytes:
            if not skipping:
                yield None
                skipping = True
            buffer = b""
    if buffer and not skipping:
        yield buffer
