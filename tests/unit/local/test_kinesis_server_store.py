"""The local Kinesis server's store (consumer/local/kinesis_server/store.py), with time passed in.

What the KCL and boto3 rely on: the hash space split without gaps, MD5 routing, sequence numbers
that increase within a shard, PutRecords all-or-nothing, the five iterator types, GetRecords
paging through every record once and in order, the limits and the error types the SDKs dispatch
on. (Over real HTTP/1.1 and HTTP/2: tests/integration/test_kinesis_server.py.)
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.local.kinesis_server.store import (
    HASH_SPACE,
    ITERATOR_TTL_MS,
    MAX_GET_BYTES,
    MAX_RECORD_BYTES,
    KinesisError,
    Streams,
)

T0 = 1_700_000_000_000  # an epoch in ms; every call below says its own time
MIB = 1024 * 1024


def _md5_point(key: str) -> int:
    return int.from_bytes(hashlib.md5(key.encode()).digest(), "big")


def _streams(name: str = "s", shards: int = 4) -> Streams:
    streams = Streams()
    streams.create_stream({"StreamName": name, "ShardCount": shards}, T0)
    return streams


def _error(call: Any, *args: Any) -> KinesisError:
    with pytest.raises(KinesisError) as caught:
        call(*args)
    return caught.value


def _iterator(
    streams: Streams, shard: str, kind: str, now: int = T0, stream: str = "s", **extra: Any
) -> str:
    request = {"StreamName": stream, "ShardId": shard, "ShardIteratorType": kind, **extra}
    return str(streams.get_shard_iterator(request, now)["ShardIterator"])


def _read_all(streams: Streams, iterator: str, limit: int, now: int = T0) -> list[Any]:
    """Every record from `iterator` on, `limit` at a time, until an empty page."""
    records: list[Any] = []
    while True:
        answer = streams.get_records({"ShardIterator": iterator, "Limit": limit}, now)
        records.extend(answer["Records"])
        iterator = answer["NextShardIterator"]
        if not answer["Records"]:
            return records


def _shard_ids(streams: Streams, stream: str = "s") -> list[str]:
    return [s["ShardId"] for s in streams.list_shards({"StreamName": stream})["Shards"]]


# --- streams ---------------------------------------------------------------------------------


def test_create_then_describe_and_summary() -> None:
    streams = _streams("orders", shards=3)
    description = streams.describe_stream({"StreamName": "orders"})["StreamDescription"]
    assert description["StreamName"] == "orders"
    assert description["StreamARN"] == "arn:aws:kinesis:us-east-1:000000000000:stream/orders"
    assert description["StreamStatus"] == "ACTIVE"
    assert description["StreamCreationTimestamp"] == T0
    assert description["HasMoreShards"] is False
    assert [s["ShardId"] for s in description["Shards"]] == [
        "shardId-000000000000",
        "shardId-000000000001",
        "shardId-000000000002",
    ]
    summary = streams.describe_stream_summary({"StreamName": "orders"})
    assert summary["StreamDescriptionSummary"]["OpenShardCount"] == 3
    assert summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"
    # By ARN as well as by name (the KCL 3 sends the ARN).
    by_arn = streams.describe_stream_summary({"StreamARN": description["StreamARN"]})
    assert by_arn == summary


def test_region_and_account_go_into_the_arn() -> None:
    streams = Streams(region="eu-west-1", account="123456789012")
    streams.create_stream({"StreamName": "x", "ShardCount": 1}, T0)
    arn = streams.describe_stream({"StreamName": "x"})["StreamDescription"]["StreamARN"]
    assert arn == "arn:aws:kinesis:eu-west-1:123456789012:stream/x"


def test_re_creating_a_stream_is_resource_in_use() -> None:
    streams = _streams("dup", shards=2)
    error = _error(streams.create_stream, {"StreamName": "dup", "ShardCount": 5}, T0)
    assert error.error_type == "ResourceInUseException"
    assert "dup" in error.message
    # The first stream is untouched.
    assert len(_shard_ids(streams, "dup")) == 2


@pytest.mark.parametrize(
    "request_",
    [
        {"ShardCount": 1},
        {"StreamName": "", "ShardCount": 1},
        {"StreamName": "has space", "ShardCount": 1},
        {"StreamName": "x" * 129, "ShardCount": 1},
        {"StreamName": "ok", "ShardCount": 0},
        {"StreamName": "ok", "ShardCount": 1001},
        {"StreamName": "ok", "ShardCount": "2"},
        {"StreamName": "ok", "ShardCount": True},
    ],
)
def test_create_refuses_bad_names_and_counts(request_: dict[str, Any]) -> None:
    streams = Streams()
    assert _error(streams.create_stream, request_, T0).error_type == "InvalidArgumentException"
    assert streams.list_streams({})["StreamNames"] == []


def test_unknown_stream_is_resource_not_found_everywhere() -> None:
    streams = _streams()
    calls = [
        (streams.describe_stream, {"StreamName": "nope"}),
        (streams.describe_stream_summary, {"StreamName": "nope"}),
        (streams.list_shards, {"StreamName": "nope"}),
        (streams.delete_stream, {"StreamName": "nope"}),
        (
            streams.describe_stream,
            {"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/nope"},
        ),
    ]
    for call, request in calls:
        assert _error(call, request).error_type == "ResourceNotFoundException", call
    for timed in (streams.put_record, streams.get_shard_iterator):
        timed_request: dict[str, Any] = {
            "StreamName": "nope",
            "Data": b"x",
            "PartitionKey": "k",
            "ShardId": "shardId-000000000000",
            "ShardIteratorType": "TRIM_HORIZON",
        }
        assert _error(timed, timed_request, T0).error_type == "ResourceNotFoundException"
    records = {"StreamName": "nope", "Records": [{"Data": b"x", "PartitionKey": "k"}]}
    assert _error(streams.put_records, records, T0).error_type == "ResourceNotFoundException"
    # No stream named at all is a bad argument, not a missing stream.
    assert _error(streams.describe_stream, {}).error_type == "InvalidArgumentException"


def test_unknown_shard_is_resource_not_found() -> None:
    streams = _streams(shards=2)
    request = {"StreamName": "s", "ShardId": "shardId-000000000002", "ShardIteratorType": "LATEST"}
    error = _error(streams.get_shard_iterator, request, T0)
    assert error.error_type == "ResourceNotFoundException"


def test_delete_then_the_stream_is_gone_and_can_be_made_again() -> None:
    streams = _streams()
    streams.put_record({"StreamName": "s", "Data": b"x", "PartitionKey": "k"}, T0)
    streams.delete_stream({"StreamName": "s"})
    assert _error(streams.describe_stream, {"StreamName": "s"}).error_type == (
        "ResourceNotFoundException"
    )
    streams.create_stream({"StreamName": "s", "ShardCount": 1}, T0)
    shard = _shard_ids(streams)[0]
    assert _read_all(streams, _iterator(streams, shard, "TRIM_HORIZON"), 100) == []


def test_list_streams_pages_by_limit_and_exclusive_start() -> None:
    streams = Streams()
    names = ["e", "a", "d", "c", "b"]
    for name in names:
        streams.create_stream({"StreamName": name, "ShardCount": 1}, T0)
    everything = streams.list_streams({})
    assert everything["StreamNames"] == ["a", "b", "c", "d", "e"]
    assert everything["HasMoreStreams"] is False
    assert [s["StreamName"] for s in everything["StreamSummaries"]] == ["a", "b", "c", "d", "e"]
    seen: list[str] = []
    request: dict[str, Any] = {"Limit": 2}
    while True:
        page = streams.list_streams(request)
        seen.extend(page["StreamNames"])
        assert len(page["StreamNames"]) <= 2
        if not page["HasMoreStreams"]:
            break
        request = {"Limit": 2, "ExclusiveStartStreamName": page["StreamNames"][-1]}
    assert seen == ["a", "b", "c", "d", "e"]


def test_list_shards_pages_with_max_results_and_next_token() -> None:
    streams = _streams(shards=7)
    seen: list[str] = []
    page = streams.list_shards({"StreamName": "s", "MaxResults": 3})
    pages = 1
    seen.extend(s["ShardId"] for s in page["Shards"])
    while "NextToken" in page:
        assert len(page["Shards"]) == 3
        page = streams.list_shards({"NextToken": page["NextToken"], "MaxResults": 3})
        seen.extend(s["ShardId"] for s in page["Shards"])
        pages += 1
    assert pages == 3
    assert seen == [f"shardId-{i:012d}" for i in range(7)]
    # An exact fit: no token on the last page.
    assert "NextToken" not in streams.list_shards({"StreamName": "s", "MaxResults": 7})
    assert "NextToken" in streams.list_shards({"StreamName": "s", "MaxResults": 6})


@pytest.mark.parametrize("bad", [0, 10_001, "3", None])
def test_list_shards_refuses_bad_max_results(bad: Any) -> None:
    streams = _streams()
    error = _error(streams.list_shards, {"StreamName": "s", "MaxResults": bad})
    assert error.error_type == "InvalidArgumentException"


def test_list_shards_refuses_a_token_it_did_not_issue() -> None:
    streams = _streams()
    error = _error(streams.list_shards, {"NextToken": "not a token"})
    assert error.error_type == "InvalidArgumentException"


# --- the hash space --------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 10, 64, 1000])
def test_shards_cover_the_hash_space_without_gaps_or_overlap(count: int) -> None:
    streams = _streams(shards=count)
    shards = streams.list_shards({"StreamName": "s", "MaxResults": 10_000})["Shards"]
    assert len(shards) == count
    ranges = [
        (int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"]))
        for s in shards
    ]
    assert ranges[0][0] == 0
    assert ranges[-1][1] == HASH_SPACE - 1
    assert all(start <= end for start, end in ranges)
    for (_, end), (next_start, _) in itertools.pairwise(ranges):
        assert next_start == end + 1
    # Even: no shard is more than one step (plus the division's remainder) wider than another.
    widths = [end - start + 1 for start, end in ranges]
    assert max(widths) - min(widths) < count


def test_a_partition_key_goes_to_the_shard_whose_range_holds_its_md5() -> None:
    streams = _streams(shards=5)
    ranges = {
        s["ShardId"]: (
            int(s["HashKeyRange"]["StartingHashKey"]),
            int(s["HashKeyRange"]["EndingHashKey"]),
        )
        for s in streams.list_shards({"StreamName": "s"})["Shards"]
    }
    used = set()
    for i in range(300):
        key = f"account-{i}"
        answer = streams.put_record({"StreamName": "s", "Data": b"x", "PartitionKey": key}, T0)
        start, end = ranges[answer["ShardId"]]
        assert start <= _md5_point(key) <= end, key
        used.add(answer["ShardId"])
    assert used == set(ranges)
    # A known vector: md5("a") = 0cc175b9..., in the first sixteenth of the space.
    answer = streams.put_record({"StreamName": "s", "Data": b"x", "PartitionKey": "a"}, T0)
    assert answer["ShardId"] == "shardId-000000000000"


def test_explicit_hash_key_overrides_the_partition_key() -> None:
    streams = _streams(shards=4)
    shards = streams.list_shards({"StreamName": "s"})["Shards"]
    for shard in shards:
        for point in (
            shard["HashKeyRange"]["StartingHashKey"],
            shard["HashKeyRange"]["EndingHashKey"],
        ):
            answer = streams.put_record(
                # "a" alone would go to shard 0.
                {"StreamName": "s", "Data": b"x", "PartitionKey": "a", "ExplicitHashKey": point},
                T0,
            )
            assert answer["ShardId"] == shard["ShardId"]


@pytest.mark.parametrize("bad", ["-1", str(HASH_SPACE), "abc", ""])
def test_explicit_hash_key_out_of_the_space_is_refused(bad: str) -> None:
    streams = _streams()
    request = {"StreamName": "s", "Data": b"x", "PartitionKey": "k", "ExplicitHashKey": bad}
    assert _error(streams.put_record, request, T0).error_type == "InvalidArgumentException"
    assert _error(streams.put_record, {**request, "ExplicitHashKey": 5}, T0).error_type == (
        "InvalidArgumentException"
    )


# --- sequence numbers ------------------------------------------------------------------------


def test_sequence_numbers_are_56_digits_and_increase_within_a_shard() -> None:
    streams = _streams(shards=1000)
    last: dict[str, int] = {}
    every: set[str] = set()
    for i in range(600):
        # Some to the first and last of 1,000 shards, where the numbers are smallest and largest.
        extra = {"ExplicitHashKey": str(HASH_SPACE - 1)} if i % 3 == 0 else {}
        extra = {"ExplicitHashKey": "0"} if i % 3 == 1 else extra
        answer = streams.put_record(
            {"StreamName": "s", "Data": b"x", "PartitionKey": f"k{i}", **extra}, T0 + i
        )
        text = answer["SequenceNumber"]
        assert len(text) == 56 and text.isdigit(), text
        assert int(text) > last.get(answer["ShardId"], -1)
        last[answer["ShardId"]] = int(text)
        every.add(text)
    assert len(every) == 600  # distinct across shards too
    assert {"shardId-000000000000", "shardId-000000000999"} <= set(last)


def test_the_shard_starting_sequence_number_is_below_its_first_record() -> None:
    streams = _streams(shards=2)
    for shard in streams.list_shards({"StreamName": "s"})["Shards"]:
        start = int(shard["SequenceNumberRange"]["StartingSequenceNumber"])
        point = shard["HashKeyRange"]["StartingHashKey"]
        answer = streams.put_record(
            {"StreamName": "s", "Data": b"x", "PartitionKey": "k", "ExplicitHashKey": point}, T0
        )
        assert answer["ShardId"] == shard["ShardId"]
        assert int(answer["SequenceNumber"]) > start


# --- PutRecords ------------------------------------------------------------------------------


def _all_records(streams: Streams, stream: str = "s") -> list[Any]:
    return [
        record
        for shard in _shard_ids(streams, stream)
        for record in _read_all(streams, _iterator(streams, shard, "TRIM_HORIZON"), 10_000)
    ]


def test_put_records_answers_each_entry_in_order() -> None:
    streams = _streams()
    entries = [{"Data": f"r{i}".encode(), "PartitionKey": f"k{i}"} for i in range(50)]
    answer = streams.put_records({"StreamName": "s", "Records": entries}, T0)
    assert answer["FailedRecordCount"] == 0
    assert len(answer["Records"]) == 50
    stored = {r[0]: r[1] for r in _all_records(streams)}
    for entry, result in zip(entries, answer["Records"], strict=True):
        assert stored[result["SequenceNumber"]] == entry["Data"]


@pytest.mark.parametrize(
    "bad",
    [
        {"PartitionKey": "k"},  # no Data
        {"Data": "text, not bytes", "PartitionKey": "k"},
        {"Data": b"x"},  # no PartitionKey
        {"Data": b"x", "PartitionKey": ""},
        {"Data": b"x", "PartitionKey": "k" * 257},
        {"Data": b"x" * (MAX_RECORD_BYTES + 1), "PartitionKey": "k"},
        {"Data": b"x", "PartitionKey": "k", "ExplicitHashKey": 7},
        "not an object",
    ],
)
def test_one_bad_entry_stores_nothing_and_is_named(bad: Any) -> None:
    streams = _streams()
    entries: list[Any] = [{"Data": f"r{i}".encode(), "PartitionKey": f"k{i}"} for i in range(6)]
    entries[3] = bad
    error = _error(streams.put_records, {"StreamName": "s", "Records": entries}, T0)
    assert error.error_type == "InvalidArgumentException"
    assert "Records.3" in error.message, error.message
    assert _all_records(streams) == []


@pytest.mark.parametrize("bad_key", ["not-a-number", "-1", str(HASH_SPACE)])
def test_a_bad_explicit_hash_key_value_stores_nothing_and_is_named(bad_key: str) -> None:
    """An ExplicitHashKey that is a string but not a point of the space is as bad as any other
    bad entry: the request must store nothing, and the error must say which entry it was."""
    streams = _streams()
    entries: list[Any] = [{"Data": f"r{i}".encode(), "PartitionKey": f"k{i}"} for i in range(6)]
    entries[3] = {"Data": b"x", "PartitionKey": "k", "ExplicitHashKey": bad_key}
    error = _error(streams.put_records, {"StreamName": "s", "Records": entries}, T0)
    assert error.error_type == "InvalidArgumentException"
    assert _all_records(streams) == [], "entries 0-2 were stored by a refused request"
    assert "Records.3." in error.message, error.message


def test_put_records_entry_count_limits() -> None:
    streams = _streams()

    def entries(n: int) -> list[dict[str, Any]]:
        return [{"Data": b"x", "PartitionKey": f"k{i}"} for i in range(n)]

    for count in (0, 501):
        request = {"StreamName": "s", "Records": entries(count)}
        assert _error(streams.put_records, request, T0).error_type == "InvalidArgumentException"
    assert _error(streams.put_records, {"StreamName": "s"}, T0).error_type == (
        "InvalidArgumentException"
    )
    assert _all_records(streams) == []
    answer = streams.put_records({"StreamName": "s", "Records": entries(500)}, T0)
    assert len(answer["Records"]) == 500
    assert len(_all_records(streams)) == 500


def test_record_size_limit_is_1_mib_of_data() -> None:
    streams = _streams(shards=1)
    exact = {"StreamName": "s", "Data": b"x" * MAX_RECORD_BYTES, "PartitionKey": "k"}
    streams.put_record(exact, T0)
    over = {**exact, "Data": b"x" * (MAX_RECORD_BYTES + 1)}
    error = _error(streams.put_record, over, T0)
    assert error.error_type == "InvalidArgumentException"
    assert "1 MiB" in error.message
    assert len(_all_records(streams)) == 1


def test_request_size_limit_is_5_mib_with_partition_keys() -> None:
    streams = _streams()
    # Five records of exactly 1 MiB, keys included: 5 MiB, accepted.
    key = "k"
    fits = [{"Data": b"x" * (MIB - len(key)), "PartitionKey": key} for _ in range(5)]
    streams.put_records({"StreamName": "s", "Records": fits}, T0)
    assert len(_all_records(streams)) == 5
    # One byte more (in a key) is over: refused, nothing stored.
    over = [*fits[:4], {"Data": fits[4]["Data"], "PartitionKey": "kk"}]
    error = _error(streams.put_records, {"StreamName": "s", "Records": over}, T0)
    assert error.error_type == "InvalidArgumentException"
    assert "5 MiB" in error.message
    assert len(_all_records(streams)) == 5


# --- iterators -------------------------------------------------------------------------------


def _one_shard_with(streams: Streams, count: int, start: int = T0, step: int = 10) -> list[str]:
    """`count` records r0.. into the stream's single shard, r_i at start + i * step; their
    sequence numbers."""
    return [
        streams.put_record(
            {"StreamName": "s", "Data": f"r{i}".encode(), "PartitionKey": "k"}, start + i * step
        )["SequenceNumber"]
        for i in range(count)
    ]


def _first(streams: Streams, iterator: str, now: int = T0 + 1000) -> bytes | None:
    records = streams.get_records({"ShardIterator": iterator, "Limit": 1}, now)["Records"]
    return records[0][1] if records else None


def test_each_iterator_type_starts_at_the_right_record() -> None:
    streams = _streams(shards=1)
    sequences = _one_shard_with(streams, 5)
    shard = "shardId-000000000000"
    assert _first(streams, _iterator(streams, shard, "TRIM_HORIZON")) == b"r0"
    seq: dict[str, Any] = {"StartingSequenceNumber": sequences[2]}
    assert _first(streams, _iterator(streams, shard, "AT_SEQUENCE_NUMBER", **seq)) == b"r2"
    assert _first(streams, _iterator(streams, shard, "AFTER_SEQUENCE_NUMBER", **seq)) == b"r3"
    last: dict[str, Any] = {"StartingSequenceNumber": sequences[-1]}
    assert _first(streams, _iterator(streams, shard, "AFTER_SEQUENCE_NUMBER", **last)) is None
    # AT_TIMESTAMP: the first record that arrived at or after the time.
    for stamp, expected in ((T0 - 1, b"r0"), (T0 + 20, b"r2"), (T0 + 21, b"r3"), (T0 + 41, None)):
        iterator = _iterator(streams, shard, "AT_TIMESTAMP", Timestamp=stamp)
        assert _first(streams, iterator) == expected, stamp
    # LATEST: nothing now, then exactly what comes after it was issued.
    latest = _iterator(streams, shard, "LATEST")
    assert streams.get_records({"ShardIterator": latest}, T0 + 100)["Records"] == []
    streams.put_record({"StreamName": "s", "Data": b"new", "PartitionKey": "k"}, T0 + 200)
    assert _first(streams, latest) == b"new"


def test_an_iterator_from_before_any_record_sees_later_ones() -> None:
    streams = _streams(shards=1)
    shard = "shardId-000000000000"
    trim = _iterator(streams, shard, "TRIM_HORIZON")
    latest = _iterator(streams, shard, "LATEST")
    _one_shard_with(streams, 3)
    assert [r[1] for r in _read_all(streams, trim, 2)] == [b"r0", b"r1", b"r2"]
    assert [r[1] for r in _read_all(streams, latest, 2)] == [b"r0", b"r1", b"r2"]


@pytest.mark.parametrize(
    "extra",
    [
        {"ShardIteratorType": "AT_SEQUENCE_NUMBER"},
        {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": "abc"},
        {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": 5},
        {"ShardIteratorType": "AT_TIMESTAMP"},
        {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": "yesterday"},
        {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": True},
        {"ShardIteratorType": "OLDEST"},
        {},
    ],
)
def test_get_shard_iterator_refuses_incomplete_requests(extra: dict[str, Any]) -> None:
    streams = _streams(shards=1)
    request = {"StreamName": "s", "ShardId": "shardId-000000000000", **extra}
    assert _error(streams.get_shard_iterator, request, T0).error_type == (
        "InvalidArgumentException"
    )
    no_shard = {"StreamName": "s", "ShardIteratorType": "LATEST"}
    assert _error(streams.get_shard_iterator, no_shard, T0).error_type == (
        "InvalidArgumentException"
    )


# --- GetRecords ------------------------------------------------------------------------------


def test_get_records_pages_to_the_end_every_record_once_in_order() -> None:
    streams = _streams(shards=1)
    sequences = _one_shard_with(streams, 257, step=1)
    shard = "shardId-000000000000"
    records = _read_all(streams, _iterator(streams, shard, "TRIM_HORIZON"), limit=10, now=T0 + 999)
    assert [r[0] for r in records] == sequences
    assert [r[1] for r in records] == [f"r{i}".encode() for i in range(257)]
    assert all(r[2] == "k" for r in records)
    assert [r[3] for r in records] == [T0 + i for i in range(257)]


def test_a_record_is_the_wire_tuple_of_sequence_data_key_and_arrival() -> None:
    streams = _streams(shards=1)
    put = streams.put_record({"StreamName": "s", "Data": b"\x00\xff", "PartitionKey": "pk"}, T0)
    iterator = _iterator(streams, "shardId-000000000000", "TRIM_HORIZON")
    (record,) = streams.get_records({"ShardIterator": iterator}, T0)["Records"]
    assert record == (put["SequenceNumber"], b"\x00\xff", "pk", T0)


def test_arrival_times_never_go_backwards_within_a_shard() -> None:
    streams = _streams(shards=1)
    streams.put_record({"StreamName": "s", "Data": b"a", "PartitionKey": "k"}, T0 + 50)
    streams.put_record({"StreamName": "s", "Data": b"b", "PartitionKey": "k"}, T0)  # clock step
    iterator = _iterator(streams, "shardId-000000000000", "TRIM_HORIZON")
    arrivals = [r[3] for r in _read_all(streams, iterator, 10)]
    assert arrivals == [T0 + 50, T0 + 50]
    # So AT_TIMESTAMP (a bisection over arrivals) still finds both.
    at = _iterator(streams, "shardId-000000000000", "AT_TIMESTAMP", Timestamp=T0 + 50)
    assert [r[1] for r in _read_all(streams, at, 10)] == [b"a", b"b"]


def test_one_answer_stops_at_10_mib() -> None:
    streams = _streams(shards=1)
    for i in range(12):
        data = bytes([i]) * MAX_RECORD_BYTES
        streams.put_record({"StreamName": "s", "Data": data, "PartitionKey": "k"}, T0)
    iterator = _iterator(streams, "shardId-000000000000", "TRIM_HORIZON")
    first = streams.get_records({"ShardIterator": iterator}, T0)
    assert len(first["Records"]) == 10
    assert sum(len(r[1]) for r in first["Records"]) == MAX_GET_BYTES
    second = streams.get_records({"ShardIterator": first["NextShardIterator"]}, T0)
    assert [r[1][0] for r in second["Records"]] == [10, 11]


@pytest.mark.parametrize("bad", [0, 10_001, -1, "5", True, 2.5])
def test_get_records_limit_must_be_1_to_10000(bad: Any) -> None:
    streams = _streams(shards=1)
    iterator = _iterator(streams, "shardId-000000000000", "TRIM_HORIZON")
    error = _error(streams.get_records, {"ShardIterator": iterator, "Limit": bad}, T0)
    assert error.error_type == "InvalidArgumentException"


def test_get_records_limit_bounds_are_accepted() -> None:
    streams = _streams(shards=1)
    _one_shard_with(streams, 3)
    iterator = _iterator(streams, "shardId-000000000000", "TRIM_HORIZON")
    assert len(streams.get_records({"ShardIterator": iterator, "Limit": 1}, T0)["Records"]) == 1
    assert (
        len(streams.get_records({"ShardIterator": iterator, "Limit": 10_000}, T0)["Records"]) == 3
    )


def test_millis_behind_latest_is_zero_at_the_tip_and_positive_behind() -> None:
    streams = _streams(shards=1)
    _one_shard_with(streams, 3, start=T0, step=1000)  # arrivals T0, T0+1s, T0+2s
    now = T0 + 5000
    iterator = _iterator(streams, "shardId-000000000000", "TRIM_HORIZON", now=now)
    first = streams.get_records({"ShardIterator": iterator, "Limit": 1}, now)
    # Behind by the age of the oldest record still unread (r1, 4 s old).
    assert first["MillisBehindLatest"] == 4000
    rest = streams.get_records({"ShardIterator": first["NextShardIterator"]}, now)
    assert len(rest["Records"]) == 2
    assert rest["MillisBehindLatest"] == 0
    tip = streams.get_records({"ShardIterator": rest["NextShardIterator"]}, now + 1)
    assert tip["Records"] == []
    assert tip["MillisBehindLatest"] == 0


def test_millis_behind_latest_is_not_zero_while_records_remain() -> None:
    """0 tells a consumer it is at the tip. An answer that stops short of the tip (Limit) is
    behind, even when the next record arrived in the same millisecond as the read."""
    streams = _streams(shards=1)
    _one_shard_with(streams, 3, start=T0, step=0)
    iterator = _iterator(streams, "shardId-000000000000", "TRIM_HORIZON")
    answer = streams.get_records({"ShardIterator": iterator, "Limit": 1}, T0)
    assert len(answer["Records"]) == 1
    assert answer["MillisBehindLatest"] > 0


def test_an_iterator_expires_300_s_after_it_was_issued() -> None:
    streams = _streams(shards=1)
    _one_shard_with(streams, 2)
    iterator = _iterator(streams, "shardId-000000000000", "TRIM_HORIZON", now=T0)
    # At the limit it still works; the iterator it returns is fresh.
    answer = streams.get_records({"ShardIterator": iterator, "Limit": 1}, T0 + ITERATOR_TTL_MS)
    assert len(answer["Records"]) == 1
    later = T0 + 2 * ITERATOR_TTL_MS
    assert (
        len(streams.get_records({"ShardIterator": answer["NextShardIterator"]}, later)["Records"])
        == 1
    )
    error = _error(streams.get_records, {"ShardIterator": iterator}, T0 + ITERATOR_TTL_MS + 1)
    assert error.error_type == "ExpiredIteratorException"


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "garbage",
        "!!!!",
        "AAAA",
        base64.urlsafe_b64encode(b"s/0/0").decode(),  # too few parts
        base64.urlsafe_b64encode(b"s/zero/0/0").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe/0/0/0").decode(),  # not UTF-8
    ],
)
def test_a_garbage_iterator_is_invalid_argument(garbage: str) -> None:
    streams = _streams()
    error = _error(streams.get_records, {"ShardIterator": garbage}, T0)
    assert error.error_type == "InvalidArgumentException"
    assert _error(streams.get_records, {}, T0).error_type == "InvalidArgumentException"


def test_an_iterator_of_a_deleted_stream_is_resource_not_found() -> None:
    streams = _streams()
    iterator = _iterator(streams, "shardId-000000000000", "TRIM_HORIZON")
    streams.delete_stream({"StreamName": "s"})
    error = _error(streams.get_records, {"ShardIterator": iterator}, T0)
    assert error.error_type == "ResourceNotFoundException"


# --- the property ----------------------------------------------------------------------------

# A put: a partition key from a small set (so shards repeat) or an explicit hash key.
_put = st.one_of(
    st.integers(0, 40).map(lambda i: ("key", f"account-{i}")),
    st.integers(0, HASH_SPACE - 1).map(lambda p: ("hash", str(p))),
)


@settings(max_examples=60, deadline=None)
@given(
    shard_count=st.integers(1, 6),
    # Each group is one PutRecord (a group of 1 may be either) or one PutRecords.
    groups=st.lists(st.tuples(st.booleans(), st.lists(_put, min_size=1, max_size=25)), max_size=25),
    pages=st.lists(st.integers(1, 12), min_size=1, max_size=8),
)
def test_any_interleaving_of_puts_reads_back_exactly_in_put_order(
    shard_count: int, groups: list[tuple[bool, list[tuple[str, str]]]], pages: list[int]
) -> None:
    streams = _streams(shards=shard_count)
    ranges = {
        s["ShardId"]: (
            int(s["HashKeyRange"]["StartingHashKey"]),
            int(s["HashKeyRange"]["EndingHashKey"]),
        )
        for s in streams.list_shards({"StreamName": "s"})["Shards"]
    }
    expected: dict[str, list[tuple[str, bytes, str]]] = {shard: [] for shard in ranges}
    now = T0
    number = 0
    for single, puts in groups:
        entries = []
        for kind, value in puts:
            entry: dict[str, Any] = {"Data": f"d{number}".encode(), "PartitionKey": value[:256]}
            if kind == "hash":
                entry["PartitionKey"] = f"p{number}"
                entry["ExplicitHashKey"] = value
            entries.append(entry)
            number += 1
        now += 7
        if single and len(entries) == 1:
            answer = streams.put_record({"StreamName": "s", **entries[0]}, now)
            results = [answer]
        else:
            results = streams.put_records({"StreamName": "s", "Records": entries}, now)["Records"]
        for entry, result in zip(entries, results, strict=True):
            point = int(entry.get("ExplicitHashKey") or _md5_point(entry["PartitionKey"]))
            start, end = ranges[result["ShardId"]]
            assert start <= point <= end
            expected[result["ShardId"]].append(
                (result["SequenceNumber"], entry["Data"], entry["PartitionKey"])
            )
    for shard, put in expected.items():
        iterator = _iterator(streams, shard, "TRIM_HORIZON", now=now)
        got: list[tuple[str, bytes, str]] = []
        for turn in range(len(put) + 1):
            answer = streams.get_records(
                {"ShardIterator": iterator, "Limit": pages[turn % len(pages)]}, now
            )
            got.extend((r[0], r[1], r[2]) for r in answer["Records"])
            iterator = answer["NextShardIterator"]
            if not answer["Records"]:
                break
        assert got == put
        assert [int(s) for s, _, _ in got] == sorted(int(s) for s, _, _ in got)
