"""The API's request and response shapes, as msgspec Structs: what the answers are encoded from
and what the OpenAPI document (consumer/api/openapi.py) is generated from.

The transaction itself is validated by `consumer.records.parse_transaction`, the stream's own
check, never by a Struct here: a body is refused with the reason a dead letter would carry.
`TransactionSchema` only describes the contract's record (docs/contract.md section 1) for the
document; tests/unit/api/test_openapi.py holds it to the validator (its required fields are the
ones whose absence parse_transaction refuses, its examples parse).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

__all__ = [
    "BatchItem",
    "BatchRequest",
    "BatchResponse",
    "Contribution",
    "ErrorResponse",
    "Ingested",
    "Ready",
    "Reason",
    "ScoreResponse",
    "TransactionSchema",
]

Id = Annotated[str, Meta(min_length=1, max_length=128)]
Text = Annotated[str, Meta(max_length=256)]
Time = Annotated[
    str | int,
    Meta(
        description="ISO-8601 with a zone (`2026-11-29T00:00:00Z`) or integer epoch "
        "milliseconds (docs/contract.md, 'Timestamps')"
    ),
]

CLEAN_EXAMPLE = {
    "transaction_id": "t-1001",
    "account_id": "acct-42",
    "amount": 25.5,
    "timestamp": "2026-11-29T10:00:00Z",
    "currency": "EUR",
    "merchant_id": "m-7",
    "channel": "online",
}
FLAGGED_EXAMPLE = {
    "transaction_id": "t-1002",
    "account_id": "acct-42",
    "amount": 20000,
    "timestamp": 1795910300000,
}


class TransactionSchema(msgspec.Struct, forbid_unknown_fields=False, rename=None):
    """One transaction in the contract's record format (docs/contract.md section 1). Any other
    field is kept and passed through; numbers are read exactly as written."""

    transaction_id: Id
    account_id: Id
    amount: Annotated[float, Meta(gt=0, le=1e9, description="exact decimal, multiple of 1e-18")]
    timestamp: Time
    currency: Text | None = None
    account_balance: Annotated[float, Meta(ge=-1e15, le=1e15)] | None = None
    origin_country: Text | None = None
    destination_country: Text | None = None
    latitude: Annotated[float, Meta(ge=-90, le=90, description="with longitude")] | None = None
    longitude: Annotated[float, Meta(ge=-180, le=180, description="with latitude")] | None = None
    merchant_id: Text | None = None
    merchant_category: Text | None = None
    channel: Literal["card_present", "online", "atm", "transfer"] | None = None
    device_id: Text | None = None
    ip_address: Text | None = None
    account_created_at: Time | None = None


class Reason(msgspec.Struct):
    """A rule that fired (as on a flagged line): its id and, for people, why."""

    rule: str
    detail: str


class Contribution(msgspec.Struct):
    """A feature's push on the model's score, in log-odds (the model_score reason's detail)."""

    feature: str
    value: float


class Ingested(msgspec.Struct):
    """Where `?ingest=true` put the record."""

    shard_id: str
    sequence_number: str


class ScoreResponse(msgspec.Struct, omit_defaults=False):
    """The decision on one transaction, judged now against the account's state in Redis."""

    transaction_id: str
    flagged: bool
    severity: Literal["low", "medium", "high"] | None
    reasons: list[Reason]
    rules_version: str
    model_version: str | None = None
    model_score: float | None = None
    model_contributions: list[Contribution] = []
    # The transaction id was seen by the stream (at another position) within the duplicate
    # window: the stream would not judge this record, so neither does the API (not flagged,
    # no reasons); its verdict is the one given when it was streamed (docs/api.md).
    duplicate: bool = False
    latency_ms: float = 0.0
    ingested: Ingested | None = None


class BatchRequest(msgspec.Struct):
    """Up to 500 transactions, judged in order as if streamed in that order."""

    transactions: Annotated[list[TransactionSchema], Meta(min_length=1, max_length=500)]


class BatchItem(msgspec.Struct, omit_defaults=False):
    """One transaction's outcome: `status` 200 with its `decision`, else its own error."""

    index: int
    status: int
    decision: ScoreResponse | None = None
    error: str | None = None


class BatchResponse(msgspec.Struct):
    results: list[BatchItem]
    rules_version: str
    model_version: str | None
    latency_ms: float


class ErrorResponse(msgspec.Struct):
    """Every error: `error` a short code, `reason` for people (for a 400, the dead letters'
    reason), `request_id` to find the request's log line."""

    error: str
    reason: str
    request_id: str


class Ready(msgspec.Struct):
    ready: bool
    redis: bool
    rules_version: str | None
    model_version: str | None
