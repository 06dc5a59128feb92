"""Fuzzing the decoder and the processor's batch handling with hypothesis (issue #6).

Properties:
- the decoder never raises, whatever the bytes; an invalid record's reason names a contract
  field or starts with "not "; a valid record re-encodes (as the flagged line and the alert carry
  it) to bytes that decode to the same transaction;
- the real processor, over the daemon protocol, never exits on any mix of random bytes, random
  JSON, mutated valid records and valid ones in batches of random sizes: every record is either
  dead-lettered (exactly the invalid ones, bytes kept) or judged (its id is in Redis, and exactly
  the records the contract oracle flags are flagged), and the checkpoint reaches the last record.

CI runs a few hundred examples per property. FRAUD_FUZZ_EXAMPLES=20000 runs a long campaign:
    FRAUD_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/unit/test_fuzz_bad_input.py
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.batch.lines import to_json
from consumer.batch.timeliness import too_far_ahead
from consumer.records import InvalidRecord, Transaction, parse_transaction
from consumer.rules.config import RulesConfig
from tests.support.drive import ARRIVAL, drive, seq
from tests.support.memory_aws import raw_of
from tests.support.oracle import reference_decisions

EXAMPLES = int(os.environ.get("FRAUD_FUZZ_EXAMPLES", "300"))
TOTALS: Counter[str] = Counter()  # over every example run, printed at the end (pytest -s)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FIELDS = [
    "transaction_id",
    "account_id",
    "amount",
    "timestamp",
    "currency",
    "account_balance",
    "origin_country",
    "destination_country",
    "latitude",
    "longitude",
    "merchant_id",
    "merchant_category",
    "channel",
    "device_id",
    "ip_address",
    "account_created_at",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

GOOD_AMOUNTS = [
    "20000",
    "1",
    "4.99",
    "5.00",
    "999.99",
    "1000",
    "10000",
    "10000.01",
    "1e9",
    "1e-18",
    "12.50000000000000000000",
]
BAD_AMOUNTS = ["0", "-1", "1e10", '"12"', "null", "1e-19", "1e-99999999999"]
# Balances written as literals, at and past the bounds (a zero of exponent -99999999999 is valid).
BALANCE_LITERALS = [
    "0e-99999999999",
    "1e15",
    "-1e15",
    "999999999999999.999999999999999999",
    "1e16",
    "1e-19",
    "1e-99999999999",
]
GOOD_TIMES: list[Any] = [
    ARRIVAL - 60_000,
    ARRIVAL - 30_000,
    ARRIVAL,
    "2026-11-28T23:59:00Z",
    "2026-11-28T23:59:30.5+00:30",
    0,
]
BAD_TIMES: list[Any] = [
    ARRIVAL + 86_400_001,  # past the future limit
    ARRIVAL * 1000,  # epoch microseconds
    "2031-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "1795910300000",
]


@st.composite
def plausible_records(draw: st.DrawFn) -> bytes:
    """Mostly valid transactions over few accounts, so that rules fire and state is shared."""
    body: dict[str, Any] = {
        "transaction_id": f"t{draw(st.integers(0, 30))}",
        "account_id": f"a{draw(st.integers(0, 3))}",
        "timestamp": draw(st.sampled_from(GOOD_TIMES * 4 + BAD_TIMES)),
    }
    if draw(st.booleans()):
        body["latitude"], body["longitude"] = draw(
            st.sampled_from([(52.52, 13.405), (40.7128, -74.006), (48.85, 2.35), (91, 0)])
        )
    if draw(st.booleans()):
        body["device_id"] = draw(st.sampled_from(["d1", "d2"] * 4 + ["d" * 257]))
    if draw(st.booleans()):
        body["origin_country"] = draw(st.sampled_from(["DE", "fr", "XX"]))
        body["destination_country"] = draw(st.sampled_from(["DE", "FR", "zz"]))
    if draw(st.booleans()):
        body["account_balance"] = draw(st.sampled_from([1000, 1111.11, 50000, "1"]))
    if draw(st.integers(0, 4)) == 4:
        body[draw(st.sampled_from(FIELDS))] = draw(json_values)  # a field of any value or type
    text = json.dumps(body)
    if "account_balance" not in body and draw(st.integers(0, 5)) == 0:
        text = text[:-1] + f', "account_balance": {draw(st.sampled_from(BALANCE_LITERALS))}}}'
    amount = draw(st.sampled_from(GOOD_AMOUNTS * 4 + BAD_AMOUNTS))
    if "amount" not in body:
        text = text[:-1] + f', "amount": {amount}}}'
    return text.encode()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A plausible record with a few bytes flipped, deleted, inserted or cut."""
    data = bytearray(draw(plausible_records()))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "delete", "insert", "cut", "token"]))
        if op == "flip":
            data[at] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[at]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif op == "cut":
            del data[at:]
        else:
            token = draw(st.sampled_from([b"NaN", b"[", b"}", b'"', b"\\ud800", b"1e999", b"-"]))
            data[at:at] = token
    return bytes(data)


