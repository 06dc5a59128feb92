"""Load-test producer: put transactions to a Kinesis stream with PutRecords (or PutRecord).

Usage (from the repository root)::

    python -m load_test.producer generate --rate 200 --duration 60 [--accounts 1000]
        [--fraud-ratio 0.05] [--invalid-ratio 0.0] [--seed 7] [common options]
    python -m load_test.producer replay --file records.jsonl [common options]

    common options: --stream NAME (env FRAUD_STREAM)  --endpoint-url URL  --region REGION
                    --max-attempts N  --put-api records|record  --concurrency N  --json

Batching
    One PutRecords call carries at most 500 entries and at most 5 MiB (data plus partition keys);
    one entry is at most 1 MiB (data plus partition key) with a partition key of 1..256
    characters. :class:`Entry` (:mod:`load_test.entries`) refuses anything larger, so every entry
    is sendable.

PutRecord instead (``put_api="record"``)
    Each eligible entry is sent by its own PutRecord call, ``concurrency`` calls at a time. For
    kinesis-mock, the local stand-in: its PutRecords costs time proportional to the records the
    shard already holds, per record put (its grouping step hashes the shard's whole record
    list), so a local run slows down minute by minute and starves the consumer's GetRecords; its
    PutRecord appends in constant time (docs/performance.md). Against AWS, PutRecords is the
    efficient call. The entries of one round all have distinct keys, so sending them at once
    keeps each key's order, and the retry rules below are the same per entry. A round ends when
    its slowest call answers (a stuck call holds back every key until its timeout); the
    summary's ``batches`` counts rounds.

Retries
    A PutRecords call can succeed for some entries and fail for others (``FailedRecordCount``;
    the failed result entries carry an ``ErrorCode``). Only the failed entries are sent again,
    each after its own bounded exponential backoff with jitter
    (``min(max_delay, base * 2**(n-1))``, uniformly drawn from its upper half, for the n-th
    failure). A call that fails as a whole with a transient error (throttling, 5xx, connection
    reset) counts as a failed attempt for every entry in it; any other error (stream missing,
    access denied, bad request) stops the run with :class:`ProducerError`. An entry that has
    failed ``max_attempts`` times is given up and counted as ``failed``.

Per-key ordering (why the scheduler looks the way it does)
    Consumers rely on the records of one partition key (one account) arriving in the order they
    were produced. Kinesis keeps that order for entries put one after the other, but inside one
    PutRecords call a partial failure breaks it: if entries A1 and A2 of the same key are in the
    same call and A1 fails while A2 succeeds, re-sending A1 puts it *after* A2. Retrying failed
    entries "in their original position" cannot repair this, because A2 is already in the shard.

    So the producer never has two entries of the same partition key in flight: a key's next
    entry is only sent after its previous entry succeeded (or was finally given up). Entries
    wait in one FIFO queue per key, and only the head of each queue is eligible. Each batch is
    filled with eligible heads in file order (a heap ordered by each head's position in the
    input), so with many keys a batch is full (500 distinct keys) and throughput stays high; a
    key with a long run of consecutive records only costs one slot per call. A head whose send
    failed waits for its backoff in a separate delay heap while the other keys keep flowing;
    because it keeps its original position, it is at the front of the first batch after its
    backoff. An entry that is given up does not block its key: the key's later entries are
    still sent, in order (the given-up entry is a gap, counted in ``failed``).

    The scheduler looks ahead at most ``lookahead`` entries (and 64 MiB) into the input, which
    bounds memory for endless inputs while leaving plenty of distinct keys to fill batches.

Python API
    ``send(client, stream, entries, ...) -> Summary``, :class:`Producer` for incremental use
    (the ``generate`` mode), ``load_replay_file(path) -> list[Entry]``; the synthetic records
    come from :mod:`load_test.synthetic`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import heapq
import json
import math
import os
import random
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from load_test.entries import MAX_PARTITION_KEY_CHARS, Entry
from load_test.synthetic import TransactionGenerator

MAX_BATCH_ENTRIES = 500
MAX_REQUEST_BYTES = 5 * 1024 * 1024

DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_BASE_DELAY_S = 0.1
DEFAULT_MAX_DELAY_S = 5.0
DEFAULT_LOOKAHEAD = 50_000
DEFAULT_LOOKAHEAD_BYTES = 64 * 1024 * 1024
DEFAULT_CONCURRENCY = 16
PUT_APIS = ("records", "record")

# Whole-call errors worth retrying; anything else is a configuration problem.
RETRIABLE_CALL_ERRORS = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "KMSThrottlingException",
        "InternalFailure",
        "InternalFailureException",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)

EXIT_OK = 0
EXIT_FAILED_ENTRIES = 1
EXIT_USAGE = 2
EXIT_FATAL = 3
EXIT_INTERRUPTED = 130

# boto3's Kinesis client (untyped without boto3-stubs); anything with ``put_records`` (and, for
# put_api="record", ``put_record``) works.
KinesisClient = Any
ProgressCallback = Callable[["Summary"], None]
# Called for each entry Kinesis accepted, on the producing thread (see Landed).
LandedCallback = Callable[["Landed"], None]
# (when the call answered, shard id, sequence number); the last two empty for a failure.
_Receipt = tuple[float, str, str]


@dataclass(frozen=True, slots=True)
class Landed:
    """An entry Kinesis accepted: when its call answered (wall clock, time.time()), where a load
    test starts its put -> alert clock, and where it went (the newest sequence number of each
    shard is what the consumers must checkpoint before the test reads their output)."""

    entry: Entry
    at: float
    shard_id: str
    sequence_number: str


class NewestPerShard:
    """The newest sequence number put to each shard, from the producer's receipts (call it with
    each `Landed`): what every consumer must have checkpointed before a test reads its output.
    A receipt without a shard or a decimal sequence number (a stand-in's reply) is skipped."""

    def __init__(self) -> None:
        self._newest: dict[str, int] = {}

    def __call__(self, receipt: Landed) -> None:
        shard, sequence = receipt.shard_id, receipt.sequence_number
        if shard and sequence.isdigit():
            self._newest[shard] = max(self._newest.get(shard, -1), int(sequence))

    def checkpoints(self) -> dict[str, str]:
        """shard -> the sequence number a checkpoint must reach."""
        return {shard: str(sequence) for shard, sequence in self._newest.items()}


@dataclass
class Summary:
    """Counters of a run. ``retried`` counts re-sends of entries (one entry re-sent twice
    counts 2); ``failed`` counts entries given up after ``max_attempts``."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    batches: int = 0
    pending: int = 0
    error_codes: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Entries successfully put per second."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "retried": self.retried,
            "failed": self.failed,
            "elapsed_s": round(self.elapsed_s, 3),
            "rate": round(self.rate, 1),
            "batches": self.batches,
            "error_codes": dict(sorted(self.error_codes.items())),
        }

    def format_text(self) -> str:
        return (
            f"sent {self.sent}, retried {self.retried}, failed {self.failed}, "
            f"elapsed {self.elapsed_s:.2f} s, rate {self.rate:.1f} records/s"
        )


class ProducerError(RuntimeError):
    """A non-retriable error stopped the run; ``summary`` holds the counters so far."""

    def __init__(self, message: str, summary: Summary) -> None:
        super().__init__(message)
        self.summary = summary


def _call_error(exc: ClientError) -> tuple[str, str | None]:
    """A failed call's error code, and a message when it is not worth retrying (a
    configuration problem: stream missing, access denied, bad request)."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "Unknown")
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in RETRIABLE_CALL_ERRORS or status >= 500:
        return code, None
    return code, f"{code}: {error.get('Message', '')}".rstrip(": ")


