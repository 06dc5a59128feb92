"""The shapes of what the consumer writes (docs/contract.md section 4), as pure functions.

JSON is written with simplejson's Decimal support so that the transaction passes through with
every number exactly as it was received.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime
from math import isfinite
from typing import Any

import msgspec
import simplejson

from consumer.records import RecordPosition, Transaction
from consumer.rules import Decision


def to_json(value: dict[str, Any]) -> str:
    """The line's JSON text: ASCII only, numbers exactly as parsed.

    msgspec's encoder (C, ~13x simplejson's time on a flagged line) writes it whenever its
    bytes are what simplejson would write: ASCII (simplejson escapes every other code point),
    no DEL (simplejson escapes it too), no `NaN` / `Infinity` anywhere (a non-finite Decimal,
    which simplejson refuses) and no non-finite float at the top level (where the model's score
    is; msgspec would write `null`, simplejson refuses it). Anything else, a rare non-ASCII
    record among them, is written by simplejson, which defines the output and refuses what it
    always refused; a property test holds the two to the same text.

    What a line holds: the parser's values (str, int, Decimal, bool, None, lists, dicts: its
    numbers are never floats) and our own fields (str, int, bool, a rounded finite float
    score). Beyond those the two encoders differ and nothing relies on either: a float at or
    above 1e16 or below 1e-4 is the same number with another exponent form (`1e16` for
    `1e+16`), and msgspec writes sets, dates, UUIDs and bytes that simplejson refuses."""
    if any(type(item) is float and not isfinite(item) for item in value.values()):
        return _reference_json(value)
    try:
        fast = _fast_encode(value)
    except (TypeError, ValueError, OverflowError):
        fast = None
    if fast is not None and fast.isascii() and not _needs_reference(fast):
        return fast.decode("ascii")
    return _reference_json(value)


def _reference_json(value: dict[str, Any]) -> str:
    # ensure_ascii: any string the parser accepted can be written, whatever code points it holds.
    return simplejson.dumps(value, use_decimal=True, separators=(",", ":"), ensure_ascii=True)


_fast_encode = msgspec.json.Encoder(decimal_format="number").encode
# DEL is ASCII but simplejson writes it as \u007f; `NaN` and `Infinity` are how msgspec writes a
# non-finite Decimal (also matched inside strings: those few lines just take the reference path).
_needs_reference = re.compile(rb"\x7f|NaN|Infinity").search


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
    transaction, flagged or not, and by which rules, for audits and retraining; with the amount
    and the merchant, channel and country fields, so that the value judged, the value of missed
    frauds and the breakdowns over every judged transaction can be read from the trail alone.
    `amount` and the merchant, channel and country fields are the record's values as received
    (as in a flagged line's `transaction`: `12.50` stays `12.50`, `fr` stays `fr`); `currency`
    the record's or the contract's default; an absent optional field null."""
    raw = txn.raw
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
        "amount": raw["amount"],
        "currency": txn.currency,
        "merchant_id": raw.get("merchant_id"),
        "merchant_category": raw.get("merchant_category"),
        "channel": raw.get("channel"),
        "origin_country": raw.get("origin_country"),
        "destination_country": raw.get("destination_country"),
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
