"""`fraudstream ingest` end to end under the real daemon: a CSV of a few thousand rows (a few of
them bad) ingested, judged by the workers, checked in S3 and Redis; then the same file again,
and nothing doubles (the stream's duplicate detection by transaction_id)."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from consumer.infra.readback import read_jsonl_objects, stream_entries
from consumer.ingest.mapping import CONTRACT_FIELDS
from load_test.synthetic import generate_records
from tests.integration.conftest import Stack, cli
from tests.integration.expectations import (
    assert_s3_matches,
    expected_from_stream,
    wait_for_checkpoints,
)

pytestmark = pytest.mark.integration

ROWS = 3000
PREFIX = "ingest-e2e-"


def synthetic_rows() -> tuple[list[str], list[dict[str, str]]]:
    """The generator's records as CSV rows: every number as the literal it wrote."""
    rows: list[dict[str, str]] = []
    for record in generate_records(ROWS, fraud_ratio=0.05, seed=23):
        fields = json.loads(record.to_entry().data, parse_float=str, parse_int=str)
        fields.pop("expected_rules")
        fields["transaction_id"] = PREFIX + fields["transaction_id"]
        fields["account_id"] = PREFIX + fields["account_id"]
        rows.append(fields)
    columns = [name for name in CONTRACT_FIELDS if any(name in row for row in rows)]
    return columns, rows


# (a change to a good row, the reason the rejects file must give); placed every 300 rows.
BAD = [
    ({"amount": "abc"}, "amount: not a decimal number"),
    ({"amount": "-5"}, "amount: must be a number > 0 and <= 1e9"),
    ({"account_id": ""}, "account_id: missing"),
    ({"channel": "bogus"}, "channel: must be one of card_present, online, atm, transfer"),
    ({"timestamp": "yesterday"}, "timestamp: must be an ISO-8601 string"),
    ({"latitude": "91", "longitude": "0"}, "latitude: must be a number in -90..90"),
]


def write_file(tmp: Path) -> tuple[Path, Path, dict[int, str], set[str]]:
    """The CSV, its mapping, the bad rows' line numbers -> reasons, the good rows' ids."""
    columns, rows = synthetic_rows()
    bad: dict[int, str] = {}
    good: set[str] = set()
    path = tmp / "export.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for index, row in enumerate(rows):
            line = index + 2  # the header is line 1
            if index % 300 == 150 and index // 300 < len(BAD):
                change, reason = BAD[index // 300]
                row = {**row, **change}
                bad[line] = reason
            else:
                good.add(row["transaction_id"])
            writer.writerow([row.get(name, "") for name in columns])
    mapping = tmp / "mapping.yaml"
    mapping.write_text(
        yaml.safe_dump(
            {"fields": {name: {"column": name, "type": CONTRACT_FIELDS[name]} for name in columns}}
        )
    )
    return path, mapping, bad, good


def ingest(stack: Stack, path: Path, mapping: Path) -> dict[str, Any]:
    result = cli(
        "ingest",
        str(path),
        "--mapping",
        str(mapping),
        "--put-api",
        "record",  # kinesis-mock: PutRecord (docs/performance.md)
        "--json",
        env=stack.env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def ours(data: bytes) -> dict[str, Any] | None:
    """The record if it is one of this file's rows (the stream holds other tests' too)."""
    try:
        record = json.loads(data)
    except (ValueError, RecursionError):  # other tests' poison records, 100,000 levels deep
        return None
    if isinstance(record, dict) and str(record.get("transaction_id")).startswith(PREFIX):
        return record
    return None


def flagged_ids(stack: Stack) -> Counter[str]:
    lines = read_jsonl_objects(stack.client("s3"), stack.env["FRAUD_BUCKET"], "flagged/")
    return Counter(
        line["transaction_id"] for _, line in lines if line["transaction_id"].startswith(PREFIX)
    )


def history_entries(stack: Stack, accounts: set[str]) -> int:
    """Entries of the accounts' recent history in Redis (one per judged transaction)."""
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    try:
        return sum(int(client.zcard(f"fs:acct:{{{a}}}:recent")) for a in accounts)
    finally:
        client.close()


def test_a_csv_ingested_twice_is_judged_once(stack: Stack, tmp_path: Path) -> None:
    path, mapping, bad, good = write_file(tmp_path)

    first = ingest(stack, path, mapping)
    assert (first["rows_read"], first["put"], first["rejected"], first["failed"]) == (
        ROWS,
        ROWS - len(bad),
        len(bad),
        0,
    )
    rejects = [json.loads(x) for x in Path(f"{path}.rejects.jsonl").read_text().splitlines()]
    assert {r["row"] for r in rejects} == set(bad)  # exactly the bad rows
    for reject in rejects:
        assert reject["reason"].startswith(bad[reject["row"]]), reject

    wait_for_checkpoints(stack)
    expected = expected_from_stream(stack)
    assert_s3_matches(stack, expected)
    mine = {
        seq: record
        for _, seq, data, _ in stream_entries(stack.client("kinesis"), stack.env["FRAUD_STREAM"])
        if (record := ours(data)) is not None
    }
    assert {r["transaction_id"] for r in mine.values()} == good  # every good row, nothing else
    should_flag = {mine[seq]["transaction_id"] for seq in expected.flagged if seq in mine}
    assert len(should_flag) >= 50  # the file really exercises the rules
    once = flagged_ids(stack)
    assert set(once) == should_flag and set(once.values()) == {1}
    accounts = {r["account_id"] for r in mine.values()}
    judged = history_entries(stack, accounts)
    assert judged == len(good)

    # The same file again: every row put again, every one a duplicate downstream.
    second = ingest(stack, path, mapping)
    assert (second["put"], second["rejected"], second["failed"]) == (len(good), len(bad), 0)
    wait_for_checkpoints(stack)
    again = expected_from_stream(stack)
    assert_s3_matches(stack, again)  # duplicates are never flagged, no id in two lines
    assert len(again.duplicates) - len(expected.duplicates) == len(good)
    assert flagged_ids(stack) == once  # each flagged transaction still exactly once
    assert history_entries(stack, accounts) == judged  # the state counts each once
