"""What S3, the dead letters and SNS must hold for everything in the stream, from the oracle."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from consumer.batch.timeliness import too_far_ahead
from consumer.infra import readback
from consumer.infra.readback import (
    read_jsonl_objects,
    stream_entries,
    stream_entries_in_lineage_order,
)
from consumer.records import Transaction, parse_transaction
from consumer.rules.config import SEVERITIES, RulesConfig
from consumer.settings.config import Settings
from tests.integration.conftest import Stack
from tests.support.oracle import reference_decisions


@dataclass
class Expected:
    flagged: dict[str, frozenset[str]]  # sequence number -> rules
    alerted: set[str]  # sequence numbers with severity >= medium
    invalid: set[str]
    duplicates: set[str]


def expected_from_stream(stack: Stack, config: RulesConfig | None = None) -> Expected:
    return expected_from_entries(
        stream_entries(stack.client("kinesis"), stack.env["FRAUD_STREAM"]), config
    )


def expected_from_resharded_stream(stack: Stack, config: RulesConfig | None = None) -> Expected:
    """The oracle over a stream that was split or merged: parent shards read before their
    children, so each account's records are judged in the order the consumer sees them."""
    entries = stream_entries_in_lineage_order(stack.client("kinesis"), stack.env["FRAUD_STREAM"])
    return expected_from_entries(entries, config)


def expected_from_entries(
    records: list[tuple[str, str, bytes, int]], config: RulesConfig | None = None
) -> Expected:
    """What the contract says about (shard id, sequence number, data, arrival ms) records in
    stream order."""
    config = config or RulesConfig()
    # Beyond the contract's text: a timestamp more than a day after the record's arrival is
    # invalid (consumer/batch/timeliness.py); an invalid record enters no state, so it leaves the
    # oracle's input.
    ahead = {seq for _, seq, data, arrival in records if too_far_ahead_bytes(data, arrival)}
    outcomes = reference_decisions(
        [(seq, data) for _, seq, data, _ in records if seq not in ahead], config
    )
    flagged = {seq: rules for seq, outcome, rules in outcomes if outcome == "judged" and rules}
    medium = SEVERITIES.index("medium")
    alerted = {
        seq
        for seq, rules in flagged.items()
        if max(SEVERITIES.index(config.severities[r]) for r in rules) >= medium
    }
    return Expected(
        flagged=flagged,
        alerted=alerted,
        invalid={seq for seq, outcome, _ in outcomes if outcome == "invalid"} | ahead,
        duplicates={seq for seq, outcome, _ in outcomes if outcome == "duplicate"},
    )


def too_far_ahead_bytes(data: bytes, arrival_ms: int) -> str | None:
    """The future-timestamp reason for a valid record, at the default limit; else None."""
    parsed = parse_transaction(data)
    if not isinstance(parsed, Transaction):
        return None
    default = Settings(bucket="", topic_arn="", redis_url="").timestamp_max_ahead_s
    return too_far_ahead(parsed, arrival_ms, default)


def wait_for_checkpoints(stack: Stack, timeout_s: float = 180) -> float:
    """Every shard checkpointed at its last record; the seconds that took."""
    waited = readback.wait_for_checkpoints(
        stack.client("kinesis"),
        stack.client("dynamodb"),
        stack.env["FRAUD_STREAM"],
        stack.env["FRAUD_APP_NAME"],
        timeout_s,
    )
    assert waited is not None, "checkpoints did not reach the last records"
    return waited


def assert_s3_matches(stack: Stack, expected: Expected) -> None:
    s3, bucket = stack.client("s3"), stack.env["FRAUD_BUCKET"]
    flagged = read_jsonl_objects(s3, bucket, "flagged/")
    per_id = Counter(line["transaction_id"] for _, line in flagged)
    assert [tid for tid, n in per_id.items() if n > 1] == [], "a transaction in two lines"
    found = {
        line["sequence_number"]: frozenset(r["rule"] for r in line["reasons"])
        for _, line in flagged
    }
    missing = set(expected.flagged) - set(found)
    extra = set(found) - set(expected.flagged)
    assert not missing and not extra, f"missing {len(missing)}, unexpected {len(extra)}"
    assert found == expected.flagged  # and each with exactly the rules the contract says
    assert not set(found) & expected.duplicates
    for key, _ in flagged:
        assert key.startswith("flagged/dt=") and "/hour=" in key and key.endswith(".jsonl.gz")
    dead = read_jsonl_objects(s3, bucket, "dead-letter/")
    assert {line["sequence_number"] for _, line in dead} == expected.invalid
    assert all(line["error"] for _, line in dead)


def wait_for_lineage_checkpoints(stack: Stack, timeout_s: float = 180) -> float:
    """`wait_for_checkpoints` for a split or merged stream; the seconds it took."""
    waited = readback.wait_for_lineage_checkpoints(
        stack.client("kinesis"),
        stack.client("dynamodb"),
        stack.env["FRAUD_STREAM"],
        stack.env["FRAUD_APP_NAME"],
        timeout_s,
    )
    assert waited is not None, "checkpoints did not reach SHARD_END and the last records"
    return waited