class _Pending:
    __slots__ = ("attempts", "entry", "seq")

    def __init__(self, entry: Entry, seq: int) -> None:
        self.entry = entry
        self.seq = seq  # position in the input: the scheduling priority
        self.attempts = 0  # sends made so far


class Producer:
    """Incremental producer: :meth:`add` entries, then :meth:`send_ready` / :meth:`flush`.

    See the module docstring for the batching, retry and per-key ordering rules. ``sleep``,
    ``clock`` and ``rng`` are injectable for tests.
    """

    def __init__(
        self,
        client: KinesisClient,
        stream: str,
        *,
        on_progress: ProgressCallback | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        base_delay_s: float = DEFAULT_BASE_DELAY_S,
        max_delay_s: float = DEFAULT_MAX_DELAY_S,
        max_batch_entries: int = MAX_BATCH_ENTRIES,
        max_batch_bytes: int = MAX_REQUEST_BYTES,
        put_api: str = "records",
        concurrency: int = DEFAULT_CONCURRENCY,
        on_landed: LandedCallback | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if not stream:
            raise ValueError("stream must be a stream name or ARN")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 1 <= max_batch_entries <= MAX_BATCH_ENTRIES:
            raise ValueError(f"max_batch_entries must be 1..{MAX_BATCH_ENTRIES}")
        if not 1 <= max_batch_bytes <= MAX_REQUEST_BYTES:
            raise ValueError(f"max_batch_bytes must be 1..{MAX_REQUEST_BYTES}")
        if base_delay_s < 0 or max_delay_s < 0:
            raise ValueError("delays must not be negative")
        if put_api not in PUT_APIS:
            raise ValueError(f"put_api must be one of {', '.join(PUT_APIS)}, got {put_api!r}")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._client = client
        self._stream_arg = (
            {"StreamARN": stream} if stream.startswith("arn:") else {"StreamName": stream}
        )
        self._on_progress = on_progress
        self._on_landed = on_landed
        self._wall_clock = wall_clock
        self.max_attempts = max_attempts
        self._base_delay = base_delay_s
        self._max_delay = max_delay_s
        self._max_entries = max_batch_entries
        self._max_bytes = max_batch_bytes
        self._sleep = sleep
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._pool = (
            ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="put-record")
            if put_api == "record"
            else None
        )

        self._queues: dict[str, deque[_Pending]] = {}  # per key, FIFO; head = next to send
        self._ready: list[tuple[int, str]] = []  # heap of (head seq, key), eligible now
        self._delayed: list[tuple[float, int, str]] = []  # heap of (not before, seq, key)
        self._next_seq = 0
        self._pending = 0
        self._pending_bytes = 0

        self._start = clock()
        self._sent = 0
        self._retried = 0
        self._failed = 0
        self._batches = 0
        self._errors: dict[str, int] = {}

    # -- state ----------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Entries added and not yet finished (sent or given up)."""
        return self._pending

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @property
    def ready_keys(self) -> int:
        """Keys whose head entry could go into the next batch right now (ignores backoffs
        that have expired since the last call)."""
        return len(self._ready)

    def summary(self) -> Summary:
        return Summary(
            sent=self._sent,
            retried=self._retried,
            failed=self._failed,
            elapsed_s=max(0.0, self._clock() - self._start),
            batches=self._batches,
            pending=self._pending,
            error_codes=dict(self._errors),
        )

    # -- input ----------------------------------------------------------------------------------

    def add(self, entry: Entry) -> None:
        """Queue an entry behind the earlier entries of its partition key."""
        if not isinstance(entry, Entry):
            raise TypeError(f"expected an Entry, got {type(entry).__name__}")
        item = _Pending(entry, self._next_seq)
        self._next_seq += 1
        key = entry.partition_key
        queue = self._queues.get(key)
        if queue is None:
            self._queues[key] = deque((item,))
            heapq.heappush(self._ready, (item.seq, key))
        else:
            queue.append(item)  # becomes eligible when everything before it is finished
        self._pending += 1
        self._pending_bytes += entry.size

    # -- sending --------------------------------------------------------------------------------

    def _promote(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            _, seq, key = heapq.heappop(self._delayed)
            heapq.heappush(self._ready, (seq, key))

    def _next_batch(self) -> list[_Pending]:
        self._promote(self._clock())
        batch: list[_Pending] = []
        total = 0
        while self._ready and len(batch) < self._max_entries:
            _, key = self._ready[0]
            head = self._queues[key][0]
            size = head.entry.size
            if batch and total + size > self._max_bytes:
                break  # keep input order: do not skip ahead to smaller entries
            heapq.heappop(self._ready)
            batch.append(head)
            total += size
        return batch

    def send_batch(self) -> bool:
        """Send one PutRecords call with the eligible entries; False if none is eligible."""
        batch = self._next_batch()
        if not batch:
            return False
        self._put(batch)
        return True

    def send_ready(self) -> int:
        """Send calls until no entry is eligible (entries in backoff stay queued); returns the
        number of calls made."""
        calls = 0
        while self.send_batch():
            calls += 1
        return calls

    def wait_for_retry(self) -> None:
        """Sleep until the earliest backoff expires (no-op if nothing is backing off)."""
        if self._delayed:
            delay = self._delayed[0][0] - self._clock()
            if delay > 0:
                self._sleep(delay)

    def flush(self) -> Summary:
        """Send everything queued, waiting out backoffs; returns the summary."""
        while self._pending:
            if not self.send_batch():
                if not self._delayed:  # pragma: no cover - would be a scheduler bug
                    raise AssertionError("entries pending but none eligible or delayed")
                self.wait_for_retry()
        return self.summary()

    def send_all(
        self,
        entries: Iterable[Entry],
        *,
        lookahead: int = DEFAULT_LOOKAHEAD,
        lookahead_bytes: int = DEFAULT_LOOKAHEAD_BYTES,
    ) -> Summary:
        """Add and send ``entries`` (consumed lazily, at most ``lookahead`` ahead), then flush."""
        lookahead = max(1, lookahead)
        for entry in entries:
            self.add(entry)
            if self.ready_keys >= self._max_entries:
                self.send_batch()  # a full batch is available: send it now
            while self._pending >= lookahead or self._pending_bytes >= lookahead_bytes:
                if not self.send_batch():
                    self.wait_for_retry()
        return self.flush()

    def _backoff(self, failures: int) -> float:
        cap = min(self._max_delay, self._base_delay * 2.0 ** min(failures - 1, 30))
        return cap / 2 + self._rng.uniform(0, cap / 2)

    def close(self) -> None:
        """Stop the PutRecord threads (put_api="record"); idempotent."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _put(self, batch: list[_Pending]) -> None:
        self._retried += sum(1 for p in batch if p.attempts > 0)
        self._batches += 1
        if self._pool is not None:
            results, receipts = self._put_each(batch)
        else:
            results, receipts = self._put_records(batch)
        self._complete(batch, results, receipts)
        if self._on_progress is not None:
            self._on_progress(self.summary())

    def _put_records(self, batch: list[_Pending]) -> tuple[list[str | None], list[_Receipt]]:
        """One PutRecords call: each entry's error code (None where it landed) and receipt."""
        records = [{"Data": p.entry.data, "PartitionKey": p.entry.partition_key} for p in batch]
        try:
            response = self._client.put_records(Records=records, **self._stream_arg)
        except ClientError as exc:
            code, fatal = _call_error(exc)
            if fatal is not None:
                self._unsend(batch)
                raise ProducerError(f"PutRecords failed: {fatal}", self.summary()) from exc
            return [code] * len(batch), [(self._wall_clock(), "", "")] * len(batch)
        except (BotoConnectionError, HTTPClientError) as exc:
            return [type(exc).__name__] * len(batch), [(self._wall_clock(), "", "")] * len(batch)
        at = self._wall_clock()
        out = response.get("Records") if isinstance(response, dict) else None
        if not isinstance(out, list) or len(out) != len(batch):
            self._unsend(batch)
            raise ProducerError(
                f"PutRecords returned {len(out) if isinstance(out, list) else 'no'} results "
                f"for {len(batch)} entries",
                self.summary(),
            )
        codes: list[str | None] = []
        receipts: list[_Receipt] = []
        for result in out:
            result = result if isinstance(result, dict) else {"ErrorCode": "?"}
            codes.append(result.get("ErrorCode") or None)
            receipts.append(
                (at, str(result.get("ShardId", "")), str(result.get("SequenceNumber", "")))
            )
        return codes, receipts

    def _put_each(self, batch: list[_Pending]) -> tuple[list[str | None], list[_Receipt]]:
        """One PutRecord call per entry, `concurrency` at a time (distinct keys: see the
        module docstring). A non-retriable error stops the run once every call has
        answered: what landed is counted, the refused entries stay queued."""
        assert self._pool is not None
        outcomes = list(self._pool.map(self._put_one, batch))
        codes = [code for code, _, _ in outcomes]
        receipts = [receipt for _, _, receipt in outcomes]
        refusals = [message for _, message, _ in outcomes]
        if any(refusals):
            took = [i for i, message in enumerate(refusals) if message is None]
            self._complete(
                [batch[i] for i in took], [codes[i] for i in took], [receipts[i] for i in took]
            )
            self._unsend([p for p, message in zip(batch, refusals, strict=True) if message])
            first = next(message for message in refusals if message)
            refused = sum(1 for message in refusals if message)
            raise ProducerError(
                f"PutRecord failed ({refused} of {len(batch)} refused): {first}", self.summary()
            )
        return codes, receipts

    def _put_one(self, item: _Pending) -> tuple[str | None, str | None, _Receipt]:
        """(error code or None, fatal message or None, receipt) of one PutRecord call."""
        entry = item.entry
        try:
            response = self._client.put_record(
                Data=entry.data, PartitionKey=entry.partition_key, **self._stream_arg
            )
        except ClientError as exc:
            return (*_call_error(exc), (self._wall_clock(), "", ""))
        except (BotoConnectionError, HTTPClientError) as exc:
            return type(exc).__name__, None, (self._wall_clock(), "", "")
        except Exception as exc:  # no credentials, a bad parameter: settled as a refusal
            return type(exc).__name__, f"{type(exc).__name__}: {exc}", (self._wall_clock(), "", "")
        receipt = (
            self._wall_clock(),
            str(response.get("ShardId", "")),
            str(response.get("SequenceNumber", "")),
        )
        return None, None, receipt

    def _unsend(self, batch: list[_Pending]) -> None:
        # The run stops; put the heads back so pending/summary stay truthful.
        for p in batch:
            heapq.heappush(self._ready, (p.seq, p.entry.partition_key))

    def _complete(
        self, batch: list[_Pending], results: Sequence[str | None], receipts: Sequence[_Receipt]
    ) -> None:
        now = self._clock()
        for item, code, receipt in zip(batch, results, receipts, strict=True):
            key = item.entry.partition_key
            item.attempts += 1
            if code is None:
                self._sent += 1
                self._finish(key)
                if self._on_landed is not None:
                    self._on_landed(Landed(item.entry, *receipt))
                continue
            self._errors[code] = self._errors.get(code, 0) + 1
            if item.attempts >= self.max_attempts:
                self._failed += 1
                self._finish(key)
            else:
                not_before = now + self._backoff(item.attempts)
                heapq.heappush(self._delayed, (not_before, item.seq, key))

    def _finish(self, key: str) -> None:
        queue = self._queues[key]
        done = queue.popleft()
        self._pending -= 1
        self._pending_bytes -= done.entry.size
        if queue:
            heapq.heappush(self._ready, (queue[0].seq, key))
        else:
            del self._queues[key]


def send(
    client: KinesisClient,
    stream: str,
    entries: Iterable[Entry],
    *,
    on_progress: ProgressCallback | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    base_delay_s: float = DEFAULT_BASE_DELAY_S,
    max_delay_s: float = DEFAULT_MAX_DELAY_S,
    max_batch_entries: int = MAX_BATCH_ENTRIES,
    max_batch_bytes: int = MAX_REQUEST_BYTES,
    lookahead: int = DEFAULT_LOOKAHEAD,
    put_api: str = "records",
    concurrency: int = DEFAULT_CONCURRENCY,
    on_landed: LandedCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
) -> Summary:
    """Put ``entries`` to ``stream`` (a name, or an ARN starting with ``arn:``) keeping each
    partition key's order; returns the summary. Raises :class:`ProducerError` on a
    non-retriable error. Entries that fail ``max_attempts`` times are counted in ``failed``."""
    producer = Producer(
        client,
        stream,
        on_progress=on_progress,
        max_attempts=max_attempts,
        base_delay_s=base_delay_s,
        max_delay_s=max_delay_s,
        max_batch_entries=max_batch_entries,
        max_batch_bytes=max_batch_bytes,
        put_api=put_api,
        concurrency=concurrency,
        on_landed=on_landed,
        sleep=sleep,
        clock=clock,
        wall_clock=wall_clock,
        rng=rng,
    )
    try:
        return producer.send_all(entries, lookahead=lookahead)
    finally:
        producer.close()


# -- replay files ---------------------------------------------------------------------------------


class ReplayFileError(ValueError):
    """A malformed line in a replay file."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}:{line}: {message}")
        self.source = source
        self.line = line
        self.message = message


def _random_key(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def account_key(data: bytes) -> str | None:
    """The record's ``account_id`` if the data is a JSON object with a usable string one."""
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(parsed, dict):
        return None
    account = parsed.get("account_id")
    if not isinstance(account, str) or not 1 <= len(account) <= MAX_PARTITION_KEY_CHARS:
        return None
    try:
        account.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return account


def parse_replay_line(raw: bytes, *, rng: random.Random) -> Entry | None:
    """One replay line to an entry (None for a blank line); ValueError if malformed."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"line is not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    has_data = obj.get("data") is not None
    has_b64 = obj.get("data_b64") is not None
    if has_data and has_b64:
        raise ValueError('has both "data" and "data_b64"; give exactly one')
    if has_data:
        if not isinstance(obj["data"], str):
            raise ValueError('"data" must be a string (the record as text)')
        try:
            data = obj["data"].encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError('"data" is not encodable as UTF-8; use "data_b64"') from exc
    elif has_b64:
        if not isinstance(obj["data_b64"], str):
            raise ValueError('"data_b64" must be a base64 string')
        try:
            data = base64.b64decode(obj["data_b64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f'"data_b64" is not valid base64: {exc}') from exc
    else:
        raise ValueError('needs a "data" or "data_b64" field')
    key = obj.get("partition_key")
    if key is None:
        key = account_key(data) or _random_key(rng)
    elif not isinstance(key, str):
        raise ValueError('"partition_key" must be a string')
    return Entry(data=data, partition_key=key)


def parse_replay_lines(
    lines: Iterable[bytes], *, source: str = "<replay>", rng: random.Random | None = None
) -> list[Entry]:
    """Parse replay lines; raises :class:`ReplayFileError` naming the first bad line."""
    rng = rng if rng is not None else random.Random()
    entries: list[Entry] = []
    for number, raw in enumerate(lines, start=1):
        try:
            entry = parse_replay_line(raw, rng=rng)
        except (ValueError, TypeError) as exc:
            raise ReplayFileError(source, number, str(exc)) from exc
        if entry is not None:
            entries.append(entry)
    return entries


def load_replay_file(
    path: str | os.PathLike[str], *, rng: random.Random | None = None
) -> list[Entry]:
    """Read a replay file (``-`` = stdin): one JSON object per line, ``{"data": "<record>"}``
    or ``{"data_b64": "<base64>"}``, optional ``"partition_key"`` (default: the record's
    ``account_id`` when the data is a JSON object with a string one, else a random key per
    line); other keys ignored; blank lines skipped. Raises :class:`ReplayFileError` (a
    ``ValueError``) with the line number of the first malformed line."""
    if str(path) == "-":
        return parse_replay_lines(sys.stdin.buffer, source="<stdin>", rng=rng)
    with Path(path).open("rb") as handle:
        return parse_replay_lines(handle, source=str(path), rng=rng)


# -- command line ---------------------------------------------------------------------------------


class ProgressPrinter:
    """Progress on stderr: a tqdm bar on a TTY (of `total` records when known), a line every
    few seconds otherwise."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        total: int | None = None,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._interval = interval_s if interval_s is not None else (0.25 if self._tty else 5.0)
        self._clock = clock
        self._last = clock()
        self._shown = False
        self._bar: Any = None
        if self._tty:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                desc="sent",
                unit="record",
                file=self._stream,
                mininterval=self._interval,
                dynamic_ncols=True,
            )

    def __call__(self, summary: Summary) -> None:
        if self._bar is not None:
            self._bar.update(summary.sent - self._bar.n)
            self._bar.set_postfix_str(
                f"retried={summary.retried} failed={summary.failed} pending={summary.pending} "
                f"rate={summary.rate:.1f}/s",
                refresh=False,
            )
            return
        now = self._clock()
        if now - self._last < self._interval:
            return
        self._last = now
        line = (
            f"sent={summary.sent} retried={summary.retried} failed={summary.failed} "
            f"pending={summary.pending} rate={summary.rate:.1f}/s"
        )
        if self._tty:
            self._stream.write("\r" + line + "\x1b[K")
        else:
            self._stream.write(line + "\n")
        self._stream.flush()
        self._shown = True

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.refresh()
            self._bar.close()
            self._bar = None
            return
        if self._tty and self._shown:
            self._stream.write("\n")
            self._stream.flush()
            self._shown = False


