"""A transaction simulator after the design published in *Reproducible Machine Learning for
Credit Card Fraud Detection - Practical Handbook* (Le Borgne et al., ULB), chapter 3.2
"Transaction data simulator", written here from the text's description (none of the book's code,
none of its data files: those files are a held-out test, never training or tuning input).

Usage (from the repository root)::

    python -m load_test.simulator OUT.jsonl[.gz] [--customers 5000] [--terminals 10000]
        [--days 61] [--radius 5] [--start 2026-04-01T00:00:00Z] [--seed 0] [--small]
        [--burn-in-days 0]

The world
---------
* **Customers** (``customers``): a home ``(x, y)`` uniform on a 100 x 100 grid, a mean amount
  uniform in [5, 100] with standard deviation half of it, and a mean number of transactions per
  day uniform in [0, 4].
* **Terminals** (``terminals``): a location uniform on the same grid.
* Each customer uses only the terminals strictly within ``radius`` (5) of its home; a customer
  with none makes no transaction.
* **Transactions**: each day, each customer makes Poisson(its mean per day) transactions. Each one
  has a time of day drawn normal around midday (mean 43,200 s, std 20,000 s), whole seconds; a
  draw outside the day is dropped (so slightly fewer than the Poisson count remain). Its amount is
  drawn normal(mean, std), a negative draw replaced by one uniform in (0, 2 * mean), rounded to
  cents (at least 0.01). Its terminal is drawn uniformly among the customer's nearby terminals.

Fraud (checked in this order; the first that applies names the scenario)
-------------------------------------------------------------------------
3. **Leaked cards.** At the start of every day ``d``, 3 customers drawn at random (all customers,
   without replacement) are compromised for days ``d .. d+13`` (14 days; compromised again while
   compromised: until the later end). Each of their transactions in that window is, with
   probability 1/3, fraud: its amount is the customer's draw multiplied by 5.
   (The book picks a third of the window's transactions; drawn per transaction here so the
   stream never waits for a window to end: "a third" holds on average.)
2. **Compromised terminals.** At the start of every day ``d``, 2 terminals drawn at random are
   compromised for days ``d .. d+27`` (28 days): every transaction on them then is fraud.
1. **Large amounts.** Any other transaction whose (drawn) amount is over 220.00 is fraud.
0. Anything else is legitimate.

Records (docs/contract.md section 1), in time order (ties: by customer)
---------------------------------------------------------------------
``transaction_id`` ``sim<seed>-<n>`` (n from 0 in time order), ``account_id`` ``customer-<i>``,
``merchant_id`` ``terminal-<j>``, ``amount`` (2 decimals, 0.01 .. about 2,000), ``timestamp``
(``start`` + day + seconds, ISO-8601 UTC with ``Z``), ``latitude`` / ``longitude`` the
terminal's grid position mapped linearly onto a 1 x 1 degree square: ``latitude = 50 + y / 100``,
``longitude = 4 + x / 100`` (6 decimals; one grid unit is about 1.1 km north-south and 0.7 km
east-west, so the radius of 5 is a few km), ``channel`` ``card_present``, and the labels passed
through: ``fraud`` (true / false) and ``fraud_scenario`` (0-3).

The CLI writes the producer's replay format, one ``{"data": "<record>", "partition_key":
"<account>"}`` a line (as load_test/labelled.py), which ``fraudstream backtest`` and
``fraudstream train`` read as a labelled file (label: ``fraud``).

Determinism and memory: everything comes from numpy generators seeded by ``seed`` (the profiles
from one stream, each day's transactions and each day's compromises from streams of their own,
keyed by the day), so a seed gives the same records, byte for byte. The simulation runs one day at
a time: memory holds the profiles, each customer's nearby terminals and one day's transactions
(about 2 per customer), whatever the number of days.
"""

from __future__ import annotations

import argparse
import calendar
import gzip
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

GRID = 100.0
DAY_S = 86_400
MIDDAY_S = 43_200.0
TIME_STD_S = 20_000.0
MEAN_AMOUNT_RANGE = (5.0, 100.0)
MEAN_TX_PER_DAY_RANGE = (0.0, 4.0)

