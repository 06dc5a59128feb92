"""Bad input through the real processor (issue #6): each record is dead-lettered with a reason
that names the field and the problem, its bytes are kept, the shard keeps flowing (the valid
records after it are judged), the checkpoint reaches the last record and the worker stays up.

Every case runs as one batch: a valid flagged record, the bad one, another valid flagged record.
The fields and their rules are the table of docs/contract.md ("A transaction").
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest

from consumer.batch.timeliness import too_far_ahead
from consumer.records import Transaction, parse_transaction
from consumer.settings.config import FlushConfig
from tests.support.drive import ARRIVAL, SHARD, Outcome, drive, seq
from tests.support.memory_aws import raw_of

WANT_ID = "must be a string of 1..128 characters"
WANT_AMOUNT = "must be a number > 0 and <= 1e9"
WANT_QUANTUM = "must be a multiple of 1e-18 (no non-zero digit past the 18th decimal place)"
WANT_BALANCE = "must be a number in -1e15..1e15"
WANT_TEXT = "must be a string of at most 256 characters"
WANT_TIME = (
    "must be an ISO-8601 string YYYY-MM-DDTHH:MM[:SS[.fraction]] with a zone "
    "(Z, +HH:MM, +HHMM, +HH) or integer epoch milliseconds"
)
BASE: dict[str, Any] = {
    "transaction_id": "t-bad",
    "account_id": "acct-bad",
    "amount": 12.5,
    "timestamp": "2026-11-28T23:59:00Z",
}


def valid(tid: str, amount: str = "20000", **extra: Any) -> bytes:
    """A valid record that high_amount flags, so that it visibly comes out judged."""
    body = {"transaction_id": tid, "account_id": "acct-good", "timestamp": 1795910300000, **extra}
    return (json.dumps(body)[:-1] + f', "amount": {amount}}}').encode()


def record(**fields: Any) -> bytes:
    """BASE with `fields` replaced (a value of ... removes the field)."""
    body = {**BASE, **fields}
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


def splice(**literals: str) -> bytes:
    """BASE with raw JSON literals for some fields (NaN, 1e10, 1 MB strings ...)."""
    body = {k: v for k, v in BASE.items() if k not in literals}
    text = json.dumps(body)[:-1]
    return (text + "".join(f', "{k}": {v}' for k, v in literals.items()) + "}").encode()


def run_sandwiched(redis_conn: Any, bad: bytes, **settings: Any) -> tuple[Outcome, dict[str, Any]]:
    """valid, bad, valid in one batch; the shared assertions; the bad record's dead letter."""
    out = drive([[valid("before"), bad, valid("after")]], redis_conn, **settings)
    assert out.replies == ["initialize", "processRecords", "shutdownRequested"]
    assert out.checkpoints == [seq(3)]
    assert [line["transaction_id"] for line in out.flagged] == ["before", "after"]
    assert [line["sequence_number"] for line in out.flagged] == [seq(1), seq(3)]
    assert len(out.dead_letters) == 1
    [letter] = out.dead_letters
    assert raw_of(letter) == bad  # every byte recoverable
    assert letter["shard_id"] == SHARD
    assert letter["sequence_number"] == seq(2)
    assert letter["approximate_arrival_timestamp"] == ARRIVAL
    return out, letter


