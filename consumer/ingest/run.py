"""One ingest: the rows of a source read, the rejects written, the accepted rows put.

Why it is shaped like this:
- **Streaming**: rows are read lazily and handed to the producer as it asks for them (at most
  its lookahead ahead), so a file of any size runs in bounded memory.
- **The producer's rules**: `consumer.ingest.producer.Producer` batches (500 entries / 5 MiB),
  retries failed entries with bounded backoff and jitter, and never has two entries of one
  account in flight, so an account's rows reach the stream in file order.
- **A source that breaks part-way** (corrupt gzip, a dropped S3 connection) ends the input,
  not the run: what was read is still put, the error is reported, and the exit code says so.
  A re-run of the file is harmless: the workers drop a `transaction_id` they have seen.
- **Library code never prints**: progress goes to the `on_progress` callback, the outcome is
  the returned `IngestResult`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from consumer.ingest.entries import Entry
from consumer.ingest.producer import Producer, ProducerError, ProgressCallback, Summary
from consumer.ingest.rejects import RejectsWriter
from consumer.ingest.rows import Accepted, Rejected
from consumer.ingest.source import IngestInputError

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_UNUSABLE",
    "IngestProgress",
    "IngestResult",
    "run_ingest",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNUSABLE = 2


@dataclass(frozen=True)
class IngestProgress:
    """Where a run is: rows read, put, rejected, given up, waiting in the producer; stored
    bytes of the source read so far (and its size, when known)."""

    rows_read: int
    put: int
    rejected: int
    failed: int
    pending: int
    bytes_read: int
    total_bytes: int | None


@dataclass
class IngestResult:
    """The outcome of a run. `error` says why it stopped early: the source or the mapping
    (`unusable`: exit 2) or AWS (exit 1)."""

    source: str
    rows_read: int = 0
    put: int = 0
    rejected: int = 0
    failed: int = 0
    retried: int = 0
    duration_s: float = 0.0
    rejects_location: str | None = None
    error: str | None = None
    unusable: bool = False

    @property
    def exit_code(self) -> int:
        """0 every valid row put; 1 a row not put (after retries) or AWS failed; 2 the source
        or mapping unusable."""
        if self.unusable:
            return EXIT_UNUSABLE
        if self.error is not None or self.failed:
            return EXIT_FAILED
        return EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "put": self.put,
            "rejected": self.rejected,
            "failed": self.failed,
            "retried": self.retried,
            "duration_s": round(self.duration_s, 3),
            "rows_per_s": round(self.put / self.duration_s, 1) if self.duration_s > 0 else 0.0,
            "rejects": self.rejects_location,
            "error": self.error,
            "exit_code": self.exit_code,
        }


class _Counted:
    """The accepted rows' entries, the rejects written on the way; a source error ends it."""

    def __init__(self, rows: Iterable[Accepted | Rejected], rejects: RejectsWriter) -> None:
        self._rows = rows
        self._rejects = rejects
        self.read = 0
        self.error: str | None = None
        self.unusable = False

    def entries(self) -> Iterator[Entry]:
        try:
            for item in self._rows:
                self.read += 1
                if isinstance(item, Rejected):
                    self._rejects.write(item.row, item.reason)
                else:
                    yield item.entry
        except IngestInputError as exc:
            self.error, self.unusable = str(exc), True
        except (BotoCoreError, OSError) as exc:  # the source's connection, part-way
            self.error = f"reading the source failed: {exc}"


def run_ingest(
    source: str,
    rows: Iterable[Accepted | Rejected],
    make_producer: Callable[[ProgressCallback], Producer],
    rejects: RejectsWriter,
    *,
    bytes_read: Callable[[], int] = lambda: 0,
    total_bytes: int | None = None,
    on_progress: Callable[[IngestProgress], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> IngestResult:
    """Put every accepted row of `rows` with the producer `make_producer(on_progress)` makes
    (it owns the client and the retry options), write every rejected one to `rejects`
    (closed here, whatever happens), and return the counts. Only KeyboardInterrupt escapes."""
    started = clock()
    counted = _Counted(rows, rejects)

    def progress(summary: Summary) -> None:
        if on_progress is not None:
            on_progress(
                IngestProgress(
                    rows_read=counted.read,
                    put=summary.sent,
                    rejected=rejects.count,
                    failed=summary.failed,
                    pending=summary.pending,
                    bytes_read=bytes_read(),
                    total_bytes=total_bytes,
                )
            )

    producer = make_producer(progress)
    result = IngestResult(source)
    try:
        summary = producer.send_all(counted.entries())
    except ProducerError as exc:
        summary = exc.summary
        result.error = str(exc)
    except BotoCoreError as exc:  # no credentials, an endpoint unreachable past retries
        summary = producer.summary()
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        producer.close()
        try:  # also when interrupted: the rejects found so far, no temporary file left
            rejects.close()
        except (BotoCoreError, ClientError, OSError) as exc:  # the rejects object or file
            failed = f"writing the rejects to {rejects.location} failed: {exc}"
            result.error = result.error or failed
    if counted.error is not None and result.error is None:
        result.error, result.unusable = counted.error, counted.unusable
    result.rows_read = counted.read
    result.put = summary.sent
    result.rejected = rejects.count
    # Entries still queued when AWS stopped the run were not put either.
    result.failed = summary.failed + summary.pending
    result.retried = summary.retried
    result.rejects_location = rejects.location
    result.duration_s = clock() - started
    progress(summary)
    return result
