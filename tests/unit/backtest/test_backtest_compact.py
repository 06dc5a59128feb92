"""The backtest's packed histories and digest duplicate window against the plain layout they
replaced (a list of HistoryEntry per account, a dict of ids): the same entries, exact to the
Decimal's exponent, the same duplicates, whatever the order, scale or cache size."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import islice, pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.backtest import dedup
from consumer.backtest.compact import PackedEntries
from consumer.backtest.dedup import DuplicateWindow
from consumer.backtest.history import ReplayHistory
from consumer.records import Transaction
from consumer.rules.history import AccountHistory, HistoryEntry
from consumer.settings.config import StateConfig
from tests.unit.backtest.test_backtest import (
    LOWER_THRESHOLD,
    generated_file,
    run_cli,
    without_timing,
    write_rules,
)

# -- the reference: the layout before the packing (one HistoryEntry per entry, a dict of ids) --


@dataclass
class _RefAccount:
    recent: list[HistoryEntry] = field(default_factory=list)
    devices: set[str] = field(default_factory=set)
    countries: set[str] = field(default_factory=set)
    latest: float = float("-inf")


class Reference:
    """The pre-packing ReplayHistory, reduced to its rules (no shortcuts)."""

    def __init__(self, horizon_s: Decimal, config: StateConfig, countries: bool) -> None:
        self.keep = float(horizon_s) + config.lateness_s
        self.max_entries = config.max_entries
        self.window = float(config.dedup_ttl_s)
        self.countries = countries
        self.accounts: dict[str, _RefAccount] = {}
        self.seen: dict[str, float] = {}
        self.clock = float("-inf")

    def is_duplicate(self, txn: Transaction) -> bool:
        self.clock = max(self.clock, float(txn.event_time))
        first = self.seen.get(txn.transaction_id)
        if first is not None and self.clock - first < self.window:
            return True
        self.seen[txn.transaction_id] = self.clock
        return False

    def history(self, txn: Transaction) -> AccountHistory:
        account = self.accounts.get(txn.account_id)
        if account is None:
            return AccountHistory()
        t = float(txn.event_time)
        if t > account.latest:
            account.latest = t
            bound = t - self.keep - 1
            account.recent = [e for e in account.recent if float(e.event_time) >= bound]
        country = txn.destination_country
        return AccountHistory(
            recent=list(account.recent),
            device_seen_before=txn.device_id in account.devices,
            has_earlier=True,
            country_seen_before=country in account.countries,
        )

    def add(self, txn: Transaction, index: int) -> None:
        account = self.accounts.setdefault(txn.account_id, _RefAccount())
        t = float(txn.event_time)
        account.latest = max(account.latest, t)
        if t >= account.latest - self.keep - 1:
            country = txn.destination_country if self.countries else None
            account.recent.append(
                HistoryEntry(
                    (index, 0), txn.event_time, txn.amount, txn.latitude, txn.longitude, country
                )
            )
            if len(account.recent) > self.max_entries:  # the earliest time, ties: earliest
                times = [float(e.event_time) for e in account.recent]
                del account.recent[times.index(min(times))]
        if txn.device_id is not None:
            account.devices.add(txn.device_id)
        if self.countries and txn.destination_country is not None:
            account.countries.add(txn.destination_country)


# -- generated streams ------------------------------------------------------------------------

BASE_S = 1_795_500_000


def exact(value: Decimal) -> tuple[Any, ...]:
    """A Decimal to the last digit and exponent (Decimal equality ignores the exponent)."""
    return value.as_tuple()


def entry_key(entry: HistoryEntry) -> tuple[Any, ...]:
    return (
        entry.position,
        exact(entry.event_time),
        exact(entry.amount),
        entry.latitude,
        entry.longitude,
        entry.country,
    )


def history_key(history: AccountHistory) -> tuple[Any, ...]:
    return (
        [entry_key(e) for e in history.recent],
        history.device_seen_before,
        history.has_earlier,
        history.country_seen_before,
    )


# Event times at odd scales: whole seconds, ms, µs, 9 digits of fraction, and exponents > 0.
scaled = st.tuples(st.integers(-50, 400), st.sampled_from([0, 1, 3, 6, 9])).map(
    lambda ts: Decimal(BASE_S * 10 ** ts[1] + ts[0] * 10 ** ts[1] // 7).scaleb(-ts[1])
)
odd_times = st.one_of(
    scaled,
    st.integers(0, 40).map(lambda s: Decimal(f"{BASE_S + s * 10}E0")),
    st.just(Decimal("17955E+5")),  # positive exponent: prints as 1.7955E+9
)
amounts = st.one_of(
    st.decimals(min_value=Decimal("0.000000001"), max_value=Decimal(10**9), places=None).filter(
        lambda d: d.is_finite() and d > 0
    ),
    st.sampled_from([Decimal("12.30"), Decimal("5E+2"), Decimal("0.10"), Decimal("1.000")]),
    st.integers(1, 10**25).map(lambda n: Decimal(n).scaleb(-20)),  # 26 digits: beyond 64 bits
)
coordinates = st.one_of(
    st.none(),
    st.tuples(st.floats(-90, 90), st.floats(-180, 180)),
)


@st.composite
def transactions(draw: st.DrawFn) -> list[Transaction]:
    out = []
    for n in range(draw(st.integers(1, 40))):
        located = draw(coordinates)
        out.append(
            Transaction(
                transaction_id=f"t{draw(st.integers(0, n))}",  # repeats: producer retries
                account_id=draw(st.sampled_from(["a", "b", "c"])),
                amount=draw(amounts),
                event_time=draw(odd_times),  # any order: late and early events
                currency="EUR",
                account_balance=None,
                origin_country=None,
                destination_country=draw(st.sampled_from([None, "FR", "DE", "US"])),
                latitude=located[0] if located else None,
                longitude=located[1] if located else None,
                merchant_id=None,
                merchant_category=None,
                channel=None,
                device_id=draw(st.sampled_from([None, "d1", "d2"])),
                ip_address=None,
                account_created_at=None,
                raw={},
            )
        )
    return out


@settings(max_examples=300, deadline=None)
@given(
    stream=transactions(),
    horizon=st.sampled_from([Decimal(5), Decimal(100), Decimal(80_000)]),
    lateness=st.sampled_from([0, 10]),
    cap=st.sampled_from([1, 3, 2000]),
    window=st.sampled_from([1, 50, 86_400]),
    views=st.sampled_from([0, 4, 500_000]),
    countries=st.booleans(),
    data=st.data(),
)
def test_packed_history_is_the_plain_one(
    stream: list[Transaction],
    horizon: Decimal,
    lateness: int,
    cap: int,
    window: int,
    views: int,
    countries: bool,
    data: st.DataObject,
) -> None:
    """Read as the rules read: part of a history newest first (the view builds only that
    far), sometimes all of it; what is read always equals the plain layout's."""
    config = StateConfig(lateness_s=lateness, max_entries=cap, dedup_ttl_s=window)
    packed = ReplayHistory(horizon, config, countries=countries, view_entries=views)
    plain = Reference(horizon, config, countries)
    for index, txn in enumerate(stream):
        duplicate = plain.is_duplicate(txn)
        assert packed.is_duplicate(txn) == duplicate
        if duplicate:
            continue
        seen = packed.history(txn)
        expected = plain.history(txn)
        newest = data.draw(st.integers(0, 12), label="entries read newest first")
        assert [entry_key(e) for e in islice(reversed(seen.recent), newest)] == [
            entry_key(e) for e in islice(reversed(expected.recent), newest)
        ]
        assert len(seen.recent) == len(expected.recent)
        if data.draw(st.booleans(), label="read all"):
            assert history_key(seen) == history_key(expected)
            if seen.ascending:  # the promise the rules' newest-first pass relies on
                keys = [(e.event_time, e.position) for e in seen.recent]
                assert keys == sorted(keys)
        packed.add(txn, index)
        plain.add(txn, index)