# (case id, record bytes, the exact dead-letter reason)
CASES: list[tuple[str, bytes, str]] = [
    ("not UTF-8", b"\xff\xfe{}", "not valid UTF-8: invalid start byte at byte 0"),
    (
        "truncated UTF-8",
        b'{"transaction_id": "caf\xc3',
        "not valid UTF-8: unexpected end of data at byte 23",
    ),
    (
        "UTF-16",
        '{"a": 1}'.encode("utf-16"),
        "not valid UTF-8: invalid start byte at byte 0",
    ),
    (
        "byte-order mark",
        b"\xef\xbb\xbf" + record(),
        "not valid JSON: starts with a UTF-8 byte-order mark",
    ),
    ("empty", b"", "not valid JSON: Expecting value: line 1 column 1 (char 0)"),
    (
        "not JSON",
        b"hello world",
        "not valid JSON: Expecting value: line 1 column 1 (char 0)",
    ),
    (
        "truncated JSON",
        b'{"transaction_id": "t-b',
        "not valid JSON: Unterminated string starting at: line 1 column 20 (char 19)",
    ),
    (
        "single quotes",
        b"{'transaction_id': 't'}",
        "not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 "
        "(char 1)",
    ),
    ("two objects", b'{"a": 1}{"a": 1}', "not valid JSON: Extra data: line 1 column 9 (char 8)"),
    ("array", b"[1, 2, 3]", "not a JSON object: got an array"),
    ("string", b'"transaction"', "not a JSON object: got a string"),
    ("number", b"42", "not a JSON object: got a number"),
    ("float", b"4.2", "not a JSON object: got a number"),
    ("boolean", b"true", "not a JSON object: got a boolean"),
    ("null", b"null", "not a JSON object: got null"),
    ("amount 0", record(amount=0), f"amount: {WANT_AMOUNT}"),
    ("amount 0.00", splice(amount="0.00"), f"amount: {WANT_AMOUNT}"),
    ("amount negative", record(amount=-5), f"amount: {WANT_AMOUNT}"),
    ("amount -0.01", splice(amount="-0.01"), f"amount: {WANT_AMOUNT}"),
    ("amount NaN", splice(amount="NaN"), "not valid JSON: non-standard constant NaN"),
    (
        "amount Infinity",
        splice(amount="Infinity"),
        "not valid JSON: non-standard constant Infinity",
    ),
    (
        "amount -Infinity",
        splice(amount="-Infinity"),
        "not valid JSON: non-standard constant -Infinity",
    ),
    ("amount 1e10", splice(amount="1e10"), f"amount: {WANT_AMOUNT}"),
    ("amount 1e9 + 0.01", splice(amount="1000000000.01"), f"amount: {WANT_AMOUNT}"),
    ("amount 1e400", splice(amount="1e400"), f"amount: {WANT_AMOUNT}"),
    (
        "amount 5000 digits",
        splice(amount="9" * 5000),
        "not valid JSON: Exceeds the limit (4300 digits) for integer string conversion: "
        "value has 5000 digits",
    ),
    ("amount as string", record(amount="100.00"), f"amount: {WANT_AMOUNT}"),
    ("amount as boolean", record(amount=True), f"amount: {WANT_AMOUNT}"),
    # The bounds (docs/contract.md, "Bounds"): 1e-99999999999 passed 0 < amount <= 1e9 and
    # blinded its account (every later exact sum needed 10^11 digits).
    ("amount 1e-99999999999", splice(amount="1e-99999999999"), f"amount: {WANT_QUANTUM}"),
    ("amount 1e-19", splice(amount="1e-19"), f"amount: {WANT_QUANTUM}"),
    ("amount 19 decimals", splice(amount="12.5000000000000000001"), f"amount: {WANT_QUANTUM}"),
    ("balance 1e16", splice(account_balance="1e16"), f"account_balance: {WANT_BALANCE}"),
    (
        "balance just under -1e15",
        splice(account_balance="-1000000000000000.000000000000000001"),
        f"account_balance: {WANT_BALANCE}",
    ),
    (
        "balance 1e-99999999999",
        splice(account_balance="1e-99999999999"),
        f"account_balance: {WANT_QUANTUM}",
    ),
    ("currency 257 characters", record(currency="U" * 257), f"currency: {WANT_TEXT}"),
    (
        "destination_country 257 characters",
        record(destination_country="D" * 257),
        f"destination_country: {WANT_TEXT}",
    ),
    ("device_id 257 emoji", record(device_id="\U0001f4f1" * 257), f"device_id: {WANT_TEXT}"),
    ("balance as string", record(account_balance="100"), "account_balance: must be a number"),
    ("balance NaN", splice(account_balance="NaN"), "not valid JSON: non-standard constant NaN"),
    (
        "latitude as string",
        record(latitude="52.5", longitude=13.4),
        "latitude: must be a number in -90..90",
    ),
    (
        "longitude as string",
        record(latitude=52.5, longitude="13.4"),
        "longitude: must be a number in -180..180",
    ),
    (
        "latitude without longitude",
        record(latitude=52.5),
        "longitude: missing (latitude and longitude go together)",
    ),
    (
        "longitude without latitude",
        record(longitude=13.4),
        "latitude: missing (latitude and longitude go together)",
    ),
    (
        "latitude null, longitude set",
        record(latitude=None, longitude=13.4),
        "latitude: missing (latitude and longitude go together)",
    ),
    (
        "latitude 90.0001",
        splice(latitude="90.0001", longitude="0"),
        "latitude: must be a number in -90..90",
    ),
    ("latitude -91", record(latitude=-91, longitude=0), "latitude: must be a number in -90..90"),
    (
        "longitude 180.5",
        splice(latitude="0", longitude="180.5"),
        "longitude: must be a number in -180..180",
    ),
    (
        "longitude -1e3",
        splice(latitude="0", longitude="-1e3"),
        "longitude: must be a number in -180..180",
    ),
    (
        "latitude NaN",
        splice(latitude="NaN", longitude="0"),
        "not valid JSON: non-standard constant NaN",
    ),
    ("timestamp does not parse", record(timestamp="yesterday"), f"timestamp: {WANT_TIME}"),
    ("timestamp without zone", record(timestamp="2026-11-28T23:59:00"), f"timestamp: {WANT_TIME}"),
    (
        "timestamp impossible date",
        record(timestamp="2026-02-30T00:00:00Z"),
        f"timestamp: {WANT_TIME}",
    ),
    ("timestamp hour 24", record(timestamp="2026-11-28T24:00:00Z"), f"timestamp: {WANT_TIME}"),
    ("timestamp leap second", record(timestamp="2016-12-31T23:59:60Z"), f"timestamp: {WANT_TIME}"),
    ("timestamp numeric string", record(timestamp="1795910300000"), f"timestamp: {WANT_TIME}"),
    ("timestamp float", splice(timestamp="1795910300000.5"), f"timestamp: {WANT_TIME}"),
    ("timestamp exponent", splice(timestamp="1.7959103e12"), f"timestamp: {WANT_TIME}"),
    ("timestamp boolean", record(timestamp=True), f"timestamp: {WANT_TIME}"),
    (
        "timestamp five years ahead",
        record(timestamp="2031-11-29T00:00:00Z"),
        "timestamp: 2031-11-29T00:00:00Z lies more than 86400 s after the record reached the "
        "stream (2026-11-29T00:00:00.000Z; the limit is FRAUD_TIMESTAMP_MAX_AHEAD_S)",
    ),
    (
        "timestamp in epoch microseconds",
        record(timestamp=1795910300000000),
        "timestamp: 1795910300000000 lies more than 86400 s after the record reached the "
        "stream (2026-11-29T00:00:00.000Z; the limit is FRAUD_TIMESTAMP_MAX_AHEAD_S)",
    ),
    (
        "timestamp in year 9999",
        record(timestamp="9999-12-31T23:59:59.999999999999999999999999999999999999999999999Z"),
        "timestamp: 9999-12-31T23:59:59.99999999999999999999999999999999999999999999"
        "... lies more than 86400 s after the record reached the stream "
        "(2026-11-29T00:00:00.000Z; the limit is FRAUD_TIMESTAMP_MAX_AHEAD_S)",
    ),
    (
        "timestamp 10^4000 ms",
        splice(timestamp="1" + "0" * 4000),
        "timestamp: " + "1" + "0" * 63 + "... lies more than 86400 s after the record reached the "
        "stream (2026-11-29T00:00:00.000Z; the limit is FRAUD_TIMESTAMP_MAX_AHEAD_S)",
    ),
    (
        "account_created_at does not parse",
        record(account_created_at="2020-01-01"),
        f"account_created_at: {WANT_TIME}",
    ),
    (
        "channel unknown",
        record(channel="ONLINE"),
        "channel: must be one of card_present, online, atm, transfer",
    ),
    (
        "nested 100000 levels",
        b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "not valid JSON: nested too deeply",
    ),
    (
        "nested 65 levels",
        splice(extra="[" * 64 + "]" * 64),
        "not valid JSON: nested deeper than 64 levels",
    ),
    (
        "array nested 100000 levels",
        b"[" * 100_000 + b"]" * 100_000,
        "not valid JSON: nested too deeply",
    ),
    (
        "lone surrogate",
        splice(merchant_id='"\\ud800"'),
        "not valid JSON: lone surrogate escape (\\ud800) in a string",
    ),
    (
        "1 MB of garbage",
        b'{"transaction_id": "t", "pad": "' + b"x" * 1_000_000,
        "not valid JSON: Unterminated string starting at: line 1 column 32 (char 31)",
    ),
    (
        "1 MB record with a bad amount",
        splice(amount='"ten"', pad=json.dumps("y" * 1_000_000)),
        f"amount: {WANT_AMOUNT}",
    ),
]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