any_record = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    plausible_records(),
    plausible_records(),
    mutated(),
    mutated(),
)


def _reason_is_clear(reason: str) -> bool:
    return reason.startswith("not ") or reason.split(":", 1)[0] in FIELDS


@FUZZ
@given(any_record)
def test_fuzz_decoder_never_raises_and_reasons_name_the_problem(data: bytes) -> None:
    result = parse_transaction(data)
    if isinstance(result, InvalidRecord):
        assert _reason_is_clear(result.reason), result.reason
        return
    assert isinstance(result, Transaction)
    # A flagged line carries the record re-encoded (outputs.to_json): it must decode the same.
    again = parse_transaction(to_json(result.raw).encode())
    assert isinstance(again, Transaction), again
    assert again.transaction_id == result.transaction_id
    assert again.account_id == result.account_id
    assert again.amount == result.amount and again.event_time == result.event_time
    assert (again.latitude, again.longitude) == (result.latitude, result.longitude)


@FUZZ
@given(st.binary(max_size=2000))
def test_fuzz_decoder_on_raw_bytes(data: bytes) -> None:
    result = parse_transaction(data)
    assert isinstance(result, Transaction | InvalidRecord)
    if isinstance(result, InvalidRecord):
        assert _reason_is_clear(result.reason), result.reason


def expected_invalid(data: bytes) -> str | None:
    """The reason the consumer must give, or None for a record it must judge."""
    parsed = parse_transaction(data)
    if isinstance(parsed, InvalidRecord):
        return parsed.reason
    return too_far_ahead(parsed, ARRIVAL, 86_400)


@pytest.fixture(scope="module", autouse=True)
def _print_totals() -> Iterator[None]:
    yield
    if TOTALS:
        print(f"\nfuzzed processor runs: {dict(TOTALS)}")


@FUZZ
@given(
    st.lists(st.lists(any_record, min_size=0, max_size=40), min_size=1, max_size=5),
)
def test_fuzz_processor_batches_conserve_every_record(
    redis_conn: redis.Redis, batches: list[list[bytes]]
) -> None:
    redis_conn.flushall()
    records = [data for batch in batches for data in batch]

    out = drive(batches, redis_conn)  # a SystemExit here fails the test: the worker must stay up

    assert out.replies == ["initialize", *["processRecords"] * len(batches), "shutdownRequested"]
    if records:
        assert out.checkpoints[-1] == seq(len(records))
    else:
        assert out.checkpoints == []
    invalid = {seq(n + 1): r for n, data in enumerate(records) if (r := expected_invalid(data))}
    letters = {letter["sequence_number"]: letter for letter in out.dead_letters}
    assert len(letters) == len(out.dead_letters)  # each at most once
    assert set(letters) == set(invalid)
    for sequence, letter in letters.items():
        assert letter["error"] == invalid[sequence]
        assert raw_of(letter) == records[int(sequence) - 1]
    # Every other record was judged: its transaction id reached the state (duplicates included,
    # they share the id), and exactly the records the contract's oracle flags are flagged.
    judged = [(seq(n + 1), data) for n, data in enumerate(records) if seq(n + 1) not in invalid]
    for _, data in judged:
        txn = parse_transaction(data)
        assert isinstance(txn, Transaction)
        assert redis_conn.exists(f"fs:txn:{{{txn.transaction_id}}}")
    outcomes = reference_decisions(judged, RulesConfig())
    flagged = {position: rules for position, outcome, rules in outcomes if rules}
    assert {
        line["sequence_number"]: frozenset(r["rule"] for r in line["reasons"])
        for line in out.flagged
    } == flagged
    assert len(out.flagged) + len(out.dead_letters) <= len(records)
    TOTALS.update(
        runs=1,
        batches=len(batches),
        records=len(records),
        dead_lettered=len(letters),
        judged=len(judged),
        flagged=len(out.flagged),
    )


def test_mutations_reach_both_outcomes() -> None:
    """The strategies are not degenerate: they yield valid, invalid and flagged records."""
    seen: set[str] = set()

    @settings(max_examples=200, deadline=None)
    @given(any_record)
    def collect(data: bytes) -> None:
        parsed = parse_transaction(data)
        if isinstance(parsed, InvalidRecord):
            seen.add("invalid")
        else:
            seen.add("valid")
            if parsed.amount > Decimal(10000):
                seen.add("high")

    collect()
    assert seen == {"valid", "invalid", "high"}
