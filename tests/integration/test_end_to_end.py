"""End to end under the real MultiLangDaemon: produce, then read S3, SNS and DynamoDB themselves."""

from __future__ import annotations

import base64
import json
import socket
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest

from consumer.readback import (
    drain_queue,
    last_sequence_per_shard,
    lease_checkpoints,
    read_jsonl_objects,
)
from load_test.producer import Entry, send
from load_test.synthetic import generate_records
from tests.integration.conftest import Stack, cli, free_port

pytestmark = pytest.mark.integration


def valid(amount: str, account: str = "acct-0042") -> bytes:
    return (
        f'{{"transaction_id":"{uuid.uuid4()}","account_id":"{account}","amount":{amount},'
        f'"timestamp":"2026-11-28T10:00:00.123+02:00","origin_country":"DE"}}'
    ).encode()


INVALID = [
    b"not json at all",
    b'{"transaction_id":"x","account_id":"a","amount":-5,"timestamp":"2026-11-28T10:00:00Z"}',
    b'{"transaction_id":"y","account_id":"a","amount":NaN,"timestamp":"2026-11-28T10:00:00Z"}',
    b'{"transaction_id":"z","account_id":"a","amount":5}',
    b"[1, 2, 3]",
    b"\xff\xfe\x00 bytes that are not UTF-8",
]


def build_records() -> list[Entry]:
    entries = [r.to_entry() for r in generate_records(240, fraud_ratio=0.15, seed=7)]
    # Both sides of the threshold, exactly as written.
    entries += [Entry(valid(a), "acct-0042") for a in ("10000", "10000.00", "10000.001", "1e5")]
    entries += [Entry(data, f"bad-{i}") for i, data in enumerate(INVALID)]
    return entries


def expected_high_amounts(entries: list[Entry]) -> set[str]:
    """An oracle independent of the consumer's code: parse and compare the literal."""
    ids = set()
    for entry in entries:
        try:
            txn = json.loads(entry.data, parse_float=Decimal)
        except ValueError:
            continue
        if isinstance(txn, dict) and entry.data not in INVALID and txn["amount"] > 10000:
            ids.add(txn["transaction_id"])
    return ids


def test_high_amounts_invalid_records_alerts_and_checkpoints(stack: Stack) -> None:
    entries = build_records()
    expected = expected_high_amounts(entries)
    assert len(expected) >= 10  # the data set really exercises the rule

    summary = send(stack.client("kinesis"), stack.env["FRAUD_STREAM"], entries)
    assert summary.failed == 0 and summary.sent == len(entries)
    last = last_sequence_per_shard(stack.client("kinesis"), stack.env["FRAUD_STREAM"])
    dynamodb, table = stack.client("dynamodb"), stack.env["FRAUD_APP_NAME"]

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and lease_checkpoints(dynamodb, table) != last:
        time.sleep(1)
    assert lease_checkpoints(dynamodb, table) == last, "checkpoints did not reach the last records"

    s3, bucket = stack.client("s3"), stack.env["FRAUD_BUCKET"]
    flagged = read_jsonl_objects(s3, bucket, "flagged/")
    ids = [line["transaction_id"] for _, line in flagged]
    assert sorted(ids) == sorted(expected)  # each high amount exactly once, nothing else
    for key, line in flagged:
        assert key.startswith("flagged/dt=") and "/hour=" in key and key.endswith(".jsonl.gz")
        assert line["reasons"][0]["rule"] == "high_amount" and line["severity"] == "high"
        assert line["transaction"]["transaction_id"] == line["transaction_id"]

    dead = read_jsonl_objects(s3, bucket, "dead-letter/")
    assert sorted(base64.b64decode(line["data"]) for _, line in dead) == sorted(INVALID)
    assert all(line["error"] for _, line in dead)

    alerts = drain_queue(stack.client("sqs"), stack.env["FRAUD_ALERTS_QUEUE_URL"])
    assert sorted(json.loads(a["Message"])["transaction_id"] for a in alerts) == sorted(expected)
    assert all(a["MessageAttributes"]["severity"]["Value"] == "high" for a in alerts)


def test_local_up_twice_does_not_start_a_second_stack(stack: Stack) -> None:
    from consumer.local_stack import running_pids

    before = running_pids(stack.options)
    again = cli("local", "up", *stack.port_args, timeout=60)
    assert again.returncode == 0
    assert "already up" in again.stderr
    assert running_pids(stack.options) == before


def test_a_taken_port_is_a_clear_error(tmp_path: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = cli(
            "local",
            "up",
            "--state-dir",
            str(tmp_path / "s"),
            "--kinesis-port",
            str(free_port()),
            "--kinesis-tls-port",
            str(free_port()),
            "--moto-port",
            str(port),
            "--redis-port",
            str(free_port()),
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {port}" in result.stderr and "--moto-port" in result.stderr
    assert time.monotonic() - started < 30
