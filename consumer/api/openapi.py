"""The OpenAPI document, generated from the Structs the answers are encoded from
(consumer/api/models.py) by `msgspec.json.schema_components`: one source for the shapes, so the
document cannot drift from the code. docs/openapi.json is this document, written by
`python -m consumer.api.openapi docs/openapi.json`; a test fails when the two differ.
"""

from __future__ import annotations

import sys
from typing import Any

import msgspec

from consumer import __version__
from consumer.api.models import (
    CLEAN_EXAMPLE,
    FLAGGED_EXAMPLE,
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    Ready,
    ScoreResponse,
    TransactionSchema,
)

__all__ = ["document", "document_bytes"]

_REF = "#/components/schemas/{name}"


def _json(ref: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": ref}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, **_json({"$ref": _REF.format(name="ErrorResponse")})}


_ERRORS = {
    "400": _error("the body is not a valid transaction: the dead letters' reason"),
    "401": _error("no key, or not a key in force"),
    "413": _error("the body exceeds the limit (1 MiB a record, Kinesis' own)"),
    "429": _error("the key's rate limit; Retry-After says when to try again"),
    "500": _error("an internal error: the request id finds its log line"),
}


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    types = (TransactionSchema, ScoreResponse, BatchRequest, BatchResponse, ErrorResponse, Ready)
    _, components = msgspec.json.schema_components(types, ref_template=_REF)
    components["TransactionSchema"]["examples"] = [CLEAN_EXAMPLE, FLAGGED_EXAMPLE]
    ingest = {
        "name": "ingest",
        "in": "query",
        "required": False,
        "schema": {"type": "boolean", "default": False},
        "description": "also put the record (the body's bytes) on the stream, account id as "
        "partition key; the answer's `ingested` has its shard and sequence number",
    }
    request_id = {
        "name": "X-Request-Id",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": 128},
        "description": "echoed in the answer and in the request's log line; made if absent",
    }
    transaction_body = {
        "required": True,
        **_json({"$ref": _REF.format(name="TransactionSchema")}),
    }
    scored = {"description": "the decision", **_json({"$ref": _REF.format(name="ScoreResponse")})}
    secured: list[dict[str, list[str]]] = [{"bearer": []}]
    not_ready = {"description": "not ready", **_json({"$ref": _REF.format(name="Ready")})}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fraudstream scoring API",
            "version": __version__,
            "description": "One transaction judged now by the engine the stream uses, against "
            "the same state, writing nothing (docs/api.md).",
        },
        "paths": {
            "/v1/score": {
                "post": {
                    "summary": "judge one transaction",
                    "security": secured,
                    "parameters": [ingest, request_id],
                    "requestBody": transaction_body,
                    "responses": {"200": scored, **_ERRORS, "503": _error("ingest failed")},
                }
            },
            "/v1/transactions": {
                "post": {
                    "summary": "judge one transaction and put it on the stream (?ingest=true)",
                    "security": secured,
                    "parameters": [request_id],
                    "requestBody": transaction_body,
                    "responses": {"200": scored, **_ERRORS, "503": _error("ingest failed")},
                }
            },
            "/v1/score:batch": {
                "post": {
                    "summary": "judge up to 500 transactions in order, one Redis round trip",
                    "security": secured,
                    "parameters": [request_id],
                    "requestBody": {
                        "required": True,
                        **_json({"$ref": _REF.format(name="BatchRequest")}),
                    },
                    "responses": {
                        "200": {
                            "description": "one result per transaction, in order",
                            **_json({"$ref": _REF.format(name="BatchResponse")}),
                        },
                        **_ERRORS,
                    },
                }
            },
            "/healthz": {"get": {"summary": "the process is up", "responses": {"200": {}}}},
            "/readyz": {
                "get": {
                    "summary": "Redis answers and a rule set is in force",
                    "responses": {
                        "200": {
                            "description": "ready",
                            **_json({"$ref": _REF.format(name="Ready")}),
                        },
                        "503": not_ready,
                    },
                }
            },
            "/openapi.json": {"get": {"summary": "this document", "responses": {"200": {}}}},
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def document_bytes() -> bytes:
    """The document as served and as kept in docs/openapi.json (sorted keys, indented)."""
    return msgspec.json.format(msgspec.json.encode(document(), order="sorted"), indent=2) + b"\n"


if __name__ == "__main__":
    with open(sys.argv[1], "wb") as out:
        out.write(document_bytes())