@pytest.mark.parametrize(
    ("data", "reason"), [c[1:] for c in CASES], ids=[slug(c[0]) for c in CASES]
)
def test_bad_record_is_dead_lettered_with_its_reason_and_the_shard_flows(
    redis_conn: Any, data: bytes, reason: str
) -> None:
    _, letter = run_sandwiched(redis_conn, data)
    assert letter["error"] == reason


# docs/contract.md: the required fields, and values of the wrong type or out of range.
REQUIRED: dict[str, tuple[str, list[Any]]] = {
    "transaction_id": (WANT_ID, [123, True, [], {}, "", "x" * 129, 1.5]),
    "account_id": (WANT_ID, [42, False, ["a"], {"id": "a"}, "", "é" * 129]),
    "amount": (WANT_AMOUNT, ["12.50", "", True, [12.5], {"value": 1}, 0, -1]),
    "timestamp": (WANT_TIME, ["", "now", 1.5, False, [1795910300000], {"ms": 1}]),
}


@pytest.mark.parametrize("field", list(REQUIRED))
@pytest.mark.parametrize("how", ["absent", "null"])
def test_each_required_field_missing(redis_conn: Any, field: str, how: str) -> None:
    _, letter = run_sandwiched(redis_conn, record(**{field: ... if how == "absent" else None}))
    assert letter["error"] == f"{field}: missing"