@settings(max_examples=100, deadline=None)
@given(stream=transactions(), views=st.sampled_from([0, 500_000]))
def test_in_order_records_give_histories_known_to_be_in_order(
    stream: list[Transaction], views: int
) -> None:
    """Else the newest-first pass (most of a long backtest's speed) is silently never taken."""
    stream.sort(key=lambda txn: txn.event_time)
    history = ReplayHistory(Decimal(80_000), StateConfig(), view_entries=views)
    for index, txn in enumerate(stream):
        if history.is_duplicate(txn):
            continue
        seen = history.history(txn)
        assert seen.ascending or not seen.recent
        history.add(txn, index)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.tuples(odd_times, amounts), min_size=1, max_size=30))
def test_packed_entries_give_back_every_decimal_exactly(
    values: list[tuple[Decimal, Decimal]],
) -> None:
    packed = PackedEntries()
    for index, (event_time, amount) in enumerate(values):
        packed.append(index, event_time, float(event_time), amount, -33.5, None, 0)
    built = packed.entries([None])
    assert [(exact(e.event_time), exact(e.amount)) for e in built] == [
        (exact(t), exact(a)) for t, a in values
    ]
    assert all(e.latitude == -33.5 and e.longitude is None for e in built)
    assert packed.ordered == all(float(a) <= float(b) for (a, _), (b, _) in pairwise(values))


def test_a_negative_zero_and_a_long_fraction_come_back_as_they_were() -> None:
    packed = PackedEntries()
    odd = [Decimal("-0.000"), Decimal("1795500000.1234567890123456789012345"), Decimal("1E+3")]
    for index, value in enumerate(odd):
        packed.append(index, value, float(value), value, None, None, 0)
    assert [str(e.event_time) for e in packed.entries([None])] == [str(v) for v in odd]
    assert [str(e.amount) for e in packed.entries([None])] == [str(v) for v in odd]