LARGE_AMOUNT_CENTS = 22_000  # scenario 1: an amount over 220.00
TERMINALS_PER_DAY = 2  # scenario 2
TERMINAL_DAYS = 28
CUSTOMERS_PER_DAY = 3  # scenario 3
CUSTOMER_DAYS = 14
CUSTOMER_SHARE = 1.0 / 3.0
CUSTOMER_MULTIPLIER = 5

LATITUDE_ORIGIN = 50.0  # latitude = LATITUDE_ORIGIN + y / DEGREE_UNITS
LONGITUDE_ORIGIN = 4.0  # longitude = LONGITUDE_ORIGIN + x / DEGREE_UNITS
DEGREE_UNITS = 100.0

_NEARBY_CHUNK = 128  # customers per block of the customer x terminal distance computation
# Keys of the independent random streams (numpy SeedSequence spawn keys).
_PROFILES, _DAY_TRANSACTIONS, _DAY_COMPROMISES, _BURN_IN_COMPROMISES = 0, 1, 2, 3


@dataclass(frozen=True)
class SimulatorConfig:
    """The simulation's parameters; the defaults are a laptop-sized run (about 590k records)."""

    customers: int = 5_000
    terminals: int = 10_000
    days: int = 61
    radius: float = 5.0
    start: datetime = datetime(2026, 4, 1, tzinfo=UTC)
    seed: int = 0
    # Days of compromises drawn before the first day written (no transactions): the run starts
    # in the steady state of a longer simulation, as a slice taken from one does, instead of
    # with no terminal and no card compromised yet.
    burn_in_days: int = 0

    def __post_init__(self) -> None:
        if self.customers < 1 or self.terminals < 1 or self.days < 1:
            raise ValueError("customers, terminals and days must be at least 1")
        if not 0 <= self.burn_in_days <= 365:
            raise ValueError("burn-in days must be 0-365")
        if self.customers < CUSTOMERS_PER_DAY or self.terminals < TERMINALS_PER_DAY:
            raise ValueError(
                f"at least {CUSTOMERS_PER_DAY} customers and {TERMINALS_PER_DAY} terminals "
                "(the fraud scenarios draw that many a day)"
            )
        if not self.radius > 0:
            raise ValueError("radius must be positive")
        if self.start.tzinfo is None or self.start.microsecond:
            raise ValueError("start must be a timezone-aware time in whole seconds")
        if self.seed < 0:
            raise ValueError("seed must be >= 0")

    @classmethod
    def small(cls, **overrides: Any) -> SimulatorConfig:
        """A run for tests: 500 customers, 1,000 terminals, 21 days (about 20k records)."""
        values: dict[str, Any] = {"customers": 500, "terminals": 1_000, "days": 21}
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class Profiles:
    """Customers, terminals and which terminals each customer uses (row i: customer i)."""

    customer_xy: np.ndarray  # (customers, 2)
    mean_amount: np.ndarray  # (customers,)
    std_amount: np.ndarray  # (customers,)
    mean_tx_per_day: np.ndarray  # (customers,)
    terminal_xy: np.ndarray  # (terminals, 2)
    nearby_offsets: np.ndarray  # (customers + 1,): customer i's terminals are
    nearby_terminals: np.ndarray  # nearby_terminals[nearby_offsets[i]:nearby_offsets[i + 1]]

    def nearby(self, customer: int) -> np.ndarray:
        return self.nearby_terminals[
            self.nearby_offsets[customer] : self.nearby_offsets[customer + 1]
        ]

    @property
    def nearby_counts(self) -> np.ndarray:
        return np.diff(self.nearby_offsets)


