"""In-memory S3 and SNS clients with just the calls the sinks make, for fast processor tests.

The processor, the pipeline, the sinks and the checkpoint policy stay real; only the network
goes. moto covers the real request shapes in test_processor.py; these keep suites of hundreds
of runs (parametrised bad input, fuzzing) fast.
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any


class MemoryS3:
    """`put_object` into a dict; `lines(prefix)` reads the gzip JSON Lines back."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.puts = 0

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        self.objects[Key] = Body
        self.puts += 1
        return {"ETag": '"memory"'}

    def lines(self, prefix: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for key in sorted(self.objects):
            if key.startswith(prefix):
                body = gzip.decompress(self.objects[key])
                found += [json.loads(line) for line in body.splitlines()]
        return found

    def dead_letters(self) -> list[dict[str, Any]]:
        return self.lines("dead-letter/")

    def flagged(self) -> list[dict[str, Any]]:
        return self.lines("flagged/")


def raw_of(letter: dict[str, Any]) -> bytes:
    """The record's bytes as the dead letter keeps them."""
    return base64.b64decode(letter["data"], validate=True)


class MemorySns:
    """`publish_batch` that accepts every entry and keeps the messages."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def publish_batch(
        self, *, TopicArn: str, PublishBatchRequestEntries: list[dict[str, Any]]
    ) -> dict[str, Any]:
        self.messages += [json.loads(e["Message"]) for e in PublishBatchRequestEntries]
        return {"Successful": [{"Id": e["Id"]} for e in PublishBatchRequestEntries], "Failed": []}
