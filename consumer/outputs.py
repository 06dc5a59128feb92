"""The shapes of what the consumer writes (CONTRACT section 3), as pure functions.

JSON is written with simplejson's Decimal support so that the transaction passes through with
every number exactly as it was received.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import simplejson

from consumer.records import Transaction
from consumer.rules import Decision
from consumer.sinks.s3_batches import RecordPosition


def to_json(value: dict[str, Any]) -> str:
    # ensure_ascii: any string the parser accepted can be written, whatever code points it holds.
    return simplejson.dumps(value, use_decimal=True, separators=(",", ":"), ensure_ascii=True)


def flagged_line(
    txn: Transaction,
    decision: Decision,
    position: RecordPosition,
    detected_at: datetime,
    rules_version: str,
) -> dict[str, Any]:
    """One line of a flagged object; the same fields are the body of the alert. `rules_version`
    names the rule set that judged it (docs/rules-as-data.md)."""
    return {
        "transaction_id": txn.transaction_id,
        "account_id": txn.account_id,
        "severity": decision.severity,
        "reasons": [{"rule": r.rule, "detail": r.detail} for r in decision.reasons],
        "transaction": txn.raw,
        "shard_id": position.shard_id,
        "sequence_number": position.sequence_number,
        # Several user records of one KPL-aggregated Kinesis record share a sequence number.
        "sub_sequence_number": position.sub_sequence_number,
        "detected_at": detected_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "rules_version": rules_version,
    }


def decision_line(
    txn: Transaction, decision: Decision, position: RecordPosition, rules_version: str
) -> dict[str, Any]:
    """One line of the audit trail (FRAUD_DECISIONS): what was decided about every judged
    transaction, flagged or not, and by which rules, for audits and retraining."""
    return {
        "transaction_id": txn.transaction_id,
        "account_id": txn.account_id,
        "event_time": str(txn.event_time),
        "flagged": decision.flagged,
        "severity": decision.severity,
        "rules": [r.rule for r in decision.reasons],
        "rules_version": rules_version,
        "shard_id": position.shard_id,
        "sequence_number": position.sequence_number,
        "sub_sequence_number": position.sub_sequence_number,
    }


def dead_letter_line(data: bytes, position: RecordPosition, error: str) -> dict[str, Any]:
    """One line of a dead-letter object: the raw bytes survive whatever they were."""
    return {
        "data": base64.b64encode(data).decode("ascii"),
        "shard_id": position.shard_id,
        "sequence_number": position.sequence_number,
        "sub_sequence_number": position.sub_sequence_number,
        "approximate_arrival_timestamp": position.arrival_ms,
        "error": error,
    }
