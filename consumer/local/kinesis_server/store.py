"""The streams, shards and records of the local Kinesis server, in memory: the pure core.

Every operation takes and returns plain Python values (the wire module turns them into JSON or
CBOR); time comes in as an argument, so tests can move it. Records are appended to a per-shard
list and never moved, so a shard iterator is just a position in that list: a put costs what it
carries and a GetRecords what it returns, whatever the shard holds (kinesis-mock 0.6.2 pays for
the whole shard on both, docs/performance.md).

What it leaves out, on purpose (kinesis-mock, the default stand-in, keeps them):
resharding (SplitShard, MergeShards, UpdateShardCount), enhanced fan-out, tags, encryption and
the per-shard write and read limits (a load test here must be able to exceed them).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from consumer.errors import FraudstreamError

HASH_SPACE = 1 << 128
# Shapes of real sequence numbers: 56 decimal digits, increasing within a shard.
SEQUENCE_BASE = 49 * 10**54
SHARD_STRIDE = 10**36
ITERATOR_TTL_MS = 300_000  # AWS: a shard iterator expires five minutes after it is returned
MAX_GET_LIMIT = 10_000
MAX_GET_BYTES = 10 * 1024 * 1024
MAX_PUT_ENTRIES = 500
MAX_PUT_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
STREAM_NAME = re.compile(r"^[a-zA-Z0-9_.-]{1,128}$")
ITERATOR_TYPES = (
    "TRIM_HORIZON",
    "LATEST",
    "AT_SEQUENCE_NUMBER",
    "AFTER_SEQUENCE_NUMBER",
    "AT_TIMESTAMP",
)


class KinesisError(FraudstreamError):
    """An error answer, with the AWS error type the SDKs dispatch on (a refusal of the
    request, never a fault of the server)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def _invalid(message: str) -> KinesisError:
    return KinesisError("InvalidArgumentException", message)


@dataclass
class Shard:
    index: int
    starting_hash: int
    ending_hash: int
    # Parallel lists, appended together: sequence numbers (for bisecting an iterator's start),
    # arrival times in ms (non-decreasing, for AT_TIMESTAMP) and the records themselves.
    sequence_numbers: list[int] = field(default_factory=list)
    arrivals_ms: list[int] = field(default_factory=list)
    records: list[tuple[str, bytes, str, int]] = field(default_factory=list)

    @property
    def shard_id(self) -> str:
        return f"shardId-{self.index:012d}"

    @property
    def starting_sequence_number(self) -> int:
        return SEQUENCE_BASE + self.index * SHARD_STRIDE

    def describe(self) -> dict[str, Any]:
        return {
            "ShardId": self.shard_id,
            "HashKeyRange": {
                "StartingHashKey": str(self.starting_hash),
                "EndingHashKey": str(self.ending_hash),
            },
            "SequenceNumberRange": {"StartingSequenceNumber": str(self.starting_sequence_number)},
        }

    def append(self, data: bytes, partition_key: str, now_ms: int) -> str:
        sequence = self.starting_sequence_number + len(self.records) + 1
        arrival = max(now_ms, self.arrivals_ms[-1]) if self.arrivals_ms else now_ms
        text = str(sequence)
        self.sequence_numbers.append(sequence)
        self.arrivals_ms.append(arrival)
        self.records.append((text, data, partition_key, arrival))
        return text


@dataclass
class Stream:
    name: str
    arn: str
    created_ms: int
    shards: list[Shard]

    def shard(self, shard_id: str) -> Shard:
        for shard in self.shards:
            if shard.shard_id == shard_id:
                return shard
        raise KinesisError(
            "ResourceNotFoundException", f"Shard {shard_id} in stream {self.name} not found"
        )

    def shard_for(self, partition_key: str, explicit_hash_key: int | None) -> Shard:
        """The shard whose hash range holds the key's MD5 (or the explicit hash key)."""
        if explicit_hash_key is not None:
            point = explicit_hash_key
        else:
            point = int.from_bytes(hashlib.md5(partition_key.encode()).digest(), "big")  # noqa: S324 - Kinesis's own key hash
        for shard in self.shards:
            if shard.starting_hash <= point <= shard.ending_hash:
                return shard
        raise AssertionError("the shards cover the whole hash space")  # pragma: no cover


def _hash_ranges(count: int) -> list[tuple[int, int]]:
    """The even split of the hash space AWS makes at CreateStream."""
    step = HASH_SPACE // count
    return [
        (i * step, HASH_SPACE - 1 if i == count - 1 else (i + 1) * step - 1) for i in range(count)
    ]


