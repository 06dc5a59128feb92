"""The OpenAPI document: what docs/openapi.json holds, and its transaction schema held to the
stream's validator (consumer.records.parse_transaction), the one that decides."""

from __future__ import annotations

import json
from pathlib import Path

from consumer.api.openapi import document, document_bytes
from consumer.records import InvalidRecord, Transaction, parse_transaction

REPO = Path(__file__).resolve().parents[3]


def test_the_docs_file_is_the_generated_document() -> None:
    """Regenerate with `python -m consumer.api.openapi docs/openapi.json`."""
    assert (REPO / "docs/openapi.json").read_bytes() == document_bytes()


def schema() -> dict[str, object]:
    return document()["components"]["schemas"]["TransactionSchema"]  # type: ignore[no-any-return]


def test_the_examples_are_valid_transactions() -> None:
    examples = schema()["examples"]
    assert isinstance(examples, list) and examples
    for example in examples:
        assert isinstance(parse_transaction(json.dumps(example).encode()), Transaction)


def test_required_fields_are_those_the_validator_refuses_without() -> None:
    full = {
        "transaction_id": "t",
        "account_id": "a",
        "amount": 1,
        "timestamp": 1795910300000,
        "currency": "USD",
        "account_balance": 10,
        "origin_country": "FR",
        "destination_country": "DE",
        "latitude": 1.0,
        "longitude": 2.0,
        "merchant_id": "m",
        "merchant_category": "c",
        "channel": "online",
        "device_id": "d",
        "ip_address": "1.2.3.4",
        "account_created_at": 1795910000000,
    }
    properties = schema()["properties"]
    assert isinstance(properties, dict) and set(properties) == set(full)
    refused = set()
    for field in full:
        record = {k: v for k, v in full.items() if k != field}
        if field in ("latitude", "longitude"):  # both or neither: dropping both is fine
            record.pop("latitude", None), record.pop("longitude", None)
        if isinstance(parse_transaction(json.dumps(record).encode()), InvalidRecord):
            refused.add(field)
    required = schema()["required"]
    assert isinstance(required, list) and set(required) == refused
