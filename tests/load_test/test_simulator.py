"""The handbook-style simulator (load_test/simulator.py): deterministic, contract-valid records in
time order, customers on nearby terminals only, the three fraud scenarios as described, and a
stream whose memory does not grow with the number of days."""

from __future__ import annotations

import gzip
import json
import time
import tracemalloc
from calendar import timegm
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from consumer.model.dataset import load_dataset
from consumer.records import InvalidRecord, parse_transaction
from load_test.simulator import (
    CUSTOMER_DAYS,
    CUSTOMER_MULTIPLIER,
    DEGREE_UNITS,
    LARGE_AMOUNT_CENTS,
    LATITUDE_ORIGIN,
    LONGITUDE_ORIGIN,
    TERMINAL_DAYS,
    DayBatch,
    SimulatorConfig,
    compromised_on,
    main,
    make_profiles,
    records,
    simulate_days,
)

SMALL = SimulatorConfig.small(seed=3)


@pytest.fixture(scope="module")
def small_records() -> list[dict[str, object]]:
    return list(records(SMALL))


@pytest.fixture(scope="module")
def small_batches() -> list[DayBatch]:
    return list(simulate_days(SMALL))


def _epoch(timestamp: str) -> int:
    return timegm(time.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ"))


def test_a_seed_gives_the_same_records_and_another_seed_others() -> None:
    config = SimulatorConfig.small(days=4, seed=11)
    first = list(records(config))
    assert first == list(records(config))
    assert first != list(records(SimulatorConfig.small(days=4, seed=12)))
    assert len(first) > 1000


def test_the_cli_writes_the_same_bytes_for_the_same_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = []
    for name in ("a.jsonl.gz", "b.jsonl.gz"):
        out = tmp_path / name
        assert main([str(out), "--small", "--days", "3", "--seed", "5", "--no-progress"]) == 0
        outputs.append(gzip.decompress(out.read_bytes()))
    assert outputs[0] == outputs[1]
    summaries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert summaries[0]["transactions"] == outputs[0].count(b"\n")
    assert set(summaries[0]["fraud_pct_by_scenario"]) == {"1", "2", "3"}


def test_every_record_is_valid_under_the_contract(small_records: list[dict[str, object]]) -> None:
    profiles = make_profiles(SMALL)
    assert len(small_records) > 10_000
    for record in small_records:
        parsed = parse_transaction(json.dumps(record).encode())
        assert not isinstance(parsed, InvalidRecord), (record, parsed)
        amount = Decimal(json.dumps(record["amount"]))
        assert amount > 0
        assert amount == amount.quantize(Decimal("0.01"))
        assert isinstance(record["timestamp"], str)
        assert record["timestamp"].endswith("Z")
        assert record["channel"] == "card_present"
        assert record["fraud"] is (record["fraud_scenario"] != 0)
        assert record["fraud_scenario"] in (0, 1, 2, 3)
        # The location is the terminal's grid position, mapped linearly.
        assert isinstance(record["merchant_id"], str)
        x, y = profiles.terminal_xy[int(record["merchant_id"].removeprefix("terminal-"))]
        assert record["latitude"] == round(LATITUDE_ORIGIN + y / DEGREE_UNITS, 6)
        assert record["longitude"] == round(LONGITUDE_ORIGIN + x / DEGREE_UNITS, 6)
    ids = [record["transaction_id"] for record in small_records]
    assert len(set(ids)) == len(ids)


def test_records_are_in_time_order(small_records: list[dict[str, object]]) -> None:
    times = [_epoch(str(record["timestamp"])) for record in small_records]
    assert times == sorted(times)
    start = timegm(SMALL.start.timetuple())
    assert start <= times[0]
    assert times[-1] < start + SMALL.days * 86_400


def test_customers_use_only_the_terminals_within_the_radius(
    small_batches: list[DayBatch],
) -> None:
    profiles = make_profiles(SMALL)
    # The nearby lists are exactly the terminals strictly within the radius.
    for customer in range(0, SMALL.customers, 7):
        distance = np.hypot(*(profiles.terminal_xy - profiles.customer_xy[customer]).T)
        assert profiles.nearby(customer).tolist() == np.nonzero(distance < SMALL.radius)[0].tolist()
    for batch in small_batches:
        gap = profiles.terminal_xy[batch.terminal] - profiles.customer_xy[batch.customer]
        assert (np.hypot(gap[:, 0], gap[:, 1]) < SMALL.radius).all()
    # Customers without a nearby terminal make no transaction.
    idle = np.nonzero(profiles.nearby_counts == 0)[0]
    for batch in small_batches:
        assert not np.isin(batch.customer, idle).any()


def test_scenario_1_is_exactly_the_amounts_over_220_where_no_other_applies(
    small_batches: list[DayBatch],
) -> None:
    large = 0
    for batch in small_batches:
        plain = batch.scenario <= 1
        assert (
            (batch.scenario[plain] == 1) == (batch.drawn_cents[plain] > LARGE_AMOUNT_CENTS)
        ).all()
        assert (batch.amount_cents[plain] == batch.drawn_cents[plain]).all()
        large += int((batch.scenario == 1).sum())
    assert large > 0


def _windows(config: SimulatorConfig, kind: int) -> dict[int, list[int]]:
    """Terminal (kind 0) or customer (kind 1) -> the days it was compromised."""
    out: dict[int, list[int]] = {}
    for day in range(config.days):
        for item in compromised_on(config, day)[kind].tolist():
            out.setdefault(item, []).append(day)
    return out


def _in_window(starts: list[int] | None, day: int, length: int) -> bool:
    return starts is not None and any(start <= day < start + length for start in starts)


def test_scenario_2_frauds_are_the_compromised_terminals_for_28_days(
    small_batches: list[DayBatch],
) -> None:
    windows = _windows(SMALL, 0)
    assert all(len(compromised_on(SMALL, d)[0]) == 2 for d in range(SMALL.days))
    seen = 0
    for batch in small_batches:
        for terminal, scenario in zip(
            batch.terminal.tolist(), batch.scenario.tolist(), strict=True
        ):
            compromised = _in_window(windows.get(terminal), batch.day, TERMINAL_DAYS)
            if scenario == 2:
                assert compromised
                seen += 1
            elif scenario != 3:
                assert not compromised  # every other transaction there is fraud
    assert seen > 100


def test_scenario_3_multiplies_a_third_of_the_leaked_cards_amounts_by_5(
    small_batches: list[DayBatch],
) -> None:
    windows = _windows(SMALL, 1)
    in_window = fraud = 0
    for batch in small_batches:
        for customer, drawn, amount, scenario in zip(
            batch.customer.tolist(),
            batch.drawn_cents.tolist(),
            batch.amount_cents.tolist(),
            batch.scenario.tolist(),
            strict=True,
        ):
            leaked = _in_window(windows.get(customer), batch.day, CUSTOMER_DAYS)
            if scenario == 3:
                assert leaked
                assert amount == CUSTOMER_MULTIPLIER * drawn
                fraud += 1
            else:
                assert amount == drawn
            in_window += leaked
    assert in_window > 500
    assert 0.28 < fraud / in_window < 0.39


def test_the_default_run_has_a_plausible_fraud_rate() -> None:
    """The default world (5,000 customers, 10,000 terminals) over its 61 days: the book reports
    about 0.8-0.9% over its longer run; the terminal and card windows ramp up in the first 4
    weeks, so 61 days land a little below."""
    config = SimulatorConfig()
    total = 0
    by_scenario = np.zeros(4, dtype=np.int64)
    for batch in simulate_days(config):
        total += len(batch)
        by_scenario += np.bincount(batch.scenario, minlength=4)
    assert 500_000 < total < 650_000
    share = by_scenario / total * 100
    assert 0.5 < share[1:].sum() < 1.2
    assert 0.01 < share[1] < 0.2
    assert 0.2 < share[2] < 0.7
    assert 0.1 < share[3] < 0.45


def test_a_run_is_a_stream_that_starts_at_once_whatever_its_length() -> None:
    endless = records(SimulatorConfig.small(days=10**9))
    assert isinstance(endless, Iterator)
    began = time.monotonic()
    first = next(endless)
    assert time.monotonic() - began < 5.0
    assert first["transaction_id"] == "sim0-0"
    assert _epoch(str(first["timestamp"])) < timegm(datetime(2026, 4, 2, tzinfo=UTC).timetuple())


def _peak_bytes(days: int) -> tuple[int, int]:
    config = SimulatorConfig.small(customers=300, terminals=600, days=days)
    tracemalloc.start()
    try:
        count = sum(1 for _ in records(config))
        return tracemalloc.get_traced_memory()[1], count
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_number_of_transactions() -> None:
    short_peak, short_count = _peak_bytes(5)
    long_peak, long_count = _peak_bytes(40)
    assert long_count > 6 * short_count
    assert long_peak < 1.5 * short_peak + 256 * 1024


def test_train_reads_the_file_as_labelled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sim.jsonl"
    assert main([str(out), "--small", "--days", "6", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    data = load_dataset(out)
    assert len(data.rows) == summary["transactions"]
    assert sum(data.labels) == summary["frauds"] > 0
    assert data.invalid == data.duplicates == 0
    line = json.loads(out.read_text().splitlines()[0])
    assert set(line) == {"data", "partition_key"}
    assert json.loads(line["data"])["account_id"] == line["partition_key"]


def test_a_burn_in_starts_the_run_in_the_steady_state() -> None:
    """With 28 days of burn-in, day 0 already has about as many terminals and cards compromised
    as day 40 (without it, none), and the days written are the same records otherwise."""
    plain = SimulatorConfig.small(seed=5, days=41)
    burnt = SimulatorConfig.small(seed=5, days=41, burn_in_days=28)

    def frauds_by_day(config: SimulatorConfig) -> list[int]:
        return [int((batch.scenario >= 2).sum()) for batch in simulate_days(config)]

    cold, warm = frauds_by_day(plain), frauds_by_day(burnt)
    assert cold[0] < warm[0]
    assert warm[0] > 0.5 * warm[40]
    assert cold[0] < 0.25 * cold[40]
    same = [(int(a.seconds.sum()), int(a.drawn_cents.sum())) for a in simulate_days(plain)] == [
        (int(b.seconds.sum()), int(b.drawn_cents.sum())) for b in simulate_days(burnt)
    ]
    assert same  # the burn-in draws compromises only: the transactions are the same
    with pytest.raises(ValueError, match="burn-in"):
        SimulatorConfig.small(burn_in_days=-1)