def test_trimming_an_unordered_account_keeps_the_rest_in_stream_order() -> None:
    packed = PackedEntries()
    for index, seconds in enumerate([50, 10, 40, 20, 60]):
        t = Decimal(BASE_S + seconds)
        packed.append(index, t, float(t), Decimal(index), None, None, 0)
    assert not packed.ordered
    assert packed.forget_before(BASE_S + 15) == 1  # the 10
    assert packed.drop_oldest() == 2  # then the 20, third in stream order
    assert [e.position[0] for e in packed.entries([None])] == [0, 2, 4]
    assert [str(e.amount) for e in packed.entries([None])] == ["0", "2", "4"]
    assert not packed.ordered  # 50 before 40: still out of order
    assert packed.oldest() == BASE_S + 40


# -- the duplicate window -----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.integers(0, 15), st.sampled_from([0.0, 0.5, 1.0, 9.5, 10.0, 30.0])),
        max_size=80,
    )
)
def test_the_digest_window_forgets_exactly_when_the_dict_did(
    events: list[tuple[int, float]],
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dedup, "_COMPACT_AFTER", 4)  # the arrays are shifted often
        _check_window(events)


def _check_window(events: list[tuple[int, float]]) -> None:
    window = DuplicateWindow(10.0)
    seen: dict[str, float] = {}
    clock = 0.0
    for ident, step in events:
        clock += step  # ties included: a whole window later, exactly
        window.advance(clock)
        first = seen.get(f"t{ident}")
        expected = first is not None and clock - first < 10.0
        if not expected:
            seen[f"t{ident}"] = clock
        assert window.seen_before(f"t{ident}", clock) == expected
    assert len(window) == sum(1 for at in seen.values() if clock - at < 10.0)


def test_a_digest_is_the_same_in_every_run() -> None:
    # Not hash(), which changes with PYTHONHASHSEED: the same ids collide (or not) in every
    # process and every run, so a backtest gives the same answer twice.
    code = "from consumer.backtest.dedup import digest; print(repr(digest('a-txn-id')))"
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert runs == {repr(dedup.digest("a-txn-id"))}
    assert len(dedup.digest("a-txn-id")) == 8


def test_a_digest_straddling_two_others_is_not_found() -> None:
    first, second = bytes(range(8)), bytes(range(8, 16))
    bucket = bytearray(first + second)
    straddling = bytes(range(4, 12))
    assert dedup._find(bucket, straddling) == -1
    bucket += straddling
    assert dedup._find(bucket, straddling) == 16
    assert dedup._find(bucket, second) == 8


# -- the cache of built entries, end to end ---------------------------------------------------


def _file_rules_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[Path, Path, dict[str, Any]]:
    """A generated file (30 accounts, 2000 records: every judgement reads a history of dozens
    of entries), a rule set, and the report of one process with the default cache."""
    path = generated_file(tmp_path, "gen.jsonl.gz", invalid=0.05)
    capsys.readouterr()
    rules = write_rules(tmp_path / "new.yaml", LOWER_THRESHOLD)
    return path, rules, run_cli(capsys, "--rules", str(rules), "--input", str(path))[1]


def test_no_cache_gives_the_same_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, rules, cached = _file_rules_and_report(tmp_path, capsys)
    rebuilt = run_cli(capsys, "--rules", str(rules), "--input", str(path), "--history-cache", "0")
    assert rebuilt[0] == 0
    assert without_timing(rebuilt[1]) == without_timing(cached)
    assert cached["flagged"]["new"] > 100
    two = run_cli(
        capsys, "--rules", str(rules), "--input", str(path), "--jobs", "2", "--history-cache", "5"
    )
    assert without_timing(two[1]) == without_timing(cached)


def test_a_negative_cache_size_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        run_cli(capsys, "--rules", "x.yaml", "--input", "x", "--history-cache", "-1")
    assert stopped.value.code == 2
    assert "--history-cache: must be at least 0" in capsys.readouterr().err


# -- --parts: account-disjoint parts, --jobs at a time -----------------------------------------


def test_parts_give_identical_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, rules, one = _file_rules_and_report(tmp_path, capsys)
    waves = run_cli(capsys, "--rules", str(rules), "--input", str(path), "--parts", "3")
    assert waves[0] == 0
    assert without_timing(waves[1]) == without_timing(one)
    mixed = run_cli(
        capsys, "--rules", str(rules), "--input", str(path), "--jobs", "2", "--parts", "5"
    )
    assert without_timing(mixed[1]) == without_timing(one)


def test_fewer_parts_than_jobs_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--rules", "x.yaml", "--input", "x", "--jobs", "3", "--parts", "2"]
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert "--parts (2) must be at least --jobs" in err
