"""Tests of the load-test producer (load_test/producer.py) and its generator (synthetic.py)."""

from __future__ import annotations

import base64
import io
import itertools
import json
import math
import random
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from consumer.ingest.entries import MAX_RECORD_BYTES, Entry
from load_test import producer as producer_mod
from load_test.producer import (
    MAX_BATCH_ENTRIES,
    Landed,
    NewestPerShard,
    Producer,
    ProducerError,
    ProgressPrinter,
    ReplayFileError,
    Summary,
    load_replay_file,
    run_generate,
    send,
)
from load_test.synthetic import (
    FRAUD_ARCHETYPES,
    SyntheticRecord,
    TransactionGenerator,
    generate_entries,
    generate_records,
)

STREAM = "transactions"


# -- helpers --------------------------------------------------------------------------------------


class FakeClock:
    """Monotonic clock whose sleep advances time instantly."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


FailPolicy = Callable[[str, bytes, int], str | None]


class FakeKinesis:
    """PutRecords double. ``fail(key, data, attempt)`` returns an error code to fail that entry
    on that attempt (1-based). A failed entry does not land; the entries that succeed land in
    call order, exactly as Kinesis would write them, so a producer that puts two entries of
    one key in the same call and retries the first one gets a reordered ``landed``."""

    def __init__(self, fail: FailPolicy | None = None, clock: FakeClock | None = None) -> None:
        self.fail = fail or (lambda key, data, attempt: None)
        self.clock = clock
        self.calls: list[list[tuple[str, bytes]]] = []
        self.call_times: list[float] = []
        self.landed: dict[str, list[bytes]] = defaultdict(list)
        self.attempts: Counter[tuple[str, bytes]] = Counter()
        self.attempt_times: dict[tuple[str, bytes], list[float]] = defaultdict(list)
        self.stream_args: list[dict[str, Any]] = []
        self.raise_on_call: dict[int, Exception] = {}
        # PutRecord (put_api="record")
        self._lock = threading.Lock()
        self.record_delay_s = 0.002
        self.in_flight: list[str] = []
        self.max_in_flight = 0
        self.same_key_in_flight = 0
        self.single_calls = 0
        self.raise_for_key: dict[str, Exception] = {}

    def put_records(self, *, Records: list[dict[str, Any]], **stream: Any) -> dict[str, Any]:
        self.stream_args.append(stream)
        batch = [(r["PartitionKey"], r["Data"]) for r in Records]
        self.calls.append(batch)
        now = self.clock() if self.clock else 0.0
        self.call_times.append(now)
        error = self.raise_on_call.get(len(self.calls))
        if error is not None:
            return self._raise(error)
        results: list[dict[str, Any]] = []
        failed = 0
        for key, data in batch:
            self.attempts[(key, data)] += 1
            self.attempt_times[(key, data)].append(now)
            code = self.fail(key, data, self.attempts[(key, data)])
            if code:
                failed += 1
                results.append({"ErrorCode": code, "ErrorMessage": "simulated"})
            else:
                self.landed[key].append(data)
                results.append({"SequenceNumber": str(len(self.calls)), "ShardId": "shard-0"})
        return {"FailedRecordCount": failed, "Records": results}

    def put_record(self, *, Data: bytes, PartitionKey: str, **stream: Any) -> dict[str, Any]:
        """PutRecord double, safe to call from several threads: it holds each call for
        `record_delay_s` so that concurrent calls overlap, and records how many (and which
        keys) were in flight at once. A failure raises as boto3 does (`fail`'s code, 5xx)."""
        key = (PartitionKey, Data)
        with self._lock:
            self.stream_args.append(stream)
            self.in_flight.append(PartitionKey)
            self.max_in_flight = max(self.max_in_flight, len(self.in_flight))
            if len(set(self.in_flight)) != len(self.in_flight):
                self.same_key_in_flight += 1
            self.attempts[key] += 1
            attempt = self.attempts[key]
        time.sleep(self.record_delay_s)
        with self._lock:
            self.in_flight.remove(PartitionKey)
            self.single_calls += 1
            sequence_number = str(self.single_calls)
            error = self.raise_for_key.get(PartitionKey)
            if error is not None:
                raise error
            code = self.fail(PartitionKey, Data, attempt)
            if code:
                raise client_error(code, 500)
            self.landed[PartitionKey].append(Data)
        return {"SequenceNumber": sequence_number, "ShardId": "shard-0"}

    @staticmethod
    def _raise(error: Exception) -> dict[str, Any]:
        raise error

    def calls_with_repeated_key(self) -> list[int]:
        return [i for i, batch in enumerate(self.calls) if len({k for k, _ in batch}) != len(batch)]


def keyed_entries(keys: int, per_key: int, *, interleave: bool = True) -> list[Entry]:
    """Entries with unique data ``k<key>-<n>``: interleaved (k0-0, k1-0, ..., k0-1, ...)."""
    if interleave:
        order = [(n, k) for n in range(per_key) for k in range(keys)]
    else:
        order = [(n, k) for k in range(keys) for n in range(per_key)]
    return [Entry(f"k{k}-{n}".encode(), f"k{k}") for n, k in order]


def expected_by_key(entries: list[Entry]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = defaultdict(list)
    for entry in entries:
        out[entry.partition_key].append(entry.data)
    return dict(out)


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "simulated"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "PutRecords",
    )


@pytest.fixture
def kinesis(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KINESIS", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("kinesis", region_name="us-east-1")
        client.create_stream(StreamName=STREAM, ShardCount=3)
        client.get_waiter("stream_exists").wait(StreamName=STREAM)
        yield client


def read_stream(client: Any) -> list[tuple[str, bytes]]:
    """Every record of every shard as (partition key, data), each shard in sequence order."""
    out: list[tuple[str, bytes]] = []
    for shard in client.list_shards(StreamName=STREAM)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=STREAM, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = client.get_records(ShardIterator=iterator, Limit=10_000)
            records = response["Records"]
            out.extend((r["PartitionKey"], r["Data"]) for r in records)
            if not records:
                break
            iterator = response.get("NextShardIterator")
    return out


class RecordingClient:
    """Wraps a real (moto) client and records the size of every PutRecords call."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batch_sizes: list[int] = []

    def put_records(self, **kwargs: Any) -> Any:
        self.batch_sizes.append(len(kwargs["Records"]))
        return self.inner.put_records(**kwargs)


# -- Kinesis (moto) -------------------------------------------------------------------------------


def test_records_land_in_stream_with_partition_key_and_data(kinesis: Any) -> None:
    entries = list(generate_entries(300, seed=3, accounts=40, fraud_ratio=0.2, invalid_ratio=0.1))
    entries.append(Entry(b"\xff\x00 raw bytes", "custom-key"))
    summary = send(kinesis, STREAM, entries)

    assert summary.sent == len(entries)
    assert (summary.failed, summary.retried) == (0, 0)
    landed = read_stream(kinesis)
    assert Counter(landed) == Counter((e.partition_key, e.data) for e in entries)
    # One account = one partition key = one shard; its records are in input order there.
    got: dict[str, list[bytes]] = defaultdict(list)
    for key, data in landed:
        got[key].append(data)
    assert got == expected_by_key(entries)
    # The partition key of a generated valid record is its account_id.
    for key, data in landed:
        if data.startswith(b"{") and b'"expected_rules"' in data:
            assert json.loads(data)["account_id"] == key


def test_batches_never_exceed_500_entries(kinesis: Any) -> None:
    entries = [Entry(f"r{i}".encode(), f"key-{i}") for i in range(1234)]
    client = RecordingClient(kinesis)
    summary = send(client, STREAM, entries)
    assert client.batch_sizes == [500, 500, 234]
    assert summary.batches == 3
    assert summary.sent == 1234
    assert len(read_stream(kinesis)) == 1234


def test_stream_arn_is_accepted(kinesis: Any) -> None:
    arn = kinesis.describe_stream(StreamName=STREAM)["StreamDescription"]["StreamARN"]
    fake = FakeKinesis()
    send(fake, arn, [Entry(b"x", "k")])
    assert fake.stream_args == [{"StreamARN": arn}]
    send(fake, STREAM, [Entry(b"x", "k")])
    assert fake.stream_args[-1] == {"StreamName": STREAM}


# -- batching limits ------------------------------------------------------------------------------


def test_batches_stay_under_the_request_byte_limit() -> None:
    big = 900 * 1024
    entries = [Entry(bytes([i]) * big, f"key-{i}") for i in range(13)]
    fake = FakeKinesis()
    summary = send(fake, STREAM, entries)
    assert summary.sent == 13
    for batch in fake.calls:
        assert sum(len(d) + len(k) for k, d in batch) <= 5 * 1024 * 1024
    assert [len(b) for b in fake.calls] == [5, 5, 3]  # 6 x 900 KiB would be over 5 MiB


def test_entry_limits() -> None:
    Entry(b"x" * (MAX_RECORD_BYTES - 1), "k")  # data + key == 1 MiB is fine
    with pytest.raises(ValueError, match="bytes"):
        Entry(b"x" * MAX_RECORD_BYTES, "k")
    with pytest.raises(ValueError, match="partition key"):
        Entry(b"x", "")
    with pytest.raises(ValueError, match="partition key"):
        Entry(b"x", "k" * 257)
    Entry(b"x", "k" * 256)
    with pytest.raises(TypeError):
        Entry("text", "k")  # type: ignore[arg-type]


# -- scheduling and retries -----------------------------------------------------------------------


def test_many_keys_fill_whole_batches() -> None:
    entries = keyed_entries(keys=1000, per_key=2)
    fake = FakeKinesis()
    send(fake, STREAM, entries)
    assert [len(b) for b in fake.calls] == [500, 500, 500, 500]
    assert fake.calls_with_repeated_key() == []


def test_hot_key_costs_one_slot_per_call_not_throughput() -> None:
    # 31 records of one hot account (every 33rd) among 969 records of distinct accounts.
    entries = [
        Entry(f"hot-{i}".encode(), "hot") if i % 33 == 0 else Entry(f"c{i}".encode(), f"c{i}")
        for i in range(1000)
    ]
    fake = FakeKinesis()
    summary = send(fake, STREAM, entries)
    assert summary.sent == 1000
    assert fake.calls_with_repeated_key() == []
    # The hot key needs 31 calls (one of its records per call); the others ride along.
    assert len(fake.calls) == 31
    assert [len(b) for b in fake.calls[:3]] == [500, 471, 1]
    assert fake.landed["hot"] == [e.data for e in entries if e.partition_key == "hot"]


def test_batches_follow_input_order_across_keys() -> None:
    entries = keyed_entries(keys=4, per_key=3)
    fake = FakeKinesis()
    send(fake, STREAM, entries)
    assert [[d for _, d in batch] for batch in fake.calls] == [
        [b"k0-0", b"k1-0", b"k2-0", b"k3-0"],
        [b"k0-1", b"k1-1", b"k2-1", b"k3-1"],
        [b"k0-2", b"k1-2", b"k2-2", b"k3-2"],
    ]


def test_only_failed_entries_are_retried() -> None:
    entries = keyed_entries(keys=20, per_key=5)
    failing = {e.data for i, e in enumerate(entries) if i % 7 == 3}

    def fail(key: str, data: bytes, attempt: int) -> str | None:
        return (
            "ProvisionedThroughputExceededException" if data in failing and attempt == 1 else None
        )

    clock = FakeClock()
    fake = FakeKinesis(fail, clock)
    summary = send(fake, STREAM, entries, sleep=clock.sleep, clock=clock)

    sends = Counter(data for batch in fake.calls for _, data in batch)
    assert {d for d, n in sends.items() if n == 2} == failing
    assert {d for d, n in sends.items() if n == 1} == {e.data for e in entries} - failing
    assert summary.sent == 100
    assert summary.retried == len(failing)
    assert summary.failed == 0
    assert summary.error_codes == {"ProvisionedThroughputExceededException": len(failing)}
    assert dict(fake.landed) == expected_by_key(entries)


def test_per_key_order_survives_partial_failures() -> None:
    rng = random.Random(42)
    entries = [Entry(f"e{i}".encode(), f"acct-{rng.randrange(12)}") for i in range(600)]
    fail_rng = random.Random(7)

    def fail(key: str, data: bytes, attempt: int) -> str | None:
        if attempt <= 3 and fail_rng.random() < 0.3:
            return fail_rng.choice(["ProvisionedThroughputExceededException", "InternalFailure"])
        return None

    clock = FakeClock()
    fake = FakeKinesis(fail, clock)
    summary = send(fake, STREAM, entries, sleep=clock.sleep, clock=clock, max_attempts=5)

    assert summary.failed == 0
    assert summary.sent == 600
    assert summary.retried > 50
    assert fake.calls_with_repeated_key() == []
    assert dict(fake.landed) == expected_by_key(entries)


def test_naive_batching_would_reorder_so_the_fake_can_detect_it() -> None:
    # Guard for the test double: two entries of one key in one call + first one failing
    # lands them out of order. (The producer above must therefore never do that.)
    fake = FakeKinesis(
        lambda key, data, attempt: "InternalFailure" if data == b"a1" and attempt == 1 else None
    )
    fake.put_records(
        StreamName=STREAM, Records=[{"PartitionKey": "a", "Data": d} for d in (b"a1", b"a2")]
    )
    fake.put_records(StreamName=STREAM, Records=[{"PartitionKey": "a", "Data": b"a1"}])
    assert fake.landed["a"] == [b"a2", b"a1"]
    assert fake.calls_with_repeated_key() == [0]


def test_gives_up_after_max_attempts_and_counts_failed() -> None:
    entries = keyed_entries(keys=3, per_key=4)
    doomed = (b"k1-1", b"k2-3")

    def fail(key: str, data: bytes, attempt: int) -> str | None:
        return "KMSThrottlingException" if data in doomed else None

    clock = FakeClock()
    fake = FakeKinesis(fail, clock)
    progress: list[Summary] = []
    summary = send(
        fake,
        STREAM,
        entries,
        sleep=clock.sleep,
        clock=clock,
        max_attempts=4,
        on_progress=progress.append,
    )
    assert summary.failed == 2
    assert summary.sent == 10
    assert summary.retried == 2 * 3
    assert summary.error_codes == {"KMSThrottlingException": 8}
    assert fake.attempts[("k1", b"k1-1")] == 4
    assert fake.attempts[("k2", b"k2-3")] == 4
    # A given-up entry is a gap; the key's later records still land, in order.
    assert fake.landed["k1"] == [b"k1-0", b"k1-2", b"k1-3"]
    assert fake.landed["k2"] == [b"k2-0", b"k2-1", b"k2-2"]
    assert fake.calls_with_repeated_key() == []
    assert progress and progress[-1].failed == 2
    assert len(progress) == len(fake.calls)


def test_backoff_is_exponential_bounded_and_jittered() -> None:
    clock = FakeClock()
    fake = FakeKinesis(
        lambda key, data, attempt: "InternalFailure" if key == "bad" else None, clock
    )
    entries = [Entry(b"bad", "bad")] + [Entry(f"{i}".encode(), f"k{i}") for i in range(5)]
    summary = send(
        fake,
        STREAM,
        entries,
        sleep=clock.sleep,
        clock=clock,
        max_attempts=8,
        base_delay_s=0.1,
        max_delay_s=1.0,
        rng=random.Random(1),
    )
    assert summary.failed == 1
    times = fake.attempt_times[("bad", b"bad")]
    assert len(times) == 8
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for n, gap in enumerate(gaps, start=1):
        cap = min(1.0, 0.1 * 2 ** (n - 1))
        assert cap / 2 - 1e-9 <= gap <= cap + 1e-9, (n, gap)
    assert max(clock.sleeps) <= 1.0 + 1e-9
    assert len({round(g, 6) for g in gaps[3:]}) > 1  # jittered, not a fixed schedule


def test_other_keys_keep_flowing_while_one_backs_off() -> None:
    clock = FakeClock()
    fake = FakeKinesis(
        lambda key, data, attempt: "InternalFailure" if data == b"a0" and attempt < 3 else None,
        clock,
    )
    entries = [Entry(b"a0", "a"), Entry(b"a1", "a")] + [
        Entry(f"b{i}".encode(), "b") for i in range(3)
    ]
    send(fake, STREAM, entries, sleep=clock.sleep, clock=clock, base_delay_s=1.0, max_delay_s=1.0)
    # b's records went out one per call without waiting for a0's backoff.
    assert [d for _, d in fake.calls[0]] == [b"a0", b"b0"]
    b_times = [
        t
        for t, batch in zip(fake.call_times, fake.calls, strict=True)
        if any(k == "b" for k, _ in batch)
    ]
    assert b_times[-1] - b_times[0] < 0.5
    assert fake.landed["a"] == [b"a0", b"a1"]


def test_whole_call_throttling_is_retried_and_other_errors_stop() -> None:
    clock = FakeClock()
    fake = FakeKinesis(clock=clock)
    fake.raise_on_call[1] = client_error("ProvisionedThroughputExceededException")
    entries = keyed_entries(keys=3, per_key=2)
    summary = send(fake, STREAM, entries, sleep=clock.sleep, clock=clock)
    assert summary.sent == 6 and summary.failed == 0
    assert summary.retried == 3  # the whole first call
    assert dict(fake.landed) == expected_by_key(entries)

    fatal = FakeKinesis(clock=clock)
    fatal.raise_on_call[2] = client_error("ResourceNotFoundException")
    with pytest.raises(ProducerError, match="ResourceNotFoundException") as info:
        send(fatal, STREAM, entries, sleep=clock.sleep, clock=clock)
    assert info.value.summary.sent == 3
    assert info.value.summary.pending == 3


def test_lazy_input_is_consumed_with_bounded_lookahead() -> None:
    consumed = 0

    def source() -> Iterator[Entry]:
        nonlocal consumed
        for i in range(5000):
            consumed += 1
            yield Entry(f"{i}".encode(), "one-key")

    seen_pending: list[int] = []
    producer = Producer(FakeKinesis(), STREAM, on_progress=lambda s: seen_pending.append(s.pending))
    summary = producer.send_all(source(), lookahead=100)
    assert summary.sent == 5000 and consumed == 5000
    assert max(seen_pending) <= 100


# -- replay files ---------------------------------------------------------------------------------


def write_lines(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "replay.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_replay_file_parsing(tmp_path: Path) -> None:
    rec = {"transaction_id": "t1", "account_id": "acct-000042", "amount": 12.5}
    raw = b"\xff\xfe not utf-8"
    lines = [
        json.dumps({"data": json.dumps(rec)}),
        json.dumps({"data": json.dumps(rec), "partition_key": "explicit", "note": "ignored"}),
        json.dumps({"data_b64": base64.b64encode(json.dumps(rec).encode()).decode()}),
        "",
        json.dumps({"data_b64": base64.b64encode(raw).decode()}),
        json.dumps({"data": "not json at all"}),
        json.dumps({"data": json.dumps({"account_id": 42})}),
        json.dumps({"data_b64": base64.b64encode(raw).decode(), "partition_key": "pk"}),
        json.dumps({"data": "[1, 2]", "partition_key": None}),
    ]
    entries = load_replay_file(write_lines(tmp_path, lines), rng=random.Random(1))
    assert len(entries) == 8  # blank line skipped
    assert entries[0] == Entry(json.dumps(rec).encode(), "acct-000042")
    assert entries[1] == Entry(json.dumps(rec).encode(), "explicit")
    assert entries[2] == Entry(json.dumps(rec).encode(), "acct-000042")
    assert entries[3].data == raw
    assert entries[4].data == b"not json at all"
    assert entries[6] == Entry(raw, "pk")
    random_keys = [entries[i].partition_key for i in (3, 4, 5, 7)]
    assert len(set(random_keys)) == 4  # a fresh random key per keyless line
    assert all(re.fullmatch(r"[0-9a-f-]{36}", k) for k in random_keys)
    # Seeded: reproducible.
    again = load_replay_file(write_lines(tmp_path, lines), rng=random.Random(1))
    assert again == entries
    other = load_replay_file(write_lines(tmp_path, lines), rng=random.Random(2))
    assert other[3].partition_key != entries[3].partition_key


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["data"]', "JSON object"),
        ('{"partition_key": "k"}', '"data" or "data_b64"'),
        ('{"data": "a", "data_b64": "YQ=="}', "both"),
        ('{"data_b64": "***"}', "base64"),
        ('{"data": 5}', '"data" must be a string'),
        ('{"data": "a", "partition_key": 7}', "partition_key"),
        ('{"data": "a", "partition_key": ""}', "partition key"),
        ('{"data": "\\ud800"}', "UTF-8"),
    ],
)
def test_replay_malformed_line_names_its_number(
    tmp_path: Path, bad_line: str, message: str
) -> None:
    good = json.dumps({"data": "{}", "partition_key": "k"})
    path = write_lines(tmp_path, [good, good, bad_line, good])
    with pytest.raises(ReplayFileError) as info:
        load_replay_file(path)
    assert info.value.line == 3
    assert f"{path}:3:" in str(info.value)
    assert message in str(info.value)


def test_cli_replay_malformed_file_exits_2_before_sending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeKinesis()
    monkeypatch.setattr(producer_mod, "make_client", lambda region, endpoint, concurrency: fake)
    good = json.dumps({"data": "{}", "partition_key": "k"})
    path = write_lines(tmp_path, [good, good, good, good, "oops"])
    code = producer_mod.main(["replay", "--file", str(path), "--stream", STREAM])
    assert code == 2
    assert f"{path}:5:" in capsys.readouterr().err
    assert fake.calls == []


def test_cli_replay_sends_in_file_order_and_prints_json_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeKinesis()
    monkeypatch.setattr(producer_mod, "make_client", lambda region, endpoint, concurrency: fake)
    monkeypatch.setenv("FRAUD_STREAM", STREAM)
    lines = [
        json.dumps({"data": json.dumps({"account_id": f"a{i % 3}", "n": i})}) for i in range(9)
    ]
    code = producer_mod.main(["replay", "--file", str(write_lines(tmp_path, lines)), "--json"])
    assert code == 0
    out = capsys.readouterr().out
    result = json.loads(out)  # one JSON document and nothing else on stdout
    assert (result["sent"], result["retried"], result["failed"]) == (9, 0, 0)
    assert {"elapsed_s", "rate", "mode"} <= result.keys()
    assert [json.loads(d)["n"] for d in fake.landed["a1"]] == [1, 4, 7]
    assert fake.stream_args[0] == {"StreamName": STREAM}


def test_cli_without_json_prints_the_summary_as_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeKinesis()
    monkeypatch.setattr(producer_mod, "make_client", lambda region, endpoint, concurrency: fake)
    lines = [json.dumps({"data": json.dumps({"account_id": "a", "n": i})}) for i in range(3)]
    path = str(write_lines(tmp_path, lines))
    assert producer_mod.main(["--stream", STREAM, "replay", "--file", path]) == 0
    assert capsys.readouterr().out.startswith("summary: sent 3, retried 0, failed 0")


def test_cli_exits_nonzero_when_entries_finally_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeKinesis(lambda key, data, attempt: "InternalFailure" if key == "a1" else None)
    monkeypatch.setattr(producer_mod, "make_client", lambda region, endpoint, concurrency: fake)
    lines = [json.dumps({"data": json.dumps({"account_id": f"a{i % 3}"})}) for i in range(6)]
    code = producer_mod.main(
        [
            "--stream",
            STREAM,
            "replay",
            "--file",
            str(write_lines(tmp_path, lines)),
            "--max-attempts",
            "2",
            "--json",
        ]
    )
    assert code == 1
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["sent"], result["failed"], result["retried"]) == (4, 2, 2)


# -- PutRecord (put_api="record", for kinesis-mock) ------------------------------------------------


def test_put_record_api_keeps_each_keys_order_with_calls_in_parallel() -> None:
    entries = keyed_entries(keys=40, per_key=5)
    fake = FakeKinesis()

    summary = send(fake, STREAM, entries, put_api="record", concurrency=8)

    assert (summary.sent, summary.failed) == (200, 0)
    assert fake.calls == []  # no PutRecords at all
    assert fake.single_calls == 200
    assert dict(fake.landed) == expected_by_key(entries)
    assert 1 < fake.max_in_flight <= 8
    assert fake.same_key_in_flight == 0


def test_put_record_api_retries_only_the_failed_entries_in_order() -> None:
    entries = keyed_entries(keys=6, per_key=4)

    def fail(key: str, data: bytes, attempt: int) -> str | None:
        return (
            "ProvisionedThroughputExceededException"
            if data.endswith(b"-1") and attempt < 3
            else None
        )

    clock = FakeClock()
    fake = FakeKinesis(fail, clock)
    summary = send(
        fake, STREAM, entries, put_api="record", concurrency=4, sleep=clock.sleep, clock=clock
    )

    assert (summary.sent, summary.failed, summary.retried) == (24, 0, 12)
    assert summary.error_codes == {"ProvisionedThroughputExceededException": 12}
    assert dict(fake.landed) == expected_by_key(entries)
    assert sum(fake.attempts.values()) == 24 + 12
    assert clock.sleeps  # the retries waited out their backoff


def test_put_record_api_stops_on_a_refusal_and_counts_what_landed() -> None:
    entries = keyed_entries(keys=5, per_key=1)
    fake = FakeKinesis()
    fake.raise_for_key["k2"] = client_error("ResourceNotFoundException")
    producer = Producer(fake, STREAM, put_api="record", concurrency=5)
    for entry in entries:
        producer.add(entry)

    match = r"PutRecord failed \(1 of 5 refused\): ResourceNotFoundException"
    with pytest.raises(ProducerError, match=match) as info:
        producer.send_ready()
    producer.close()

    assert info.value.summary.sent == 4
    assert info.value.summary.pending == 1  # k2 is still queued, not lost or counted as sent
    assert producer.ready_keys == 1
    assert set(fake.landed) == {"k0", "k1", "k3", "k4"}


def test_put_record_api_settles_a_round_that_raised_something_unexpected() -> None:
    fake = FakeKinesis()
    fake.raise_for_key["k1"] = ValueError("no credentials")
    producer = Producer(fake, STREAM, put_api="record", concurrency=3)
    for entry in keyed_entries(keys=3, per_key=2):
        producer.add(entry)

    with pytest.raises(ProducerError, match="ValueError: no credentials") as info:
        producer.send_ready()
    producer.close()

    # k0 and k2 landed and were counted; k1 is queued again, its second entry behind it.
    assert info.value.summary.sent == 2
    assert producer.pending == 4
    assert set(fake.landed) == {"k0", "k2"}


def test_put_record_api_lands_in_a_stream(kinesis: Any) -> None:
    entries = keyed_entries(keys=7, per_key=3)

    # One call at a time: moto's own put_record is not safe to call from several threads (the
    # FakeKinesis tests cover the concurrency).
    summary = send(kinesis, STREAM, entries, put_api="record", concurrency=1)

    assert summary.sent == 21
    landed: dict[str, list[bytes]] = defaultdict(list)
    for key, data in read_stream(kinesis):
        landed[key].append(data)
    assert dict(landed) == expected_by_key(entries)


def test_cli_put_record_api_and_its_concurrency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeKinesis()
    made: list[int] = []

    def make_client(region: str, endpoint: str | None, concurrency: int) -> FakeKinesis:
        made.append(concurrency)
        return fake

    monkeypatch.setattr(producer_mod, "make_client", make_client)
    lines = [json.dumps({"data": json.dumps({"account_id": f"a{i % 3}"})}) for i in range(6)]
    path = str(write_lines(tmp_path, lines))
    argv = ["--stream", STREAM, "replay", "--file", path, "--put-api", "record"]

    assert producer_mod.main([*argv, "--concurrency", "3"]) == 0
    assert made == [3]
    assert (fake.single_calls, fake.calls) == (6, [])
    assert fake.max_in_flight <= 3


@pytest.mark.parametrize("put_api", ["records", "record"])
def test_each_entry_is_reported_landed_once_when_its_call_answered(put_api: str) -> None:
    entries = keyed_entries(keys=4, per_key=3)
    clock = FakeClock()
    fake = FakeKinesis(lambda key, data, attempt: "InternalFailure" if attempt == 1 else None)
    wall = itertools.count(100.0)
    receipts: list[Landed] = []

    summary = send(
        fake,
        STREAM,
        entries,
        put_api=put_api,
        concurrency=2,
        on_landed=receipts.append,
        sleep=clock.sleep,
        clock=clock,
        wall_clock=lambda: next(wall),
    )

    assert summary.sent == 12
    assert sum(fake.attempts.values()) == 24  # every entry failed once, and is reported once
    landed = [(receipt.entry.data, receipt.at) for receipt in receipts]
    assert sorted(data for data, _ in landed) == sorted(e.data for e in entries)
    assert {receipt.shard_id for receipt in receipts} == {"shard-0"}
    assert all(receipt.sequence_number.isdigit() for receipt in receipts)
    for key in {e.partition_key for e in entries}:  # a key's entries answered in their order
        mine = [(data, at) for data, at in landed if data.startswith(key.encode() + b"-")]
        assert [data for data, _ in mine] == expected_by_key(entries)[key]
        assert [at for _, at in mine] == sorted(at for _, at in mine)


def test_the_newest_sequence_number_per_shard_is_kept_as_a_number() -> None:
    newest = NewestPerShard()
    entry = Entry(b"x", "k")
    for shard, sequence in [
        ("shard-0", "99"),
        ("shard-0", "100"),  # later, although "100" < "99" as text
        ("shard-0", "98"),  # an earlier one answering late
        ("shard-1", "7"),
        ("", "8"),  # a reply without a shard
        ("shard-2", ""),  # or without a sequence number
        ("shard-2", "n/a"),
    ]:
        newest(Landed(entry, 0.0, shard, sequence))

    assert newest.checkpoints() == {"shard-0": "100", "shard-1": "7"}


def test_producer_refuses_an_unknown_put_api() -> None:
    with pytest.raises(ValueError, match="put_api must be one of records, record"):
        Producer(FakeKinesis(), STREAM, put_api="batch")


def test_cli_requires_a_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRAUD_STREAM", raising=False)
    with pytest.raises(SystemExit) as info:
        producer_mod.main(["generate", "--rate", "1", "--duration", "1"])
    assert info.value.code == 2


# -- generate mode pacing -------------------------------------------------------------------------


def test_generate_paces_by_wall_clock_in_batches() -> None:
    clock = FakeClock()
    fake = FakeKinesis(clock=clock)
    producer = Producer(fake, STREAM, clock=clock, sleep=clock.sleep)
    entries = generate_entries(10_000, seed=1, accounts=5000)
    start = clock()
    produced = run_generate(
        producer, lambda: next(entries), rate=200, duration_s=3, clock=clock, sleep=clock.sleep
    )
    summary = producer.flush()
    assert produced == 600
    assert summary.sent == 600
    # Batched: about one call per 0.1 s tick, not one sleep or call per record.
    assert len(fake.calls) <= 40
    assert len(clock.sleeps) <= 35
    # Never ahead of the schedule: by time t at most floor((t - start) * rate) + 1 were sent.
    sent_so_far = 0
    for when, batch in zip(fake.call_times, fake.calls, strict=True):
        sent_so_far += len(batch)
        assert sent_so_far <= math.floor((when - start) * 200 + 1e-9) + 1
    assert 2.8 <= clock() - start <= 3.1


# -- progress -------------------------------------------------------------------------------------


class TtyStringIO(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_lines_non_tty_and_tty() -> None:
    clock = FakeClock()
    plain = io.StringIO()
    printer = ProgressPrinter(plain, clock=clock)
    for i in range(12):
        clock.now += 1.0
        printer(Summary(sent=i * 10, elapsed_s=i + 1.0))
    lines = plain.getvalue().splitlines()
    assert len(lines) == 2  # every 5 s
    assert lines[0].startswith("sent=40 retried=0 failed=0") and "rate=" in lines[0]

    tty = TtyStringIO()  # a terminal: a tqdm bar of the records, closed with a newline
    printer = ProgressPrinter(tty, clock=clock, total=10)
    for i in range(3):
        clock.now += 1.0
        printer(Summary(sent=i, retried=1, failed=0, elapsed_s=1.0))
    printer.finish()
    text = tty.getvalue()
    assert "2/10" in text and "retried=1" in text and text.endswith("\n")


# -- synthetic generator --------------------------------------------------------------------------

ISO_Z_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ISO_ANY = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)$")
CHANNELS = {"card_present", "online", "atm", "transfer"}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard token {name}")


def contract_error(data: bytes) -> str | None:
    """Section 1 of the contract as a checker: None if valid, else the reason."""
    try:
        text = data.decode("utf-8")
        if text.startswith("\ufeff"):
            return "bom"
        obj = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        return f"not json: {exc}"
    if not isinstance(obj, dict):
        return "not an object"

    def number(value: Any) -> bool:
        return isinstance(value, int | Decimal) and not isinstance(value, bool)

    for name in ("transaction_id", "account_id"):
        if not isinstance(obj.get(name), str) or not 1 <= len(obj[name]) <= 128:
            return f"bad {name}"
    amount: Any = obj.get("amount")
    if not number(amount) or not 0 < amount <= Decimal("1e9"):
        return "bad amount"
    ts = obj.get("timestamp")
    if isinstance(ts, str):
        if not ISO_ANY.match(ts):
            return "bad timestamp"
        try:
            datetime.fromisoformat(ts)
        except ValueError:
            return "impossible timestamp"
    elif not (isinstance(ts, int) and not isinstance(ts, bool)):
        return "bad timestamp type"
    for name in (
        "currency",
        "origin_country",
        "destination_country",
        "merchant_id",
        "merchant_category",
        "device_id",
        "ip_address",
    ):
        if obj.get(name) is not None and not isinstance(obj[name], str):
            return f"bad {name}"
    lat: Any = obj.get("latitude")
    lon: Any = obj.get("longitude")
    if (lat is None) != (lon is None):
        return "latitude without longitude"
    if lat is not None and (
        not number(lat) or not number(lon) or not -90 <= lat <= 90 or not -180 <= lon <= 180
    ):
        return "bad location"
    if obj.get("channel") is not None and obj["channel"] not in CHANNELS:
        return "bad channel"
    if obj.get("account_balance") is not None and not number(obj["account_balance"]):
        return "bad balance"
    return None


def fixed_clock(step_ms: int = 10) -> Callable[[], datetime]:
    moment = [datetime(2026, 11, 24, 9, 0, 0, 123000, tzinfo=UTC)]

    def now() -> datetime:
        current = moment[0]
        moment[0] = current + timedelta(milliseconds=step_ms)
        return current

    return now


def parse(record: SyntheticRecord) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(record.data, parse_float=Decimal)
    return obj


def test_generator_is_deterministic_with_a_seed() -> None:
    a = [r.data for r in generate_records(300, seed=9, invalid_ratio=0.1, now=fixed_clock())]
    b = [r.data for r in generate_records(300, seed=9, invalid_ratio=0.1, now=fixed_clock())]
    c = [r.data for r in generate_records(300, seed=10, invalid_ratio=0.1, now=fixed_clock())]
    assert a == b
    assert a != c


def test_generated_ratios_are_roughly_right() -> None:
    # 100 records/s: 5000 accounts keep ordinary traffic under the velocity limit.
    records = list(
        generate_records(
            6000, seed=4, accounts=5000, fraud_ratio=0.1, invalid_ratio=0.05, now=fixed_clock()
        )
    )
    fraud = sum(1 for r in records if r.expected_rules)
    invalid = sum(1 for r in records if r.is_invalid)
    assert 0.085 <= fraud / len(records) <= 0.115
    assert 0.04 <= invalid / len(records) <= 0.06
    kinds = Counter(r.kind for r in records if r.is_fraud)
    assert {f"fraud:{name}" for name in FRAUD_ARCHETYPES} == set(kinds)
    assert fraud == sum(kinds.values())  # only archetypes are labelled
    assert kinds["fraud:large_amount"] > kinds["fraud:large_amount_abroad"]

    default = list(generate_records(4000, seed=5, accounts=5000, now=fixed_clock()))
    assert 0.04 <= sum(1 for r in default if r.expected_rules) / 4000 <= 0.06
    assert not any(r.is_invalid for r in default)


def test_every_valid_generated_record_satisfies_the_contract() -> None:
    clock = fixed_clock(step_ms=7)
    records = list(generate_records(3000, seed=11, fraud_ratio=0.2, invalid_ratio=0.1, now=clock))
    start = datetime(2026, 11, 24, 9, 0, 0, 123000, tzinfo=UTC)
    for i, record in enumerate(records):
        if record.is_invalid:
            assert contract_error(record.data) is not None, record
            if record.data.startswith(b"{") and contract_error(record.data) != "not an object":
                assert b"expected_rules" not in record.data
            continue
        assert contract_error(record.data) is None, (contract_error(record.data), record.data)
        obj = parse(record)
        assert obj["account_id"] == record.account_id
        assert re.fullmatch(r"acct-[0-9a-f]{8}-\d{6,}", obj["account_id"])
        assert re.fullmatch(
            r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
            obj["transaction_id"],
        )
        assert ISO_Z_MS.match(obj["timestamp"])
        expected_ts = start + timedelta(milliseconds=7 * i)
        assert (
            obj["timestamp"]
            == expected_ts.strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{expected_ts.microsecond // 1000:03d}Z"
        )
        assert ("latitude" in obj) == ("longitude" in obj)
        for name in (
            "currency",
            "origin_country",
            "destination_country",
            "merchant_id",
            "merchant_category",
            "channel",
            "device_id",
        ):
            assert name in obj, name
        assert obj["expected_rules"] == list(record.expected_rules)
        assert record.to_entry() == Entry(record.data, obj["account_id"])
    assert len({parse(r)["transaction_id"] for r in records if not r.is_invalid}) == sum(
        1 for r in records if not r.is_invalid
    )


def test_velocity_is_avoided_when_accounts_allow_it() -> None:
    gen = TransactionGenerator(accounts=100, fraud_ratio=0.0, seed=2, now=fixed_clock(step_ms=500))
    # 2 records/s over 100 accounts (capacity 100 * 3 / 61 s ~ 4.9/s).
    times: dict[str, list[datetime]] = defaultdict(list)
    for record in gen.records(2000):
        obj = parse(record)
        ts = datetime.fromisoformat(obj["timestamp"])
        recent = [t for t in times[record.account_id] if t > ts - timedelta(seconds=60)]
        assert len(recent) < 3, record.account_id
        times[record.account_id].append(ts)


def test_generator_rejects_bad_ratios() -> None:
    with pytest.raises(ValueError):
        TransactionGenerator(fraud_ratio=0.7, invalid_ratio=0.5)
    with pytest.raises(ValueError):
        TransactionGenerator(accounts=0)
    assert MAX_BATCH_ENTRIES == 500