@pytest.mark.parametrize(
    ("field", "value"),
    [(field, value) for field, (_, values) in REQUIRED.items() for value in values],
)
def test_each_required_field_of_the_wrong_type(redis_conn: Any, field: str, value: Any) -> None:
    _, letter = run_sandwiched(redis_conn, record(**{field: value}))
    assert letter["error"] == f"{field}: {REQUIRED[field][0]}"


# The optional fields of docs/contract.md and a value of the wrong type for each.
OPTIONAL_WRONG: list[tuple[str, Any, str]] = [
    ("currency", 840, "currency: must be a string"),
    ("account_balance", "1000.00", "account_balance: must be a number"),
    ("account_balance", True, "account_balance: must be a number"),
    ("origin_country", 49, "origin_country: must be a string"),
    ("destination_country", ["DE"], "destination_country: must be a string"),
    ("merchant_id", 7, "merchant_id: must be a string"),
    ("merchant_category", {"mcc": 5411}, "merchant_category: must be a string"),
    ("channel", 1, "channel: must be one of card_present, online, atm, transfer"),
    ("device_id", False, "device_id: must be a string"),
    ("ip_address", 3232235777, "ip_address: must be a string"),
    ("account_created_at", "yesterday", f"account_created_at: {WANT_TIME}"),
    ("account_created_at", 1.5, f"account_created_at: {WANT_TIME}"),
]


@pytest.mark.parametrize(("field", "value", "reason"), OPTIONAL_WRONG)
def test_each_optional_field_of_the_wrong_type(
    redis_conn: Any, field: str, value: Any, reason: str
) -> None:
    _, letter = run_sandwiched(redis_conn, record(**{field: value}))
    assert letter["error"] == reason


@pytest.mark.parametrize(
    ("origin", "destination"), [("XX", "QQ"), ("usa", "mex"), ("", "DE"), ("Z9", "z9 ")]
)
def test_unknown_country_codes_are_judged_as_strings(
    redis_conn: Any, origin: str, destination: str
) -> None:
    # docs/contract.md: country codes are checked as strings only (compared case-insensitively),
    # so a code outside ISO-3166 is no reason to drop a transaction unjudged.
    data = valid(
        "odd-countries", amount="12.50", origin_country=origin, destination_country=destination
    )
    out = drive([[valid("before"), data, valid("after")]], redis_conn)
    assert out.dead_letters == []
    assert out.checkpoints == [seq(3)]
    flagged = {line["transaction_id"]: line for line in out.flagged}
    assert set(flagged) == {"before", "after", "odd-countries"}
    assert [r["rule"] for r in flagged["odd-countries"]["reasons"]] == ["cross_border"]


def test_same_country_in_other_case_is_not_cross_border(redis_conn: Any) -> None:
    data = valid("same", amount="12.50", origin_country="xx", destination_country="XX")
    out = drive([[data]], redis_conn)
    assert out.dead_letters == [] and out.flagged == [] and out.checkpoints == [seq(1)]


