"""Garbage mixed into real traffic under the real MultiLangDaemon (issue #6, bad input).

Every garbage record lands in the S3 dead letters with its bytes and its reason, the valid
records around it are judged as the contract's oracle says, the worker stays up, and the
checkpoints reach the last record of every shard.
"""

from __future__ import annotations

import base64
import random
import time
from datetime import UTC, datetime, timedelta

import pytest

from consumer.infra.readback import read_jsonl_objects, stream_entries
from consumer.local.stack import running_pids
from consumer.records import InvalidRecord, parse_transaction
from load_test.producer import Entry, send
from load_test.synthetic import generate_records
from tests.integration.conftest import Stack
from tests.integration.expectations import (
    assert_s3_matches,
    expected_from_stream,
    too_far_ahead_bytes,
    wait_for_checkpoints,
)
from tests.integration.scenarios import scenario_entries
from tests.unit.batch.test_bad_input import CASES, garbage, record

pytestmark = pytest.mark.integration


def garbage_entries() -> list[Entry]:
    """Every hand-written bad case, 300 generated ones, and timestamps from the future."""
    data = [case_data for _, case_data, _ in CASES]
    rng = random.Random(66)
    data += [garbage(rng, n)[0] for n in range(300)]
    years_ahead = datetime.now(UTC) + timedelta(days=5 * 365)
    data.append(record(transaction_id="future-1", timestamp=years_ahead.isoformat()))
    data.append(record(transaction_id="future-2", timestamp=int(years_ahead.timestamp() * 1e6)))
    return [Entry(d, f"garbage-{n % 7}") for n, d in enumerate(data)]


def test_garbage_is_dead_lettered_and_the_valid_records_are_judged(stack: Stack) -> None:
    kinesis, stream = stack.client("kinesis"), stack.env["FRAUD_STREAM"]
    bad = garbage_entries()
    good = [r.to_entry() for r in generate_records(200, fraud_ratio=0.15, seed=21)]
    good += scenario_entries("garbage")
    mixed = bad + good
    random.Random(5).shuffle(mixed)
    summary = send(kinesis, stream, mixed)
    assert summary.failed == 0 and summary.sent == len(mixed)

    started = time.monotonic()
    wait_for_checkpoints(stack, timeout_s=240)  # every shard checkpointed at its last record
    caught_up_s = time.monotonic() - started

    expected = expected_from_stream(stack)
    assert_s3_matches(stack, expected)  # flagged exactly as the oracle says, invalid dead-lettered

    # Each garbage record in the dead letters, bytes intact, with the reason it must have.
    arrival = {seq: ms for _, seq, _, ms in stream_entries(kinesis, stream)}
    s3, bucket = stack.client("s3"), stack.env["FRAUD_BUCKET"]
    letters = {
        base64.b64decode(line["data"]): line
        for _, line in read_jsonl_objects(s3, bucket, "dead-letter/")
    }
    for entry in bad:
        letter = letters.get(entry.data)
        assert letter is not None, entry.data[:80]
        parsed = parse_transaction(entry.data)
        if isinstance(parsed, InvalidRecord):
            assert letter["error"] == parsed.reason
        else:
            reason = too_far_ahead_bytes(entry.data, arrival[letter["sequence_number"]])
            assert reason is not None and letter["error"] == reason
            assert "lies more than 86400 s after the record reached the stream" in reason
    hand_written = {case_data: reason for _, case_data, reason in CASES}
    for case_data, reason in hand_written.items():
        if not reason.startswith("timestamp:") or "lies more than" not in reason:
            assert letters[case_data]["error"] == reason

    print(
        f"bad input e2e: {len(mixed)} records put ({len(bad)} garbage), "
        f"{len(expected.invalid)} dead letters and {len(expected.flagged)} flagged in the stream "
        f"as expected, checkpoints at the last records {caught_up_s:.1f} s after the put"
    )
    # The worker is still the one that started: no exit, no restart.
    assert "worker-1" in running_pids(stack.options)
    log = (stack.options.state_dir / "logs" / "worker-1.log").read_text(errors="replace")
    assert "worker_exiting" not in log and "process_records_failed" not in log
