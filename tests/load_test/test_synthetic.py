"""The synthetic generator's labels are the truth: every valid record's ``expected_rules`` is
exactly what the contract's rules fire on it (tests.support.oracle, default settings), given the
records the generator emitted before it, whatever the clock does."""

from __future__ import annotations

import json
import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from consumer.rules.config import RulesConfig
from load_test.synthetic import FRAUD_ARCHETYPES, SyntheticRecord, TransactionGenerator
from tests.support.oracle import reference_decisions

START = datetime(2026, 11, 24, 9, 0, 0, 123000, tzinfo=UTC)


def stepping_clock(step_ms: Callable[[random.Random], float], seed: int = 1) -> Any:
    """A fake clock: every reading advances it by step_ms(rng) milliseconds."""
    moment = [START]
    rng = random.Random(seed)

    def now() -> datetime:
        current = moment[0]
        moment[0] = current + timedelta(milliseconds=step_ms(rng))
        return current

    return now


def load_test_clock() -> Any:
    """300 records/s produced in 0.1 s ticks (load_test.producer.run_generate): 30 records
    about 50 us apart, then the next tick."""
    return stepping_clock(lambda rng: 98.5 if rng.random() < 1 / 30 else 0.05)


CLOCKS: dict[str, tuple[Any, int]] = {
    # name: (clock factory, ordinary accounts)
    "1-20 ms": (lambda: stepping_clock(lambda rng: rng.randint(1, 20)), 5000),
    "1-20 ms, too few accounts": (lambda: stepping_clock(lambda rng: rng.randint(1, 20)), 1000),
    "0 ms (burst)": (lambda: stepping_clock(lambda rng: 0), 1000),
    "load test ticks": (load_test_clock, 50_000),
    "1 s": (lambda: stepping_clock(lambda rng: 1000), 1000),
    "30 s": (lambda: stepping_clock(lambda rng: 30_000), 200),
}


def generate(clock: str, count: int = 5000, seed: int = 17, **kw: Any) -> list[SyntheticRecord]:
    factory, accounts = CLOCKS[clock]
    kw.setdefault("fraud_ratio", 0.05)
    kw.setdefault("invalid_ratio", 0.02)
    gen = TransactionGenerator(accounts=accounts, seed=seed, now=factory(), **kw)
    return list(gen.records(count))


def oracle(records: list[SyntheticRecord]) -> list[tuple[str, str, frozenset[str]]]:
    return reference_decisions(
        [(str(i), record.data) for i, record in enumerate(records)], RulesConfig()
    )


def parse(record: SyntheticRecord) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(record.data, parse_float=Decimal)
    return obj


TWO_STEP_RULE = {
    "account_takeover": "new_device_high_amount",
    "impossible_travel": "impossible_travel",
}


@pytest.mark.parametrize("clock", list(CLOCKS))
def test_labels_are_exactly_what_the_rules_fire(clock: str) -> None:
    records = generate(clock)
    decisions = oracle(records)
    mismatches = []
    for record, (_, outcome, fired) in zip(records, decisions, strict=True):
        if record.is_invalid:
            assert outcome == "invalid", record
            continue
        assert outcome == "judged", record  # no transaction id repeats
        assert parse(record)["expected_rules"] == list(record.expected_rules)
        if set(fired) != set(record.expected_rules):
            mismatches.append((record.kind, sorted(fired), record.expected_rules))
        # The kind agrees with the label.
        if record.kind == "ordinary" or record.kind.startswith("setup:"):
            assert record.expected_rules == ()
        elif record.kind == "ordinary:velocity":
            assert record.expected_rules == ("velocity",)
        else:
            assert record.is_fraud and record.expected_rules, record.kind
            archetype = record.kind.removeprefix("fraud:")
            assert set(record.expected_rules) <= set(FRAUD_ARCHETYPES[archetype][1])
    assert mismatches == []
    # Recall and precision per rule are 1.0 by construction.
    assert sum(1 for r in records if r.expected_rules) > 100


@pytest.mark.parametrize("clock", ["1-20 ms", "load test ticks", "1 s"])
def test_with_enough_accounts_ordinary_traffic_fires_nothing(clock: str) -> None:
    records = generate(clock)
    kinds = Counter(r.kind for r in records)
    assert kinds["ordinary:velocity"] == 0
    for record, (_, _, fired) in zip(records, oracle(records), strict=True):
        if record.kind == "ordinary":
            assert fired == frozenset(), parse(record)


def test_every_archetype_fires_what_it_is_designed_to_on_the_records_it_should() -> None:
    records = generate("load test ticks", count=30_000, fraud_ratio=0.1)
    by_account: dict[str, list[SyntheticRecord]] = defaultdict(list)
    for record in records:
        if not record.is_invalid:
            by_account[record.account_id].append(record)
    fired_by_archetype: dict[str, set[str]] = defaultdict(set)
    campaigns: Counter[str] = Counter()
    for account_records in by_account.values():
        kinds = {r.kind.split(":", 1)[1] for r in account_records if ":" in r.kind}
        if not kinds:
            continue
        (archetype,) = kinds  # one archetype per fraud account, nothing else on it
        assert all(r.kind in (f"fraud:{archetype}", f"setup:{archetype}") for r in account_records)
        labels = [r.expected_rules for r in account_records]
        for label in labels:
            fired_by_archetype[archetype] |= set(label)
        campaigns[archetype] += 1
        if archetype == "velocity_attack":
            assert labels[:3] == [(), (), ()]
            assert all(label == ("velocity",) for label in labels[3:])
        elif archetype == "card_testing":
            assert all(parse(r)["amount"] <= Decimal("5.00") for r in account_records)
            assert labels[:3] == [(), (), ()]
            assert labels[3:4] in ([], [("velocity",)])
            assert all(label == ("velocity", "card_testing") for label in labels[4:])
        elif archetype in TWO_STEP_RULE:  # the second record fires, unless the run ended
            assert labels[0] == ()
            assert len(labels) == 1 or TWO_STEP_RULE[archetype] in labels[1]
        else:
            assert len(labels) == 1 and labels[0]
    assert set(campaigns) == set(FRAUD_ARCHETYPES)
    for archetype, (_, designed) in FRAUD_ARCHETYPES.items():
        assert fired_by_archetype[archetype] == set(designed), archetype
    # Single-rule records exist for every rule, so each rule can be scored on its own.
    alone = {r.expected_rules[0] for r in records if len(r.expected_rules) == 1}
    assert alone == set(RulesConfig().enabled) - {"card_testing"}