# -- timestamps far in the future: the contract is silent; we dead-letter (see timeliness.py) ----


@pytest.mark.parametrize(
    ("timestamp", "dead"),
    [
        (ARRIVAL + 86_400_000, False),  # exactly the limit: accepted
        (ARRIVAL + 86_400_001, True),  # a millisecond past it
        ("2026-11-30T00:00:00Z", False),
        ("2026-11-30T00:00:00.000000000001Z", True),
        ("2026-11-30T01:00:00+01:00", False),
        ("2026-11-30T00:00:00-00:01", True),
        (0, False),  # the past is fine: late records and backfills are real
        ("0001-01-01T00:00:00Z", False),
        (-(10**20), False),
    ],
)
def test_the_future_limit_is_exact_and_relative_to_arrival(
    redis_conn: Any, timestamp: Any, dead: bool
) -> None:
    data = record(timestamp=timestamp, amount=20000)
    out = drive([[data]], redis_conn)
    assert out.checkpoints == [seq(1)]
    assert len(out.dead_letters) == int(dead)
    assert len(out.flagged) == int(not dead)
    if dead:
        assert out.dead_letters[0]["error"].startswith(f"timestamp: {timestamp} lies more than")


def test_the_future_limit_is_configurable(redis_conn: Any) -> None:
    data = record(timestamp=ARRIVAL + 61_000, amount=20000)
    out = drive([[data]], redis_conn, timestamp_max_ahead_s=60)
    [letter] = out.dead_letters
    assert "lies more than 60 s after the record reached the stream" in letter["error"]
    assert drive([[data]], redis_conn, first_seq=2).dead_letters == []


def test_a_replay_decides_the_future_limit_the_same(redis_conn: Any) -> None:
    """The limit follows the record's arrival, not the clock: a later replay gives the same."""
    data = record(timestamp=ARRIVAL + 3_600_000)
    txn = parse_transaction(data)
    assert isinstance(txn, Transaction)
    assert too_far_ahead(txn, ARRIVAL, 86_400) is None
    assert too_far_ahead(txn, ARRIVAL - 86_400_000, 86_400) is not None
    assert too_far_ahead(txn, None, 86_400) is None
    first = drive([[data]], redis_conn)
    again = drive([[data]], redis_conn)  # the same record (same position) delivered again
    assert first.dead_letters == again.dead_letters == []


def test_a_future_dated_record_enters_no_state(redis_conn: Any) -> None:
    """Its device stays unknown: a later large amount on it is a new device (docs/contract.md: an
    invalid record enters no state)."""
    future = valid("future", amount="20", device_id="dev-x", timestamp=ARRIVAL + 10 * 86_400_000)
    first = valid("first", amount="20")
    later = valid("later", amount="1500", device_id="dev-x")
    out = drive([[first, future, later]], redis_conn)
    assert [letter["sequence_number"] for letter in out.dead_letters] == [seq(2)]
    [line] = out.flagged
    assert line["transaction_id"] == "later"
    assert [r["rule"] for r in line["reasons"]] == ["new_device_high_amount"]


# -- size ----------------------------------------------------------------------------------------


def test_a_valid_1_mb_record_is_judged_and_passed_through(redis_conn: Any) -> None:
    pad = "z" * 1_000_000
    data = valid("big", pad=pad)
    out = drive([[valid("before"), data, valid("after")]], redis_conn)
    assert out.dead_letters == []
    assert out.checkpoints == [seq(3)]
    lines = {line["transaction_id"]: line for line in out.flagged}
    assert lines["big"]["transaction"]["pad"] == pad  # S3 keeps the record whole
    # SNS takes 256 KiB: the alert goes without the record, which S3 holds.
    alerts = {m["transaction_id"]: m for m in out.sns.messages}
    assert alerts["big"]["transaction_truncated"] is True
    assert "transaction" not in alerts["big"]
    assert alerts["after"]["transaction"]["transaction_id"] == "after"


# -- a batch of 10,000, mostly garbage -------------------------------------------------------------


