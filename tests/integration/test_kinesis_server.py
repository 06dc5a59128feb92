"""fraudstream's own Kinesis server (`python -m consumer.local.kinesis_server`), as a process.

boto3 over HTTP/1.1 and JSON: every record once, in put order per shard, the stream_exists
waiter, errors as boto3's exception classes. HTTP/2 cleartext with prior knowledge and CBOR, as
the KCL's Java SDK speaks: a raw h2 client on a plain socket. (The store and the encodings
alone: tests/unit/local/test_kinesis_server_*.py.)
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import cbor2
import h2.config
import h2.connection
import h2.events
import pytest
from botocore.config import Config

from tests.integration.conftest import free_port
from tests.support.kinesis_reads import read_shard

pytestmark = pytest.mark.integration

STREAM = "fraudstream-local"
CBOR = "application/x-amz-cbor-1.1"
JSON = "application/x-amz-json-1.1"
TARGET = "Kinesis_20131202."


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    stderr: Path

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stderr.read_text().splitlines() if line.strip()]


def _start(tmp: Path) -> Server:
    port = free_port()
    stderr = tmp / "kinesis-server.stderr"
    with stderr.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "consumer.local.kinesis_server", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return Server(port, process, stderr)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                pytest.fail(f"the server did not listen on {port}: {stderr.read_text()}")
            time.sleep(0.05)


def _stop(server: Server) -> tuple[int, float]:
    """SIGTERM; (exit code, seconds it took). Killed, and a failure, after 10 s."""
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    try:
        code = server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
        pytest.fail("the server was still running 10 s after SIGTERM")
    return code, time.monotonic() - started


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = _start(tmp_path_factory.mktemp("kinesis-server"))
    try:
        yield started
    finally:
        if started.process.poll() is None:
            code, took = _stop(started)
            assert code == 0, f"exit {code} on SIGTERM: {started.stderr.read_text()[-2000:]}"
            assert took < 5, f"{took:.1f} s from SIGTERM to exit"


@pytest.fixture(scope="module")
def kinesis(server: Server) -> Any:
    client = boto3.client(
        "kinesis",
        endpoint_url=f"http://127.0.0.1:{server.port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=10, connect_timeout=5),
    )
    client.create_stream(StreamName=STREAM, ShardCount=4)
    client.get_waiter("stream_exists").wait(
        StreamName=STREAM, WaiterConfig={"Delay": 1, "MaxAttempts": 5}
    )
    return client


def _port_of(client: Any) -> int:
    return int(client.meta.endpoint_url.rsplit(":", 1)[1])


# --- HTTP/1.1, JSON, boto3 -------------------------------------------------------------------


def test_every_record_once_in_put_order_per_shard(kinesis: Any) -> None:
    shards = [s["ShardId"] for s in kinesis.list_shards(StreamName=STREAM)["Shards"]]
    assert len(shards) == 4
    put: dict[str, list[tuple[int, bytes, str]]] = {shard: [] for shard in shards}
    for round_ in range(6):
        entries: list[dict[str, Any]] = [
            {"Data": f"{round_}-{i}".encode() + bytes([i % 256]), "PartitionKey": f"key-{i % 97}"}
            for i in range(500)
        ]
        answer = kinesis.put_records(StreamName=STREAM, Records=entries)
        assert answer["FailedRecordCount"] == 0
        for entry, result in zip(entries, answer["Records"], strict=True):
            put[result["ShardId"]].append(
                (int(result["SequenceNumber"]), entry["Data"], entry["PartitionKey"])
            )
        data = f"one-{round_}".encode()
        single = kinesis.put_record(StreamName=STREAM, Data=data, PartitionKey=f"single-{round_}")
        put[single["ShardId"]].append((int(single["SequenceNumber"]), data, f"single-{round_}"))
    assert sum(len(v) for v in put.values()) == 3006
    for shard in shards:
        assert put[shard], f"no record went to {shard}"
        numbers = [n for n, _, _ in put[shard]]
        assert numbers == sorted(set(numbers))
        got = read_shard(kinesis, STREAM, shard, limit=64)
        assert [(int(r["SequenceNumber"]), r["Data"], r["PartitionKey"]) for r in got] == put[shard]
        arrivals = [r["ApproximateArrivalTimestamp"] for r in got]
        assert arrivals == sorted(arrivals)
        assert abs(arrivals[-1].timestamp() - time.time()) < 120


def _put_to(client: Any, shard: dict[str, Any], count: int) -> None:
    """`count` records into `shard` (by its starting hash key), so a test needs no other."""
    point = shard["HashKeyRange"]["StartingHashKey"]
    entries = [
        {
            "Data": f"to-{shard['ShardId']}-{i}".encode(),
            "PartitionKey": "p",
            "ExplicitHashKey": point,
        }
        for i in range(count)
    ]
    answer = client.put_records(StreamName=STREAM, Records=entries)
    assert {r["ShardId"] for r in answer["Records"]} == {shard["ShardId"]}


def test_an_iterator_after_a_sequence_number_and_at_a_timestamp(kinesis: Any) -> None:
    first = kinesis.list_shards(StreamName=STREAM)["Shards"][0]
    _put_to(kinesis, first, 3)
    shard = first["ShardId"]
    everything = read_shard(kinesis, STREAM, shard, limit=10_000)
    assert len(everything) > 2
    middle = len(everything) // 2
    after = kinesis.get_shard_iterator(
        StreamName=STREAM,
        ShardId=shard,
        ShardIteratorType="AFTER_SEQUENCE_NUMBER",
        StartingSequenceNumber=everything[middle]["SequenceNumber"],
    )["ShardIterator"]
    assert (
        kinesis.get_records(ShardIterator=after, Limit=10_000)["Records"]
        == everything[middle + 1 :]
    )
    # AT_TIMESTAMP in the future: nothing; at the first arrival: everything (JSON seconds in).
    for stamp, expected in (
        (everything[-1]["ApproximateArrivalTimestamp"].timestamp() + 60, []),
        (everything[0]["ApproximateArrivalTimestamp"], everything),
    ):
        iterator = kinesis.get_shard_iterator(
            StreamName=STREAM, ShardId=shard, ShardIteratorType="AT_TIMESTAMP", Timestamp=stamp
        )["ShardIterator"]
        assert kinesis.get_records(ShardIterator=iterator, Limit=10_000)["Records"] == expected


def test_the_stream_waiters_work(kinesis: Any) -> None:
    kinesis.create_stream(StreamName="short-lived", ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(
        StreamName="short-lived", WaiterConfig={"Delay": 1, "MaxAttempts": 3}
    )
    summary = kinesis.describe_stream_summary(StreamName="short-lived")
    assert summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"
    assert summary["StreamDescriptionSummary"]["OpenShardCount"] == 1
    assert "short-lived" in kinesis.list_streams()["StreamNames"]
    kinesis.delete_stream(StreamName="short-lived")
    kinesis.get_waiter("stream_not_exists").wait(
        StreamName="short-lived", WaiterConfig={"Delay": 1, "MaxAttempts": 3}
    )
    assert "short-lived" not in kinesis.list_streams()["StreamNames"]


def test_errors_arrive_as_boto3_exception_classes(kinesis: Any) -> None:
    with pytest.raises(kinesis.exceptions.ResourceNotFoundException):
        kinesis.describe_stream(StreamName="no-such-stream")
    with pytest.raises(kinesis.exceptions.ResourceNotFoundException):
        kinesis.put_record(StreamName="no-such-stream", Data=b"x", PartitionKey="k")
    with pytest.raises(kinesis.exceptions.InvalidArgumentException):
        kinesis.get_records(ShardIterator="garbage-iterator")
    with pytest.raises(kinesis.exceptions.InvalidArgumentException) as caught:
        kinesis.put_records(
            StreamName=STREAM,
            Records=[
                {"Data": b"x", "PartitionKey": "k"},
                {"Data": b"x" * (1024 * 1024 + 1), "PartitionKey": "k"},
            ],
        )
    assert "Records.1." in caught.value.response["Error"]["Message"]
    with pytest.raises(kinesis.exceptions.ResourceInUseException):
        kinesis.create_stream(StreamName=STREAM, ShardCount=4)


def test_an_unknown_target_is_400_and_logged(server: Server) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request(
        "POST",
        "/",
        body=b"{}",
        headers={"Content-Type": JSON, "X-Amz-Target": TARGET + "SplitShard"},
    )
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    assert response.status == 400
    assert body["__type"] == "UnknownOperationException"
    assert response.getheader("x-amzn-errortype") == "UnknownOperationException"
    deadline = time.monotonic() + 5
    while True:
        lines = server.log_lines()
        logged = [line for line in lines if line.get("event") == "unknown_operation"]
        if logged or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert logged, lines
    assert logged[-1]["target"] == TARGET + "SplitShard"
    assert logged[-1]["level"] == "warning"


# --- HTTP/2 cleartext with prior knowledge, CBOR ----------------------------------------------


class _H2Client:
    """One HTTP/2 connection opened with the preface straight away (prior knowledge), as the
    Java SDK opens its own; CBOR requests on it, round after round."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.connection = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.connection.initiate_connection()

    def calls(self, calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Each (operation, request) on its own stream, all sent before any answer is read;
        each answer's status, headers and decoded body, in order."""
        connection = self.connection
        answers: dict[int, dict[str, Any]] = {}
        for operation, request in calls:
            body = cbor2.dumps(request)
            stream_id = connection.get_next_available_stream_id()
            connection.send_headers(
                stream_id,
                [
                    (":method", "POST"),
                    (":scheme", "http"),
                    (":authority", f"127.0.0.1:{self.port}"),
                    (":path", "/"),
                    ("content-type", CBOR),
                    ("x-amz-target", TARGET + operation),
                    ("content-length", str(len(body))),
                ],
            )
            connection.send_data(stream_id, body, end_stream=True)
            answers[stream_id] = {"body": b"", "ended": False}
        self.sock.sendall(connection.data_to_send())
        while not all(answer["ended"] for answer in answers.values()):
            data = self.sock.recv(65536)
            assert data, "the server closed the HTTP/2 connection before answering"
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    answers[event.stream_id]["headers"] = dict(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    answers[event.stream_id]["body"] += event.data
                    connection.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    answers[event.stream_id]["ended"] = True
                elif isinstance(event, h2.events.StreamReset | h2.events.ConnectionTerminated):
                    pytest.fail(f"HTTP/2 error from the server: {event}")
            self.sock.sendall(connection.data_to_send())
        return [
            {
                "status": int(answers[stream_id]["headers"][":status"]),
                "headers": answers[stream_id]["headers"],
                "body": cbor2.loads(answers[stream_id]["body"]),
            }
            for stream_id in sorted(answers)
        ]

    def close(self) -> None:
        try:
            self.connection.close_connection()
            self.sock.sendall(self.connection.data_to_send())
        finally:
            self.sock.close()


def _h2_calls(port: int, calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The calls on a connection of their own."""
    client = _H2Client(port)
    try:
        return client.calls(calls)
    finally:
        client.close()


def test_one_http2_connection_serves_as_many_requests_as_its_client_sends(kinesis: Any) -> None:
    """The KCL keeps one connection and polls on it twice a second per shard. hypercorn closes
    a connection after 1,000 requests by default; the SDK then waited 10 s for a request caught
    in the close (the soak's 10-second stalls every 2-4 minutes). 1,200 here, none refused."""
    client = _H2Client(_port_of(kinesis))
    try:
        for _ in range(12):
            answers = client.calls([("ListShards", {"StreamName": STREAM})] * 100)
            assert {answer["status"] for answer in answers} == {200}
    finally:
        client.close()


def test_http2_prior_knowledge_cbor_answers_like_the_java_sdk_expects(kinesis: Any) -> None:
    shards = kinesis.list_shards(StreamName=STREAM)["Shards"]
    _put_to(kinesis, shards[1], 6)
    shard = shards[1]["ShardId"]
    expected = read_shard(kinesis, STREAM, shard, limit=10_000)[:5]
    iterator = kinesis.get_shard_iterator(
        StreamName=STREAM, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    listed, got, bad = _h2_calls(
        _port_of(kinesis),
        [
            ("ListShards", {"StreamName": STREAM}),
            ("GetRecords", {"ShardIterator": iterator, "Limit": 5}),
            ("GetRecords", {"ShardIterator": "garbage-iterator"}),
        ],
    )
    for answer in (listed, got):
        assert answer["status"] == 200
        assert answer["headers"]["content-type"] == CBOR
    assert [s["ShardId"] for s in listed["body"]["Shards"]] == [s["ShardId"] for s in shards]
    records = got["body"]["Records"]
    assert len(records) == 5
    for record, want in zip(records, expected, strict=True):
        assert isinstance(record["Data"], bytes)
        assert record["Data"] == want["Data"]
        assert record["SequenceNumber"] == want["SequenceNumber"]
        assert record["PartitionKey"] == want["PartitionKey"]
        # Epoch milliseconds, an integer (boto3 got the same instant as seconds).
        assert isinstance(record["ApproximateArrivalTimestamp"], int)
        assert record["ApproximateArrivalTimestamp"] == round(
            want["ApproximateArrivalTimestamp"].timestamp() * 1000
        )
    assert isinstance(got["body"]["NextShardIterator"], str)
    assert got["body"]["MillisBehindLatest"] > 0  # more than five records wait behind these
    # Errors in CBOR too, with the type the SDK dispatches on.
    assert bad["status"] == 400
    assert bad["headers"]["content-type"] == CBOR
    assert bad["body"]["__type"] == "InvalidArgumentException"
    assert bad["body"]["message"]


def test_http2_cbor_timestamps_as_the_java_sdk_writes_them(kinesis: Any) -> None:
    """The Java SDK v2 writes a timestamp as CBOR tag 1 around epoch milliseconds: the KCL's
    GetShardIterator AT_TIMESTAMP and the ShardFilter of its first ListShards when it starts
    AT_TIMESTAMP (docs/runbook.md's replay from a point in time). Both must be answered."""
    shards = kinesis.list_shards(StreamName=STREAM)["Shards"]
    _put_to(kinesis, shards[2], 2)
    first = read_shard(kinesis, STREAM, shards[2]["ShardId"], limit=10_000)[0]
    stamp_ms = round(first["ApproximateArrivalTimestamp"].timestamp() * 1000)
    listed, iterator = _h2_calls(
        _port_of(kinesis),
        [
            (
                "ListShards",
                {
                    "StreamName": STREAM,
                    "ShardFilter": {
                        "Type": "AT_TIMESTAMP",
                        "Timestamp": cbor2.CBORTag(1, stamp_ms),
                    },
                },
            ),
            (
                "GetShardIterator",
                {
                    "StreamName": STREAM,
                    "ShardId": shards[2]["ShardId"],
                    "ShardIteratorType": "AT_TIMESTAMP",
                    "Timestamp": cbor2.CBORTag(1, stamp_ms),
                },
            ),
        ],
    )
    assert (listed["status"], iterator["status"]) == (200, 200), (listed, iterator)
    assert len(listed["body"]["Shards"]) == 4
    (got,) = _h2_calls(
        _port_of(kinesis),
        [("GetRecords", {"ShardIterator": iterator["body"]["ShardIterator"], "Limit": 1})],
    )
    assert got["body"]["Records"][0]["SequenceNumber"] == first["SequenceNumber"]


# --- stopping --------------------------------------------------------------------------------


def test_sigterm_stops_it_with_exit_0(tmp_path: Path) -> None:
    own = _start(tmp_path)
    # With a pooled keep-alive connection open, as the SDKs keep them between polls.
    idle = http.client.HTTPConnection("127.0.0.1", own.port, timeout=5)
    try:
        idle.request(
            "POST",
            "/",
            body=b"{}",
            headers={"Content-Type": JSON, "X-Amz-Target": TARGET + "ListStreams"},
        )
        assert json.loads(idle.getresponse().read())["StreamNames"] == []
        # And an HTTP/2 one that has sent its preface and settings and reads nothing yet
        # (asyncio logged its cancellation at shutdown as an error with a traceback).
        opening = socket.create_connection(("127.0.0.1", own.port), timeout=5)
        opening.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000"))
        time.sleep(0.3)
        code, took = _stop(own)
    finally:
        idle.close()
        opening.close()
        if own.process.poll() is None:
            own.process.kill()
            own.process.wait()
    assert code == 0, own.stderr.read_text()
    assert took < 5, f"{took:.1f} s from SIGTERM to exit"
    # Its last line says what it served: the one ListStreams above.
    stopped = [
        json.loads(line)
        for line in own.stderr.read_text().splitlines()
        if line.startswith("{") and '"stopped"' in line
    ]
    assert [line["calls"] for line in stopped] == [{"ListStreams": 1}]
    # The open connection's cancellation at shutdown is not an error with a traceback.
    logged = [json.loads(line) for line in own.stderr.read_text().splitlines()]
    assert [line for line in logged if line["level"] not in ("info", "warning")] == []