class Streams:
    """Every stream of one server (one account and region)."""

    def __init__(self, region: str = "us-east-1", account: str = "000000000000") -> None:
        self.region = region
        self.account = account
        self._streams: dict[str, Stream] = {}

    # --- streams -------------------------------------------------------------------------

    def _arn(self, name: str) -> str:
        return f"arn:aws:kinesis:{self.region}:{self.account}:stream/{name}"

    def stream(self, request: Mapping[str, Any]) -> Stream:
        """The stream a request names, by StreamName or StreamARN."""
        name = request.get("StreamName")
        arn = request.get("StreamARN")
        if name is None and isinstance(arn, str):
            name = arn.rpartition("/")[2]
        if not isinstance(name, str):
            raise _invalid("StreamName or StreamARN is required")
        found = self._streams.get(name)
        if found is None:
            raise KinesisError(
                "ResourceNotFoundException",
                f"Stream {name} under account {self.account} not found.",
            )
        return found

    def create_stream(self, request: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
        name = request.get("StreamName")
        if not isinstance(name, str) or not STREAM_NAME.match(name):
            raise _invalid("StreamName must be 1-128 characters of [a-zA-Z0-9_.-]")
        count = request.get("ShardCount", 4)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1000:
            raise _invalid("ShardCount must be an integer from 1 to 1000")
        if name in self._streams:
            raise KinesisError(
                "ResourceInUseException",
                f"Stream {name} under account {self.account} already exists.",
            )
        shards = [Shard(i, start, end) for i, (start, end) in enumerate(_hash_ranges(count))]
        self._streams[name] = Stream(name, self._arn(name), now_ms, shards)
        return {}

    def delete_stream(self, request: Mapping[str, Any]) -> dict[str, Any]:
        del self._streams[self.stream(request).name]
        return {}

    def list_streams(self, request: Mapping[str, Any]) -> dict[str, Any]:
        names = sorted(self._streams)
        start = request.get("ExclusiveStartStreamName")
        if isinstance(start, str):
            names = [name for name in names if name > start]
        limit = request.get("Limit", 100)
        page = names[: limit if isinstance(limit, int) and limit > 0 else 100]
        return {
            "StreamNames": page,
            "HasMoreStreams": len(page) < len(names),
            "StreamSummaries": [self._summary_entry(self._streams[name]) for name in page],
        }

    def _summary_entry(self, stream: Stream) -> dict[str, Any]:
        return {
            "StreamName": stream.name,
            "StreamARN": stream.arn,
            "StreamStatus": "ACTIVE",
            "StreamModeDetails": {"StreamMode": "PROVISIONED"},
            "StreamCreationTimestamp": stream.created_ms,
        }

    def describe_stream(self, request: Mapping[str, Any]) -> dict[str, Any]:
        stream = self.stream(request)
        return {
            "StreamDescription": {
                **self._summary_entry(stream),
                "Shards": [shard.describe() for shard in stream.shards],
                "HasMoreShards": False,
                "RetentionPeriodHours": 24,
                "EnhancedMonitoring": [{"ShardLevelMetrics": []}],
                "EncryptionType": "NONE",
            }
        }

    def describe_stream_summary(self, request: Mapping[str, Any]) -> dict[str, Any]:
        stream = self.stream(request)
        return {
            "StreamDescriptionSummary": {
                **self._summary_entry(stream),
                "RetentionPeriodHours": 24,
                "EnhancedMonitoring": [{"ShardLevelMetrics": []}],
                "EncryptionType": "NONE",
                "OpenShardCount": len(stream.shards),
                "ConsumerCount": 0,
            }
        }

    def list_shards(self, request: Mapping[str, Any]) -> dict[str, Any]:
        token = request.get("NextToken")
        start = 0
        if isinstance(token, str):
            name, (start,) = _unpack(token, 2, "NextToken")
            stream = self.stream({"StreamName": name})
        else:
            stream = self.stream(request)
        limit = request.get("MaxResults", 1000)
        if not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise _invalid("MaxResults must be an integer from 1 to 10000")
        page = stream.shards[start : start + limit]
        answer: dict[str, Any] = {"Shards": [shard.describe() for shard in page]}
        if start + limit < len(stream.shards):
            answer["NextToken"] = _opaque(stream.name, start + limit)
        return answer

    # --- writing -------------------------------------------------------------------------

    def put_record(self, request: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
        stream = self.stream(request)
        data, key, explicit = _entry(request, "")
        shard = stream.shard_for(key, explicit)
        sequence = shard.append(data, key, now_ms)
        return {"ShardId": shard.shard_id, "SequenceNumber": sequence, "EncryptionType": "NONE"}

    def put_records(self, request: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
        stream = self.stream(request)
        entries = request.get("Records")
        if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_PUT_ENTRIES:
            raise _invalid(f"Records must hold 1 to {MAX_PUT_ENTRIES} entries")
        # Every entry is checked before any is stored: a bad request stores nothing.
        checked = [_entry(entry, f"Records.{i}.") for i, entry in enumerate(entries)]
        if sum(len(data) + len(key.encode()) for data, key, _ in checked) > MAX_PUT_BYTES:
            raise _invalid("the request's records exceed 5 MiB")
        results = []
        for data, key, explicit in checked:
            shard = stream.shard_for(key, explicit)
            results.append(
                {"ShardId": shard.shard_id, "SequenceNumber": shard.append(data, key, now_ms)}
            )
        return {"FailedRecordCount": 0, "Records": results, "EncryptionType": "NONE"}

    # --- reading -------------------------------------------------------------------------

    def get_shard_iterator(self, request: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
        stream = self.stream(request)
        shard_id = request.get("ShardId")
        if not isinstance(shard_id, str):
            raise _invalid("ShardId is required")
        shard = stream.shard(shard_id)
        kind = request.get("ShardIteratorType")
        if kind not in ITERATOR_TYPES:
            raise _invalid(f"ShardIteratorType must be one of {', '.join(ITERATOR_TYPES)}")
        if kind == "TRIM_HORIZON":
            position = 0
        elif kind == "LATEST":
            position = len(shard.records)
        elif kind == "AT_TIMESTAMP":
            stamp = request.get("Timestamp")
            if not isinstance(stamp, int | float) or isinstance(stamp, bool):
                raise _invalid("Timestamp is required for AT_TIMESTAMP")
            position = bisect.bisect_left(shard.arrivals_ms, stamp)
        else:
            text = request.get("StartingSequenceNumber")
            try:
                sequence = int(text) if isinstance(text, str) else -1
            except ValueError:
                sequence = -1
            if sequence < 0:
                raise _invalid(f"StartingSequenceNumber {text!r} is required for {kind}")
            if kind == "AT_SEQUENCE_NUMBER":
                position = bisect.bisect_left(shard.sequence_numbers, sequence)
            else:
                position = bisect.bisect_right(shard.sequence_numbers, sequence)
        return {"ShardIterator": _opaque(stream.name, shard.index, position, now_ms)}

    def get_records(self, request: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
        iterator = request.get("ShardIterator")
        if not isinstance(iterator, str):
            raise _invalid("ShardIterator is required")
        name, (shard_index, position, issued_ms) = _unpack(iterator, 4, "ShardIterator")
        if now_ms - issued_ms > ITERATOR_TTL_MS:
            raise KinesisError(
                "ExpiredIteratorException", f"Iterator expired {now_ms - issued_ms} ms after issue"
            )
        stream = self.stream({"StreamName": name})
        if shard_index >= len(stream.shards):
            raise KinesisError("ResourceNotFoundException", f"Shard {shard_index} not found")
        shard = stream.shards[shard_index]
        limit = request.get("Limit", MAX_GET_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_GET_LIMIT:
            raise _invalid(f"Limit must be an integer from 1 to {MAX_GET_LIMIT}")
        batch = shard.records[position : position + limit]
        size = 0
        for count, record in enumerate(batch):
            size += len(record[1])
            if size > MAX_GET_BYTES and count > 0:
                batch = batch[:count]
                break
        end = position + len(batch)
        # How old the first record not returned is: 0 only at the tip (1 at least while records
        # remain, so a reader never takes a truncated answer for the end).
        behind = max(1, now_ms - shard.arrivals_ms[end]) if end < len(shard.records) else 0
        return {
            "Records": batch,
            "NextShardIterator": _opaque(name, shard_index, end, now_ms),
            "MillisBehindLatest": behind,
        }


def _entry(entry: Any, where: str) -> tuple[bytes, str, int | None]:
    """(data, partition key, explicit hash key) of a put entry, every field checked, so a
    request with one bad entry can be refused before any is stored."""
    if not isinstance(entry, Mapping):
        raise _invalid(f"{where or 'the request'} must be an object")
    data = entry.get("Data")
    if not isinstance(data, bytes):
        raise _invalid(f"{where}Data is required (base64 in JSON, bytes in CBOR)")
    if len(data) > MAX_RECORD_BYTES:
        raise _invalid(f"{where}Data exceeds 1 MiB")
    key = entry.get("PartitionKey")
    if not isinstance(key, str) or not 1 <= len(key) <= 256:
        raise _invalid(f"{where}PartitionKey must be 1 to 256 characters")
    explicit = entry.get("ExplicitHashKey")
    if explicit is None:
        return data, key, None
    if not isinstance(explicit, str) or not explicit.isdigit() or int(explicit) >= HASH_SPACE:
        raise _invalid(f"{where}ExplicitHashKey must be a decimal number in [0, 2^128)")
    return data, key, int(explicit)


def _opaque(*fields: str | int) -> str:
    """A shard iterator or a ListShards NextToken: its fields, opaque to the client."""
    return base64.urlsafe_b64encode("/".join(map(str, fields)).encode()).decode()


def _unpack(text: str, count: int, what: str) -> tuple[str, list[int]]:
    """The stream name and the `count - 1` numbers `_opaque` packed, or an error naming what."""
    try:
        name, *numbers = base64.urlsafe_b64decode(text.encode()).decode().rsplit("/", count - 1)
        if len(numbers) != count - 1:
            raise ValueError(text)
        return name, [int(number) for number in numbers]
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _invalid(f"{what} {text[:40]!r} is not one this server issued") from None
