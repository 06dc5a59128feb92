"""The producer: put records to a Kinesis stream with PutRecords (or PutRecord), keeping each
partition key's order and retrying what failed.

`fraudstream ingest` (consumer/ingest/run.py) and the load test (load_test/producer.py, its
command line and replay files) both send through this one implementation.

Batching
    One PutRecords call carries at most 500 entries and at most 5 MiB (data plus partition keys);
    one entry is at most 1 MiB (data plus partition key) with a partition key of 1..256
    characters. :class:`Entry` (:mod:`consumer.ingest.entries`) refuses anything larger, so
    every entry is sendable.

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
    (the load test's ``generate`` mode adds entries on a schedule), ``make_client`` /
    ``client_config`` for the Kinesis client.
"""

from __future__ import annotations

import heapq
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from consumer.errors import FraudstreamError
from consumer.ingest.entries import Entry

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


class ProducerError(FraudstreamError, RuntimeError):
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
