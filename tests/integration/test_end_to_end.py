"""End to end under the real MultiLangDaemon: produce, then read S3, SNS and DynamoDB themselves."""

from __future__ import annotations

import base64
import json
import socket
import time
import uuid
from typing import Any

import pytest

from consumer.infra.readback import drain_queue, read_jsonl_objects
from load_test.producer import Entry, send
from load_test.synthetic import generate_records
from tests.integration.conftest import Stack, cli, free_port
from tests.integration.expectations import (
    assert_s3_matches,
    expected_from_stream,
    wait_for_checkpoints,
)
from tests.integration.scenarios import scenario_entries
from tests.integration.test_ops import wait_for_metric

pytestmark = pytest.mark.integration


THRESHOLD_IDS: dict[str, str] = {}


def valid(amount: str, account: str = "acct-0042", tid: str | None = None) -> bytes:
    tid = tid or str(uuid.uuid4())
    return (
        f'{{"transaction_id":"{tid}","account_id":"{account}","amount":{amount},'
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
    for amount in ("10000", "10000.00", "10000.001", "1e5"):
        THRESHOLD_IDS[amount] = tid = f"threshold-{amount}-{uuid.uuid4()}"
        entries.append(
            Entry(valid(amount, account=f"acct-t-{amount}", tid=tid), f"acct-t-{amount}")
        )
    entries += scenario_entries("e2e")
    entries += [Entry(data, f"bad-{i}") for i, data in enumerate(INVALID)]
    return entries


def test_every_rule_invalid_records_alerts_and_checkpoints(stack: Stack) -> None:
    entries = build_records()
    summary = send(stack.client("kinesis"), stack.env["FRAUD_STREAM"], entries)
    assert summary.failed == 0 and summary.sent == len(entries)
    wait_for_checkpoints(stack)

    expected = expected_from_stream(stack)
    assert len(expected.flagged) >= 20  # the data really exercises the rules
    assert len(expected.invalid) >= len(INVALID)
    assert_s3_matches(stack, expected)

    # Spot checks against the contract, independent of the oracle.
    s3, bucket = stack.client("s3"), stack.env["FRAUD_BUCKET"]
    lines = {line["transaction_id"]: line for _, line in read_jsonl_objects(s3, bucket, "flagged/")}
    dead = read_jsonl_objects(s3, bucket, "dead-letter/")
    assert set(INVALID) <= {base64.b64decode(line["data"]) for _, line in dead}
    for amount, fires in (("10000", False), ("10000.00", False), ("10000.001", True)):
        tid = THRESHOLD_IDS[amount]
        assert (tid in lines and "high_amount" in rules_of(lines[tid])) == fires, amount

    alerts = drain_queue(stack.client("sqs"), stack.env["FRAUD_ALERTS_QUEUE_URL"])
    alerted = [json.loads(a["Message"])["sequence_number"] for a in alerts]
    assert sorted(alerted) == sorted(expected.alerted)  # each exactly once outside a crash
    for alert in alerts:
        message = json.loads(alert["Message"])
        assert alert["MessageAttributes"]["severity"]["Value"] == message["severity"]
        assert message["account_id"] not in alert["Subject"]

    # The workers' counters reach CloudWatch (the moto server), under the contract's names.
    assert wait_for_metric(stack, "RecordsFlagged", len(expected.flagged))
    assert wait_for_metric(stack, "RecordsInvalid", len(expected.invalid))
    assert wait_for_metric(stack, "RecordsJudged", len(expected.flagged))


def rules_of(line: dict[str, Any]) -> set[str]:
    return {reason["rule"] for reason in line["reasons"]}


def test_local_up_twice_does_not_start_a_second_stack(stack: Stack) -> None:
    from consumer.local.stack import running_pids

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
