"""The report on the load test's outputs gives the figures the load test produced.

Path: the load test's generator (load_test/synthetic.py, realistic mode: fraud labels, noise,
hard fraud) -> the real BatchPipeline (contract rules, in-memory state) -> the real
S3JsonLinesBatch writers with an S3 client that puts objects into a directory (the bucket's
layout, keys and gzip bytes as in S3) -> `fraudstream report` on that directory, with the
generator's fraud labels as a label file. Cheapest faithful path: everything that shapes the
outputs is the production code, without the daemon and the stack (seconds instead of minutes).

The expected figures are computed from the generator alone: a valid record's `expected_rules`
are exactly the rules that fire (tests/load_test/test_synthetic.py holds the generator to
that), its `fraud` label is the truth (frauds the rules miss included: the fraud loss), its
amount, merchant, channel and countries are in the record.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from consumer.batch.pipeline import BatchPipeline
from consumer.records import Transaction, parse_transaction
from consumer.report.run import ReportRequest, build
from consumer.settings.config import Settings
from consumer.sinks.s3_batches import (
    S3JsonLinesBatch,
    dead_letter_key,
    decisions_key,
    flagged_key,
)
from consumer.worker.wiring import pipeline_settings
from load_test.labelled import SimulatedClock
from load_test.synthetic import SyntheticRecord, TransactionGenerator
from tests.support.fakes import CollectingAlerts, MemoryStateStore
from tests.unit.worker.test_stream_properties import FakeRecord

RECORDS = 6000


def is_fraud(record: SyntheticRecord) -> bool:
    """The realistic generator's label: its record's `fraud` (true for every record a fraudster
    made, the ones the rules miss included), the truth the label file carries."""
    return bool(json.loads(record.data)["fraud"])


BATCH = 200
START = datetime(2026, 12, 1, 23, 40, tzinfo=UTC)  # 6000 records at 2/s: 50 minutes


class DirS3:
    """put_object into a directory: the key is the path."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        path = self.root / Key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(Body)
        return {}


def _run(root: Path) -> list[tuple[SyntheticRecord, Transaction | None]]:
    settings = Settings(bucket="b", topic_arn="arn:aws:sns:us-east-1:1:t", redis_url="")
    s3 = DirS3(root)

    def sink(name: str, layout: Any) -> S3JsonLinesBatch:
        return S3JsonLinesBatch(name, s3, "b", "", layout, settings.flush, settings.retry)

    flagged, dead, decisions = (
        sink("flagged", flagged_key),
        sink("dead_letters", dead_letter_key),
        sink("decisions", decisions_key),
    )
    pipeline: BatchPipeline[Any] = BatchPipeline(
        "shardId-000000000000",
        pipeline_settings(settings),
        flagged,
        dead,
        CollectingAlerts(),
        MemoryStateStore(),
        decisions=decisions,
    )
    generator = TransactionGenerator(
        accounts=300,
        fraud_ratio=0.05,
        invalid_ratio=0.01,
        seed=24,
        now=SimulatedClock(START, 0.5),
        realistic=True,
    )
    seen: list[tuple[SyntheticRecord, Transaction | None]] = []
    batch: list[FakeRecord] = []
    arrival = int(START.timestamp() * 1000)
    for n, record in enumerate(generator.records(RECORDS)):
        txn = parse_transaction(record.data)
        if isinstance(txn, Transaction):
            arrival = int(txn.event_time * 1000) + 200  # arrives 0.2 s after the event
            seen.append((record, txn))
        else:
            seen.append((record, None))
        batch.append(FakeRecord(record.data, f"{n + 1:056d}", 0, arrival))
        if len(batch) == BATCH:
            pipeline.process(batch)
            pipeline.settle_in_flight()
            batch = []
            for out in (flagged, dead, decisions):
                if out.is_full():
                    out.flush()
    if batch:
        pipeline.process(batch)
    pipeline.settle_in_flight()
    for out in (flagged, dead, decisions):
        out.flush()
    pipeline.close()
    labels = root / "labels"
    labels.mkdir()
    with (labels / "load-test.jsonl").open("w") as out:
        for record, txn in seen:
            if txn is not None:
                ms = int(txn.event_time * 1000)
                label = {
                    "transaction_id": txn.transaction_id,
                    "is_fraud": is_fraud(record),
                    "labelled_at": ms + 86_400_000,
                    "account_id": txn.account_id,
                    "event_time": ms,
                }
                out.write(json.dumps(label) + "\n")
    return seen


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[Any]]:
    root = tmp_path_factory.mktemp("bucket")
    seen = _run(root)
    report = build(ReportRequest(date(2026, 12, 1), date(2026, 12, 2), str(root)))
    return report, seen


def test_the_run_spans_two_days_with_frauds_and_invalid_records(
    outcome: tuple[dict[str, Any], list[Any]],
) -> None:
    report, seen = outcome
    assert [d["dt"] for d in report["drift"]["by_day"]] == ["2026-12-01", "2026-12-02"]
    assert sum(1 for r, t in seen if t is not None and is_fraud(r)) > 100
    invalid = sum(1 for _, txn in seen if txn is None)
    assert invalid > 10
    assert report["headline"]["dead_letters"]["count"] == invalid