def test_labelled_share_is_the_fraud_ratio() -> None:
    for ratio in (0.05, 0.1):
        records = generate("load test ticks", count=20_000, fraud_ratio=ratio, invalid_ratio=0.01)
        labelled = sum(1 for r in records if r.expected_rules)
        assert ratio * 0.85 <= labelled / len(records) <= ratio * 1.1, ratio
        assert all(r.expected_rules for r in records if r.is_fraud)
    assert not any(r.expected_rules for r in generate("1 s", fraud_ratio=0.0))


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371 * math.asin(math.sqrt(h))


def test_ordinary_accounts_stay_home_with_one_device_and_small_amounts() -> None:
    records = generate("1 s", count=6000)
    points: dict[str, list[tuple[float, float]]] = defaultdict(list)
    devices: dict[str, set[str]] = defaultdict(set)
    fraud_accounts = {r.account_id for r in records if ":" in r.kind and not r.is_invalid}
    for record in records:
        if record.kind != "ordinary":
            continue
        obj = parse(record)
        assert record.account_id not in fraud_accounts
        assert Decimal("5.01") <= obj["amount"] <= Decimal("500")
        assert obj["account_balance"] >= 20_000
        assert obj["origin_country"] == obj["destination_country"]
        assert ("latitude" in obj) == ("longitude" in obj) == (obj["channel"] != "online")
        devices[record.account_id].add(obj["device_id"])
        if "latitude" in obj:
            points[record.account_id].append((float(obj["latitude"]), float(obj["longitude"])))
    assert all(len(d) == 1 for d in devices.values())
    assert max(len(p) for p in points.values()) >= 4
    for account_points in points.values():
        for i, a in enumerate(account_points):
            for b in account_points[i + 1 :]:
                assert haversine_km(a, b) < 100


def test_runs_at_different_times_share_no_account_and_no_transaction_id() -> None:
    # The consumer keeps account history across runs: a reused account id with a new home would
    # fire impossible_travel, a reused transaction id would be a duplicate.
    def ids(start: datetime) -> tuple[set[str], set[str]]:
        clock = iter(start + timedelta(milliseconds=10 * i) for i in range(1000))
        gen = TransactionGenerator(seed=3, now=lambda: next(clock))
        records = [parse(r) for r in gen.records(1000)]
        return {r["account_id"] for r in records}, {r["transaction_id"] for r in records}

    accounts_a, txns_a = ids(START)
    accounts_b, txns_b = ids(START + timedelta(minutes=5))
    assert accounts_a.isdisjoint(accounts_b) and txns_a.isdisjoint(txns_b)
    assert ids(START) == (accounts_a, txns_a)  # same seed, same clock: same records


def test_a_clock_going_backwards_never_makes_event_time_go_backwards() -> None:
    readings = [START + timedelta(milliseconds=ms) for ms in (0, 50, 20, 20, 70, 10, 80)] * 50
    clock = iter(readings)
    gen = TransactionGenerator(accounts=50, fraud_ratio=0.2, seed=4, now=lambda: next(clock))
    records = list(gen.records(len(readings)))
    stamps = [parse(r)["timestamp"] for r in records]
    assert stamps == sorted(stamps)
    decisions = oracle(records)
    assert all(
        set(f) == set(r.expected_rules) for r, (_, _, f) in zip(records, decisions, strict=True)
    )


@pytest.mark.parametrize("clock", ["1 s", "0 ms (burst)", "30 s"])
def test_realistic_mode_keeps_exact_labels_and_marks_every_fraud(clock: str) -> None:
    records = generate(clock, count=6000, realistic=True)
    decisions = oracle(records)
    frauds = missed = legit_flagged = 0
    accounts: set[str] = set()
    for record, (_, outcome, fired) in zip(records, decisions, strict=True):
        first_of_account = record.account_id not in accounts
        accounts.add(record.account_id)
        if record.is_invalid:
            continue
        assert outcome == "judged"
        assert set(fired) == set(record.expected_rules), record.kind
        body = parse(record)
        group, _, archetype = record.kind.partition(":")
        if group == "ordinary":
            assert body["fraud"] is False and body["fraud_archetype"] is None
            legit_flagged += bool(fired)
        elif group == "setup" and archetype in TWO_STEP_RULE and first_of_account:
            # The owner's first step of a takeover or a journey.
            assert body["fraud"] is False
        else:
            assert body["fraud"] is True and body["fraud_archetype"] == archetype
            frauds += 1
            missed += not fired
    # The point of the mode: the rules miss frauds and flag legitimate purchases.
    assert frauds > 100 and missed > 20 and legit_flagged > 20


def test_realistic_mode_off_leaves_the_records_unchanged() -> None:
    plain = generate("1 s", count=3000)
    assert all("fraud" not in parse(r) for r in plain if not r.is_invalid)
    assert not any(r.kind.startswith(("missed:", "ordinary:abroad")) for r in plain)
    assert [r.data for r in plain] == [r.data for r in generate("1 s", count=3000)]
