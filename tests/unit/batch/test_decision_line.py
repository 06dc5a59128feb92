"""The decision line (docs/contract.md, "A decision line"): its fields, the record's amount written
exactly as a flagged line writes it, and the merchant, channel and country fields the analysts'
breakdowns read (docs/analytics.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from consumer.batch import lines
from consumer.batch.lines import _reference_json, decision_line, flagged_line, to_json
from consumer.records import RecordPosition, Transaction, parse_transaction
from consumer.rules import Decision
from consumer.rules.engine import Reason

POSITION = RecordPosition("shardId-000000000000", "4965" + "0" * 52, 0, 1795910300000)
FIRED = Decision((Reason("high_amount", "d"),), "high")
# The fields before the amount and the merchant fields were added, in their order.
FIRST_FIELDS = [
    "transaction_id",
    "account_id",
    "event_time",
    "flagged",
    "severity",
    "rules",
    "rules_version",
    "shard_id",
    "sequence_number",
    "sub_sequence_number",
]
ADDED = [
    "amount",
    "currency",
    "merchant_id",
    "merchant_category",
    "channel",
    "origin_country",
    "destination_country",
]


def txn(amount: str, **fields: str) -> Transaction:
    body = {"transaction_id": "t-1", "account_id": "a-1", "timestamp": 1795910300000, **fields}
    text = json.dumps(body)[:-1] + f', "amount": {amount}}}'
    parsed = parse_transaction(text.encode())
    assert isinstance(parsed, Transaction), parsed
    return parsed


def test_the_fields_are_the_earlier_ones_then_the_added_ones() -> None:
    line = decision_line(txn("5"), Decision((), None), POSITION, "builtin")
    assert list(line) == FIRST_FIELDS + ADDED


def amount_text(line: str) -> str:
    return line.split('"amount":', 1)[1].split(",", 1)[0].rstrip("}")


@pytest.mark.parametrize(
    ("literal", "written"),
    [
        ("12.50", "12.50"),
        ("1E+3", "1E+3"),
        ("20000", "20000"),
        ("999999999.999999999999999999", "999999999.999999999999999999"),
        ("5.0e2", "5.0E+2"),  # the exponent's spelling is the decimal's, as on a flagged line
    ],
)
def test_the_amount_is_written_as_the_flagged_line_writes_it(literal: str, written: str) -> None:
    record = txn(literal)
    decision_text = to_json(decision_line(record, FIRED, POSITION, "builtin"))
    flagged_text = to_json(
        flagged_line(record, FIRED, POSITION, datetime(2026, 12, 1, tzinfo=UTC), "builtin")
    )
    assert amount_text(decision_text) == written, decision_text
    assert amount_text(flagged_text) == written  # the flagged line's `transaction`: the same
    assert json.loads(decision_text, parse_float=Decimal)["amount"] == Decimal(literal)


def test_the_merchant_channel_and_countries_are_the_records() -> None:
    record = txn(
        "12.50",
        currency="EUR",
        merchant_id="m-7",
        merchant_category="electronics",
        channel="online",
        origin_country="fr",
        destination_country="US",
    )
    line = json.loads(to_json(decision_line(record, FIRED, POSITION, "v1")))
    assert {key: line[key] for key in ADDED[1:]} == {
        "currency": "EUR",
        "merchant_id": "m-7",
        "merchant_category": "electronics",
        "channel": "online",
        "origin_country": "fr",  # as received, as on a flagged line; readers upper-case it
        "destination_country": "US",
    }
    assert line["flagged"] is True and line["rules"] == ["high_amount"]


def test_absent_fields_are_null_and_the_currency_the_contracts_default() -> None:
    line = json.loads(to_json(decision_line(txn("7"), Decision((), None), POSITION, "builtin")))
    assert line["currency"] == "USD"
    assert [line[key] for key in ADDED[2:]] == [None] * 5
    assert line["amount"] == 7


def test_the_usual_decision_line_takes_the_fast_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Written for every judged transaction: the C encoder, not simplejson."""
    record = txn("12.50", merchant_category="grocery", channel="card_present")
    line = decision_line(record, Decision((), None), POSITION, "builtin")
    reference = _reference_json(line)
    calls: list[object] = []

    def counted(value: object) -> str:
        calls.append(value)
        return ""

    monkeypatch.setattr(lines, "_reference_json", counted)
    assert to_json(line) == reference
    assert calls == []