def test_flagged_count_value_and_fraud_rate_match_the_generator(
    outcome: tuple[dict[str, Any], list[Any]],
) -> None:
    report, seen = outcome
    valid = [(r, t) for r, t in seen if t is not None]
    flagged = [(r, t) for r, t in valid if r.expected_rules]
    value = sum((Decimal(str(t.raw["amount"])) for _, t in flagged), Decimal(0))
    h = report["headline"]
    assert h["judged"]["count"] == len(valid)
    assert h["flagged"]["count"] == len(flagged)
    assert h["flagged"]["value"] == pytest.approx(float(value), abs=0.01)
    frauds = sum(1 for r, _ in valid if is_fraud(r))
    assert h["fraud"]["frauds"] == frauds
    assert h["fraud"]["rate"] == round(frauds / len(valid), 6)
    caught = [(r, t) for r, t in flagged if is_fraud(r)]
    assert h["fraud"]["caught"] == len(caught)
    assert h["fraud"]["missed"] == frauds - len(caught)
    caught_value = sum((Decimal(str(t.raw["amount"])) for _, t in caught), Decimal(0))
    assert h["fraud"]["caught_value"] == pytest.approx(float(caught_value), abs=0.01)


def test_per_rule_counts_and_precision_match_the_generator(
    outcome: tuple[dict[str, Any], list[Any]],
) -> None:
    report, seen = outcome
    fired: Counter[str] = Counter()
    true_hits: Counter[str] = Counter()
    for record, txn in seen:
        if txn is None:
            continue
        for rule in record.expected_rules:
            fired[rule] += 1
            true_hits[rule] += is_fraud(record)
    assert len(fired) >= 3
    assert {r["rule"]: r["flagged"] for r in report["breakdowns"]["rule"]} == dict(fired)
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    for row in report["quality"]["rules"]:
        tp[row["rule"]] += row["tp"]
        fp[row["rule"]] += row["fp"]
    for rule, count in fired.items():
        assert tp[rule] + fp[rule] == count, rule
        assert tp[rule] == true_hits[rule], rule
        assert tp[rule] / count == pytest.approx(true_hits[rule] / fired[rule])


def _by(rows: list[tuple[SyntheticRecord, dict[str, Any]]], key: Any) -> dict[Any, dict[str, Any]]:
    """The generator's own per-group figures: judged, judged value, flagged, frauds, their value
    and the value of frauds not flagged."""
    groups: dict[Any, dict[str, Any]] = {}
    for record, body in rows:
        amount = Decimal(str(body["amount"]))
        flagged = bool(record.expected_rules)
        g = groups.setdefault(
            key(body),
            {
                "judged": 0,
                "judged_value": Decimal(0),
                "flagged": 0,
                "frauds": 0,
                "missed": Decimal(0),
            },
        )
        g["judged"] += 1
        g["judged_value"] += amount
        g["flagged"] += flagged
        g["frauds"] += is_fraud(record)
        if is_fraud(record) and not flagged:
            g["missed"] += amount
    return groups


def test_value_judged_fraud_loss_and_breakdowns_over_judged_match_the_generator(
    outcome: tuple[dict[str, Any], list[Any]],
) -> None:
    """From the records' own JSON (not the parser's Transaction): the value judged, the value of
    labelled frauds not flagged (the fraud loss) and per merchant category, channel and country
    pair every judged transaction, not only the flagged ones."""
    report, seen = outcome
    rows = [
        (record, json.loads(record.data, parse_float=Decimal))
        for record, txn in seen
        if txn is not None
    ]
    total = _by(rows, lambda body: "all")["all"]
    h = report["headline"]
    assert report["breakdowns_over"] == "judged"
    assert h["judged"]["value"] == pytest.approx(float(total["judged_value"]), abs=0.01)
    assert h["fraud"]["missed_value"] == pytest.approx(float(total["missed"]), abs=0.01)
    assert total["missed"] > 0 and total["judged"] > total["flagged"] > 0
    frauds_value = sum(
        (Decimal(str(body["amount"])) for record, body in rows if is_fraud(record)), Decimal(0)
    )
    assert h["fraud"]["frauds_value"] == pytest.approx(float(frauds_value), abs=0.01)

    def check(key: str, expected: dict[Any, dict[str, Any]], label: Any) -> None:
        got = {label(row): row for row in report["breakdowns"][key]}
        assert set(got) == set(expected), key
        assert len(got) >= 2, key
        for group, want in expected.items():
            row = got[group]
            assert (row["judged"], row["flagged"], row["frauds"]) == (
                want["judged"],
                want["flagged"],
                want["frauds"],
            ), (key, group)
            assert row["judged_value"] == pytest.approx(float(want["judged_value"]), abs=0.01)
            assert row["missed_value"] == pytest.approx(float(want["missed"]), abs=0.01)
            assert row["flag_rate"] == round(want["flagged"] / want["judged"], 6)

    def field(name: str) -> Any:
        return lambda body: body.get(name) or "(none)"

    check(
        "merchant_category", _by(rows, field("merchant_category")), lambda r: r["merchant_category"]
    )
    check("channel", _by(rows, field("channel")), lambda r: r["channel"])
    check(
        "country_pair",
        _by(
            rows,
            lambda body: (
                (body.get("origin_country") or "(none)").upper(),
                (body.get("destination_country") or "(none)").upper(),
            ),
        ),
        lambda r: (r["origin_country"], r["destination_country"]),
    )