@dataclass(frozen=True)
class DayBatch:
    """One day's transactions in time order (ties by customer), as parallel arrays."""

    day: int
    seconds: np.ndarray  # int64: seconds into the day, 0 .. 86399
    customer: np.ndarray  # int64
    terminal: np.ndarray  # int64
    drawn_cents: np.ndarray  # int64: the customer's draw, in cents (>= 1)
    amount_cents: np.ndarray  # int64: the amount written (5x the draw in scenario 3)
    scenario: np.ndarray  # int8: 0 legitimate, 1..3 the fraud scenario

    def __len__(self) -> int:
        return len(self.seconds)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def make_profiles(config: SimulatorConfig) -> Profiles:
    rng = _rng(config.seed, _PROFILES)
    customers, terminals = config.customers, config.terminals
    customer_xy = rng.uniform(0.0, GRID, size=(customers, 2))
    mean_amount = rng.uniform(*MEAN_AMOUNT_RANGE, size=customers)
    mean_tx = rng.uniform(*MEAN_TX_PER_DAY_RANGE, size=customers)
    terminal_xy = rng.uniform(0.0, GRID, size=(terminals, 2))
    radius2 = config.radius * config.radius
    counts = np.zeros(customers, dtype=np.int64)
    blocks: list[np.ndarray] = []
    for begin in range(0, customers, _NEARBY_CHUNK):
        block = customer_xy[begin : begin + _NEARBY_CHUNK]
        dx = block[:, 0:1] - terminal_xy[None, :, 0]
        dy = block[:, 1:2] - terminal_xy[None, :, 1]
        rows, cols = np.nonzero(dx * dx + dy * dy < radius2)  # row-major: by customer, then id
        counts[begin : begin + len(block)] = np.bincount(rows, minlength=len(block))
        blocks.append(cols.astype(np.int64))
    offsets = np.zeros(customers + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Profiles(
        customer_xy=customer_xy,
        mean_amount=mean_amount,
        std_amount=mean_amount / 2.0,
        mean_tx_per_day=mean_tx,
        terminal_xy=terminal_xy,
        nearby_offsets=offsets,
        nearby_terminals=np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int64),
    )


@dataclass
class _Compromised:
    """Until which day (exclusive) each terminal and customer is compromised."""

    terminal_until: np.ndarray
    customer_until: np.ndarray


def compromised_on(config: SimulatorConfig, day: int) -> tuple[np.ndarray, np.ndarray]:
    """(terminals, customers) compromised at the start of `day` (scenarios 2 and 3)."""
    picks = _rng(config.seed, _DAY_COMPROMISES, day)
    terminals = picks.choice(config.terminals, size=TERMINALS_PER_DAY, replace=False)
    customers = picks.choice(config.customers, size=CUSTOMERS_PER_DAY, replace=False)
    return terminals, customers


def _day_batch(
    config: SimulatorConfig, profiles: Profiles, state: _Compromised, day: int
) -> DayBatch:
    # The day's compromises first (they apply from the start of the day).
    terminals, customers = compromised_on(config, day)
    state.terminal_until[terminals] = np.maximum(
        state.terminal_until[terminals], day + TERMINAL_DAYS
    )
    state.customer_until[customers] = np.maximum(
        state.customer_until[customers], day + CUSTOMER_DAYS
    )

    rng = _rng(config.seed, _DAY_TRANSACTIONS, day)
    nearby_counts = profiles.nearby_counts
    per_customer = rng.poisson(profiles.mean_tx_per_day)
    per_customer[nearby_counts == 0] = 0
    customer = np.repeat(np.arange(config.customers, dtype=np.int64), per_customer)
    total = len(customer)
    times = rng.normal(MIDDAY_S, TIME_STD_S, size=total)
    mean = profiles.mean_amount[customer]
    drawn = rng.normal(mean, profiles.std_amount[customer])
    fallback = rng.uniform(0.0, 2.0 * mean)
    pick = rng.random(total)
    leaked = rng.random(total)

    drawn = np.where(drawn < 0.0, fallback, drawn)
    drawn_cents = np.maximum(np.rint(drawn * 100.0).astype(np.int64), 1)
    slot = np.minimum(
        (pick * nearby_counts[customer]).astype(np.int64), nearby_counts[customer] - 1
    )
    terminal = profiles.nearby_terminals[profiles.nearby_offsets[customer] + slot]

    keep = (times >= 0.0) & (times < DAY_S)
    seconds = np.floor(times[keep]).astype(np.int64)
    customer, terminal = customer[keep], terminal[keep]
    drawn_cents, leaked = drawn_cents[keep], leaked[keep]
    order = np.lexsort((customer, seconds))  # by time, then customer (stable)
    seconds, customer, terminal = seconds[order], customer[order], terminal[order]
    drawn_cents, leaked = drawn_cents[order], leaked[order]

    scenario = np.zeros(len(seconds), dtype=np.int8)
    scenario[drawn_cents > LARGE_AMOUNT_CENTS] = 1
    scenario[state.terminal_until[terminal] > day] = 2
    card = (state.customer_until[customer] > day) & (leaked < CUSTOMER_SHARE)
    scenario[card] = 3
    amount_cents = np.where(card, drawn_cents * CUSTOMER_MULTIPLIER, drawn_cents)
    return DayBatch(day, seconds, customer, terminal, drawn_cents, amount_cents, scenario)