def garbage(rng: random.Random, n: int) -> tuple[bytes, str]:
    """A broken record of one of many kinds, and the start of the reason it must get."""
    kind = n % 12
    if kind == 0:
        tail = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        return b"\xff" + tail, "not valid UTF-8"
    if kind == 1:
        return record()[: rng.randrange(0, len(record()) - 1)], "not valid JSON"
    if kind == 2:
        return rng.choice([b"[]", b"1", b'"s"', b"null", b"false"]), "not a JSON object"
    if kind == 3:
        field = rng.choice(list(REQUIRED))
        return record(**{field: ...}), f"{field}: missing"
    if kind == 4:
        field = rng.choice(list(REQUIRED))
        return record(**{field: rng.choice(REQUIRED[field][1])}), f"{field}: "
    if kind == 5:
        return splice(amount=rng.choice(["0", "-1", "1e10", '"5"'])), "amount: "
    if kind == 6:
        return splice(amount=rng.choice(["NaN", "Infinity", "-Infinity"])), "not valid JSON"
    if kind == 7:
        return record(latitude=rng.choice([91, -90.5, "1"]), longitude=0), "latitude: "
    if kind == 8:
        return record(longitude=rng.uniform(-180, 180)), "latitude: missing"
    if kind == 9:
        return record(timestamp=rng.choice(["x", "2026-13-01T00:00Z"])), "timestamp: must be"
    if kind == 10:
        return record(timestamp=ARRIVAL * 1000), "timestamp: "
    depth = rng.randrange(65, 3000)
    return splice(extra="[" * depth + "]" * depth), "not valid JSON: nested"


def test_a_10000_record_batch_of_garbage_with_some_valid_ones(redis_conn: Any) -> None:
    rng = random.Random(6)
    batch: list[bytes] = []
    expected_reason: dict[str, str] = {}
    valid_ids: list[str] = []
    for n in range(10_000):
        if n % 97 == 0:
            valid_ids.append(f"v-{n}")
            batch.append(valid(f"v-{n}"))
        else:
            data, reason = garbage(rng, n)
            expected_reason[seq(n + 1)] = reason
            batch.append(data)

    out = drive([batch], redis_conn)

    assert out.replies == ["initialize", "processRecords", "shutdownRequested"]
    assert out.checkpoints == [seq(10_000)]
    # Every bad record dead-lettered once, with the right reason and its bytes.
    letters = {letter["sequence_number"]: letter for letter in out.dead_letters}
    assert len(letters) == len(out.dead_letters) == len(expected_reason)
    assert set(letters) == set(expected_reason)
    for sequence, letter in letters.items():
        assert letter["error"].startswith(expected_reason[sequence]), (sequence, letter["error"])
        assert raw_of(letter) == batch[int(sequence) - 1]
    # Every valid one judged (all of them high amounts: flagged and alerted).
    assert [line["transaction_id"] for line in out.flagged] == valid_ids
    assert sorted(m["transaction_id"] for m in out.sns.messages) == sorted(valid_ids)


def test_garbage_across_many_batches_keeps_checkpointing(redis_conn: Any) -> None:
    rng = random.Random(7)
    batches = [[garbage(rng, n)[0] for n in range(50)] + [valid(f"v-{b}")] for b in range(20)]
    out = drive(batches, redis_conn, flush=FlushConfig(max_records=10))
    assert out.replies.count("processRecords") == 20
    # A full buffer commits after each batch: one checkpoint per batch, at its last record.
    assert out.checkpoints == [seq(51 * (b + 1)) for b in range(20)]
    assert len(out.dead_letters) == 20 * 50
    assert [line["transaction_id"] for line in out.flagged] == [f"v-{b}" for b in range(20)]


def test_a_record_that_breaks_the_judge_is_kept_byte_for_byte(
    redis_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The internal-error dead letter holds the record as received, not a re-encoding of it."""
    import consumer.judging.sequence

    real_judge = consumer.judging.sequence.judge_with_ruleset

    def judge(txn: Transaction, history: Any, ruleset: Any) -> Any:
        if txn.transaction_id == "breaks":
            raise ZeroDivisionError("a bug in a rule")
        return real_judge(txn, history, ruleset)

    monkeypatch.setattr(consumer.judging.sequence, "judge_with_ruleset", judge)
    odd = (
        b' {"transaction_id" : "breaks", "account_id":"acct-good", "amount": 1e5,'
        b' "amount": 2E+4, "timestamp": 1795910300000, "note": "caf\\u00e9"}\n'
    )
    _, letter = run_sandwiched(redis_conn, odd)
    assert letter["error"] == "internal: ZeroDivisionError('a bug in a rule')"