def client_config(concurrency: int = DEFAULT_CONCURRENCY) -> Any:
    """botocore settings for the producer's Kinesis client: bounded retries and timeouts, and a
    connection for each of `concurrency` PutRecord threads."""
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=max(10, concurrency),
    )


def make_client(
    region: str, endpoint_url: str | None, concurrency: int = DEFAULT_CONCURRENCY
) -> KinesisClient:
    """A Kinesis client; ``endpoint_url=None`` keeps boto3's own endpoint resolution (which
    honours ``AWS_ENDPOINT_URL_KINESIS`` / ``AWS_ENDPOINT_URL``)."""
    import boto3

    return boto3.client(
        "kinesis",
        region_name=region,
        endpoint_url=endpoint_url,
        config=client_config(concurrency),
    )


def run_generate(
    producer: Producer,
    next_entry: Callable[[], Entry],
    *,
    rate: float,
    duration_s: float,
    tick_s: float = 0.1,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Produce ``round(rate * duration_s)`` entries on a wall-clock schedule (entry i is due
    at ``start + i / rate``): every tick, create the entries that are due and send what is
    eligible, in batches; never sleeps per record. Returns the number of entries created
    (the caller flushes)."""
    total = max(0, round(rate * duration_s))
    start = clock()
    produced = 0
    while produced < total:
        round_start = clock()
        due = min(total, math.floor((round_start - start) * rate) + 1)
        for _ in range(due - produced):
            producer.add(next_entry())
        produced = max(produced, due)
        producer.send_ready()
        if produced >= total:
            break
        wake_at = max(start + produced / rate, round_start + tick_s)
        delay = wake_at - clock()
        if delay > 0:
            sleep(delay)
    return produced


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within 0..1, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def add_put_arguments(
    parser: argparse.ArgumentParser, *, put_api: str, suppress: bool = False
) -> None:
    """--put-api (default `put_api`) and --concurrency: the producer's CLI and the load test's
    (which defaults to PutRecord: it only ever runs against kinesis-mock)."""
    parser.add_argument(
        "--put-api",
        choices=PUT_APIS,
        default=argparse.SUPPRESS if suppress else put_api,
        help=(
            "records: PutRecords batches (the right call against AWS); record: one PutRecord per"
            " entry, --concurrency at once (kinesis-mock, whose PutRecords slows down as its"
            f" shards fill: docs/performance.md); default {put_api}"
        ),
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=argparse.SUPPRESS if suppress else DEFAULT_CONCURRENCY,
        help=f"PutRecord calls at once with --put-api record (default {DEFAULT_CONCURRENCY})",
    )


def _add_common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--stream",
        default=default(os.environ.get("FRAUD_STREAM")),
        help="stream name or ARN (default: $FRAUD_STREAM)",
    )
    parser.add_argument(
        "--endpoint-url",
        default=default(None),
        help="Kinesis endpoint (default: boto3's resolution, e.g. $AWS_ENDPOINT_URL_KINESIS)",
    )
    parser.add_argument(
        "--region",
        default=default(os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"),
        help="AWS region (default: $AWS_DEFAULT_REGION or us-east-1)",
    )
    parser.add_argument(
        "--max-attempts",
        type=positive_int,
        default=default(DEFAULT_MAX_ATTEMPTS),
        help=f"sends per entry before giving up (default {DEFAULT_MAX_ATTEMPTS})",
    )
    add_put_arguments(parser, put_api="records", suppress=suppress)
    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="the summary as one JSON object on stdout and nothing else there (default: a line "
        "of text)",
    )


def build_parser() -> argparse.ArgumentParser:
    from load_test.cli_help import HelpFormatter, exit_codes

    codes = exit_codes(
        f"{EXIT_OK} every record put",
        f"{EXIT_FAILED_ENTRIES} some records failed after --max-attempts",
        f"{EXIT_USAGE} a usage error or an unreadable --file",
        f"{EXIT_FATAL} a non-retriable error stopped the run",
        f"{EXIT_INTERRUPTED} interrupted (Ctrl-C)",
    )
    parser = argparse.ArgumentParser(
        prog="python -m load_test.producer",
        description="Put transactions to a Kinesis stream (load test). Progress on stderr; "
        "the summary on stdout (with --json as one JSON document).",
        formatter_class=HelpFormatter,
        epilog=codes,
    )
    _add_common(parser, suppress=False)
    sub = parser.add_subparsers(dest="mode", required=True)

    gen = sub.add_parser(
        "generate",
        help="synthetic transactions at a fixed rate",
        formatter_class=HelpFormatter,
        epilog=codes,
    )
    gen.add_argument("--rate", type=_positive_float, required=True, help="records per second")
    gen.add_argument("--duration", type=_positive_float, required=True, help="seconds")
    gen.add_argument("--accounts", type=positive_int, default=1000, help="ordinary accounts")
    gen.add_argument(
        "--fraud-ratio", type=_ratio, default=0.05, help="share of labelled (fraud) records"
    )
    gen.add_argument(
        "--invalid-ratio", type=_ratio, default=0.0, help="share of deliberately broken records"
    )
    gen.add_argument(
        "--seed", type=int, default=None, help="seed for reproducible records (default: random)"
    )
    _add_common(gen, suppress=True)

    rep = sub.add_parser(
        "replay",
        help="records from a file, in file order",
        formatter_class=HelpFormatter,
        epilog=codes,
    )
    rep.add_argument(
        "--file",
        required=True,
        help='JSON Lines: {"data": ...} or {"data_b64": ...}, optional "partition_key"; - = stdin',
    )
    _add_common(rep, suppress=True)
    return parser


def _report(summary: Summary, extra: dict[str, Any], as_json: bool) -> None:
    text = "summary: " + summary.format_text()
    if "generated" in extra:
        text += (
            f" (generated {extra['generated']}: fraud {extra['fraud']}, invalid {extra['invalid']})"
        )
    if as_json:  # one JSON document on stdout and nothing else, as every --json
        print(json.dumps({**summary.to_dict(), **extra}, separators=(",", ":")))
    else:
        print(text)
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.stream:
        parser.error("--stream is required (or set FRAUD_STREAM)")

    extra: dict[str, Any] = {"mode": args.mode}
    entries: list[Entry] = []
    generator: Any = None
    if args.mode == "replay":
        try:
            entries = load_replay_file(args.file)
        except ReplayFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except OSError as exc:
            print(f"error: cannot read {args.file}: {exc}", file=sys.stderr)
            return EXIT_USAGE
    else:
        if args.fraud_ratio + args.invalid_ratio > 1.0:
            parser.error("--fraud-ratio + --invalid-ratio must not exceed 1")
        generator = TransactionGenerator(
            accounts=args.accounts,
            fraud_ratio=args.fraud_ratio,
            invalid_ratio=args.invalid_ratio,
            seed=args.seed,
        )

    total = len(entries) if generator is None else max(0, round(args.rate * args.duration))
    progress = ProgressPrinter(total=total)
    producer = Producer(
        make_client(args.region, args.endpoint_url, args.concurrency),
        args.stream,
        on_progress=progress,
        max_attempts=args.max_attempts,
        put_api=args.put_api,
        concurrency=args.concurrency,
    )
    code = EXIT_OK
    try:
        if generator is not None:
            run_generate(
                producer,
                lambda: generator.next_record().to_entry(),
                rate=args.rate,
                duration_s=args.duration,
            )
            summary = producer.flush()
        else:
            summary = producer.send_all(entries)
    except ProducerError as exc:
        progress.finish()
        print(f"error: {exc}", file=sys.stderr)
        summary, code = exc.summary, EXIT_FATAL
    except KeyboardInterrupt:
        progress.finish()
        print("interrupted", file=sys.stderr)
        summary, code = producer.summary(), EXIT_INTERRUPTED
    else:
        progress.finish()
        if summary.failed:
            code = EXIT_FAILED_ENTRIES
    finally:
        producer.close()
    if generator is not None:
        extra.update(
            generated=sum(generator.counts.values()),
            fraud=generator.fraud_count,
            invalid=generator.invalid_count,
        )
    _report(summary, extra, args.json)
    return code


if __name__ == "__main__":
    sys.exit(main())
