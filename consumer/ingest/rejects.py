"""The rejects file: one JSON line per rejected row, `{"row": N, "reason": "..."}`.

Written for every run, empty when nothing was rejected, so the file beside a source always
describes its last ingest (a fixed file re-run leaves no stale rejects behind). The row's own
content is never copied: it may hold a card number; the row number finds it in the source.
A local source's rejects go beside it (`FILE.rejects.jsonl`), written as they come; an S3
source's are spooled (in memory up to 8 MiB, then a temporary file) and put as one object at
the end, at the key `consumer.ingest.locations.rejects_key` gives.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import IO, Any, Protocol

from consumer.ingest.locations import REJECTS_SUFFIX, rejects_key
from consumer.settings.s3_uri import S3Location, is_s3, parse_s3

__all__ = ["RejectsWriter", "open_rejects", "rejects_location"]

_SPOOL_BYTES = 8 * 1024 * 1024


class RejectsWriter(Protocol):
    location: str
    count: int

    def write(self, row: int, reason: str) -> None: ...

    def close(self) -> None: ...


def _line(row: int, reason: str) -> bytes:
    return (json.dumps({"row": row, "reason": reason}, ensure_ascii=False) + "\n").encode()


def rejects_location(source: str) -> str:
    """Where the rejects of `source` (a path or `s3://bucket/key`) go."""
    if is_s3(source):
        where = parse_s3(source)
        return str(S3Location(where.bucket, rejects_key(where.key)))
    return source + REJECTS_SUFFIX


class _LocalRejects:
    """Written line by line to `<source>.rejects.jsonl` (replaced at the end, atomically)."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.count = 0
        self._tmp = location + ".tmp"
        self._file: IO[bytes] = open(self._tmp, "wb")  # noqa: SIM115 - closed by close()

    def write(self, row: int, reason: str) -> None:
        self._file.write(_line(row, reason))
        self.count += 1

    def close(self) -> None:
        self._file.close()
        os.replace(self._tmp, self.location)


class _S3Rejects:
    """Spooled, then put as one object (`application/x-ndjson`)."""

    def __init__(self, location: str, s3_client: Callable[[], Any]) -> None:
        self.location = location
        self.count = 0
        self._where = parse_s3(location)
        self._client = s3_client
        self._spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115

    def write(self, row: int, reason: str) -> None:
        self._spool.write(_line(row, reason))
        self.count += 1

    def close(self) -> None:
        self._spool.seek(0)
        try:
            self._client().put_object(
                Bucket=self._where.bucket,
                Key=self._where.key,
                Body=self._spool,
                ContentType="application/x-ndjson",
            )
        finally:
            self._spool.close()


def open_rejects(source: str, s3_client: Callable[[], Any]) -> RejectsWriter:
    """The rejects writer of `source`; OSError when a local one cannot be created."""
    location = rejects_location(source)
    if is_s3(location):
        return _S3Rejects(location, s3_client)
    return _LocalRejects(location)