def simulate_days(config: SimulatorConfig, profiles: Profiles | None = None) -> Iterator[DayBatch]:
    """Each day's transactions, one day at a time (a generator: nothing runs until asked)."""
    profiles = profiles if profiles is not None else make_profiles(config)
    state = _Compromised(
        terminal_until=np.zeros(config.terminals, dtype=np.int64),
        customer_until=np.zeros(config.customers, dtype=np.int64),
    )
    for back in range(config.burn_in_days, 0, -1):  # days -B .. -1: their compromises only
        picks = _rng(config.seed, _BURN_IN_COMPROMISES, back)
        terminals = picks.choice(config.terminals, size=TERMINALS_PER_DAY, replace=False)
        customers = picks.choice(config.customers, size=CUSTOMERS_PER_DAY, replace=False)
        state.terminal_until[terminals] = np.maximum(
            state.terminal_until[terminals], TERMINAL_DAYS - back
        )
        state.customer_until[customers] = np.maximum(
            state.customer_until[customers], CUSTOMER_DAYS - back
        )
    for day in range(config.days):
        yield _day_batch(config, profiles, state, day)


def _timestamp(epoch_s: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


def records(
    config: SimulatorConfig,
    profiles: Profiles | None = None,
    on_day: Callable[[int], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """The contract records of the run, in time order, one at a time; `on_day(day)` is called
    once a day's records are all out."""
    profiles = profiles if profiles is not None else make_profiles(config)
    latitude = np.round(LATITUDE_ORIGIN + profiles.terminal_xy[:, 1] / DEGREE_UNITS, 6).tolist()
    longitude = np.round(LONGITUDE_ORIGIN + profiles.terminal_xy[:, 0] / DEGREE_UNITS, 6).tolist()
    start_s = calendar.timegm(config.start.astimezone(UTC).timetuple())
    prefix = f"sim{config.seed}-"
    number = 0
    for batch in simulate_days(config, profiles):
        day_s = start_s + batch.day * DAY_S
        for seconds, customer, terminal, cents, scenario in zip(
            batch.seconds.tolist(),
            batch.customer.tolist(),
            batch.terminal.tolist(),
            batch.amount_cents.tolist(),
            batch.scenario.tolist(),
            strict=True,
        ):
            yield {
                "transaction_id": f"{prefix}{number}",
                "account_id": f"customer-{customer}",
                "merchant_id": f"terminal-{terminal}",
                "amount": cents / 100,
                "timestamp": _timestamp(day_s + seconds),
                "latitude": latitude[terminal],
                "longitude": longitude[terminal],
                "channel": "card_present",
                "fraud": scenario != 0,
                "fraud_scenario": scenario,
            }
            number += 1
        if on_day is not None:
            on_day(batch.day)


@dataclass
class Summary:
    transactions: int = 0
    by_scenario: Counter[int] = field(default_factory=Counter)

    def add(self, scenario: int) -> None:
        self.transactions += 1
        self.by_scenario[scenario] += 1

    def as_dict(self) -> dict[str, Any]:
        frauds = self.transactions - self.by_scenario[0]
        share = 100.0 / self.transactions if self.transactions else 0.0
        return {
            "transactions": self.transactions,
            "frauds": frauds,
            "fraud_pct": round(frauds * share, 4),
            "fraud_pct_by_scenario": {
                str(s): round(self.by_scenario[s] * share, 4) for s in (1, 2, 3)
            },
        }


def write_simulation(out: Any, config: SimulatorConfig, *, progress: bool = False) -> Summary:
    """Write the run's replay lines to the text stream `out`; returns the counts."""
    summary = Summary()
    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.days, unit="day", file=sys.stderr, desc="simulating")
    dumps = json.JSONEncoder(separators=(",", ":")).encode

    def day_done(day: int) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_postfix(transactions=summary.transactions, refresh=False)

    try:
        for record in records(config, on_day=day_done):
            line = {"data": dumps(record), "partition_key": record["account_id"]}
            out.write(dumps(line) + "\n")
            summary.add(record["fraud_scenario"])
    finally:
        if bar is not None:
            bar.close()
    return summary


def _start(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def build_parser() -> argparse.ArgumentParser:
    from load_test.cli_help import HelpFormatter, exit_codes

    defaults, small = SimulatorConfig(), SimulatorConfig.small()
    parser = argparse.ArgumentParser(
        prog="python -m load_test.simulator",
        description="Write the handbook-style simulation as a labelled replay file; a summary "
        "as one JSON document on stdout, a progress bar on stderr.",
        formatter_class=HelpFormatter,
        epilog=exit_codes("0 written"),
    )
    parser.add_argument("out", help="file to write (.gz: gzip)")
    parser.add_argument(
        "--customers",
        type=int,
        default=None,
        help=f"customers (default: {defaults.customers}; {small.customers} with --small)",
    )
    parser.add_argument(
        "--terminals",
        type=int,
        default=None,
        help=f"terminals (default: {defaults.terminals}; {small.terminals} with --small)",
    )
    parser.add_argument(
        "--days",
        type=int,
        default=None,
        help=f"days simulated (default: {defaults.days}; {small.days} with --small)",
    )
    parser.add_argument(
        "--radius",
        type=float,
        default=defaults.radius,
        help="a customer uses the terminals within this distance (grid units)",
    )
    parser.add_argument(
        "--start", type=_start, default=defaults.start, help="ISO-8601 time of the first day"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed")
    parser.add_argument(
        "--burn-in-days",
        type=int,
        default=defaults.burn_in_days,
        help="days of compromises drawn before the first day written (default 0; 28 starts in "
        "the steady state)",
    )
    parser.add_argument(
        "--small", action="store_true", help="500 customers, 1,000 terminals, 21 days"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    defaults = SimulatorConfig()
    args = parser.parse_args(argv)
    base = SimulatorConfig.small() if args.small else defaults
    try:
        config = SimulatorConfig(
            customers=args.customers if args.customers is not None else base.customers,
            terminals=args.terminals if args.terminals is not None else base.terminals,
            days=args.days if args.days is not None else base.days,
            radius=args.radius,
            start=args.start.replace(microsecond=0),
            seed=args.seed,
            burn_in_days=args.burn_in_days,
        )
    except ValueError as exc:
        parser.error(str(exc))
    path = Path(args.out)
    began = time.monotonic()
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8", compresslevel=6) as handle:
            summary = write_simulation(handle, config, progress=not args.no_progress)
    else:
        with path.open("w", encoding="utf-8") as handle:
            summary = write_simulation(handle, config, progress=not args.no_progress)
    report = {
        "out": str(path),
        "config": {
            "customers": config.customers,
            "terminals": config.terminals,
            "days": config.days,
            "radius": config.radius,
            "start": config.start.isoformat().replace("+00:00", "Z"),
            "seed": config.seed,
            "burn_in_days": config.burn_in_days,
        },
        **summary.as_dict(),
        "seconds": round(time.monotonic() - began, 1),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
