"""`python -m bench.state_stages [--json]`: the state store's share of a record, stage by stage.

The benchmark's own batches (bench.workload: 500 records, 10,000 accounts) are decoded and
validated first, untimed; then every batch goes through the store as the pipeline drives it,
against a real redis-server started here, and the CPU time (`time.process_time`: waiting on
Redis is not counted) of each stage is summed over the batches after the first `--warmup`:
load (cache lookups, the round trip's packing and parsing), the duplicate check, `history`,
`add`, `prepare_save`, and `write` (the save's packing; in the worker it runs on the save
thread, still under the GIL). The interpreter's collector is set as the worker sets it
(consumer/worker/gc_policy.py: no automatic full collections).

Then the cache lookup alone (`_from_cache`) over the same batches' accounts two ways: cycling
through the batches, as traffic does (10,000 accounts take turns), and the same batch again and
again (its accounts' objects hot in the CPU's caches): the difference is what memory costs.
The table goes to stderr; with --json one JSON object is the last line of stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.harness import log
from bench.servers import RedisServer
from bench.workload import build_workload
from consumer.records import Position, Transaction, parse_transaction, position_of
from consumer.rules import state_horizon_s
from consumer.rules.config import RulesConfig
from consumer.rules.profile import DEFAULT_LABEL_DELAY_DAYS
from consumer.settings.config import Settings, StateConfig
from consumer.state.store import DEFAULT_SHARD_ID, AccountStateStore
from consumer.worker.kcl_io import load_action
from consumer.worker.wiring import redis_client

Batch = list[tuple[Position, Transaction]]
STAGES = ("load", "duplicate", "history", "add", "prepare_save", "write")


def decoded_batches(records: int, fraud_ratio: float, seed: int) -> list[Batch]:
    work = build_workload(
        records,
        batch_size=500,
        accounts=10_000,
        fraud_ratio=fraud_ratio,
        invalid_ratio=0.0,
        seed=seed,
    )
    batches: list[Batch] = []
    for line in work.batches:
        items: Batch = []
        for record in load_action(line).records:
            txn = parse_transaction(record.binary_data)
            if isinstance(txn, Transaction):
                sub = record.sub_sequence_number or 0
                items.append((position_of(record.sequence_number, sub), txn))
        batches.append(items)
    return batches


def timer_us() -> float:
    """What one `time.process_time()` call costs (a system call, ~0.25 µs here): each per-record
    stage's sum includes one, and it is taken off."""
    clock = time.process_time
    started = clock()
    for _ in range(100_000):
        clock()
    return (clock() - started) * 1e6 / 100_000


def stage_costs(store: AccountStateStore, batches: list[Batch], warmup: int) -> dict[str, float]:
    """CPU µs per record of each stage, over the batches after `warmup`."""
    clock = time.process_time
    per_record_timer = timer_us()
    spent = dict.fromkeys(STAGES, 0.0)
    timed_records = 0
    for index, items in enumerate(batches):
        started = clock()
        view = store.load(items)
        loaded = clock()
        duplicate = history = add = 0.0
        for position, txn in items:
            a = clock()
            if view.is_duplicate(txn, position):
                continue
            b = clock()
            view.history(txn, position)
            c = clock()
            view.add(txn, position)
            d = clock()
            duplicate, history, add = duplicate + b - a, history + c - b, add + d - c
        prepared_at = clock()
        prepared = store.prepare_save(view)
        written_at = clock()
        store.write(prepared)
        done = clock()
        if index < warmup:
            continue
        timed_records += len(items)
        for stage, seconds in zip(
            STAGES,
            (
                loaded - started,
                duplicate,
                history,
                add,
                written_at - prepared_at,
                done - written_at,
            ),
            strict=True,
        ):
            spent[stage] += seconds
    costs = {stage: seconds * 1e6 / timed_records for stage, seconds in spent.items()}
    for stage in ("duplicate", "history", "add"):  # timed record by record
        costs[stage] = max(costs[stage] - per_record_timer, 0.0)
    return costs


def cache_lookup_us(store: AccountStateStore, batches: list[Batch]) -> tuple[float, float]:
    """µs per account of the cache lookup: cycling through the batches, and one batch again."""
    wanted = [store._wanted(items) for items in batches]
    accounts = sum(len(w) for w in wanted)
    started = time.perf_counter()
    for want in wanted:
        store._from_cache(dict(want))
    cycling = (time.perf_counter() - started) * 1e6 / accounts
    last = wanted[-1]
    started = time.perf_counter()
    for _ in range(len(wanted)):
        store._from_cache(dict(last))
    hot = (time.perf_counter() - started) * 1e6 / (len(last) * len(wanted))
    return cycling, hot


def _measure(
    redis_url: str,
    batches: list[Batch],
    warmup: int,
    profiles: bool = True,
    label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS,
) -> tuple[dict[str, float], float, float]:
    settings = Settings(bucket="bench", topic_arn="bench", redis_url=redis_url)
    horizon = Decimal(state_horizon_s(RulesConfig()))
    store = AccountStateStore(  # as the worker's, with a model of that label delay
        redis_client(settings),
        StateConfig(profiles=profiles),
        horizon,
        DEFAULT_SHARD_ID,
        label_delay_days,
    )
    costs = stage_costs(store, batches, warmup)
    cycling, hot = cache_lookup_us(store, batches[warmup:])
    return costs, cycling, hot


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.state_stages", description=__doc__)
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--warmup", type=int, default=40, help="batches not timed")
    parser.add_argument("--fraud-ratio", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--profiles", choices=("on", "off"), default="on", help="FRAUD_PROFILES (as with a model)"
    )
    parser.add_argument(
        "--label-delay",
        type=int,
        default=DEFAULT_LABEL_DELAY_DAYS,
        help="the model's label_delay_days (how far back merchant counts are read; 0: no reuse)",
    )
    args = parser.parse_args(argv)
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 1 << 30)  # as consumer.worker.gc_policy.FullCollections.install
    batches = decoded_batches(args.records, args.fraud_ratio, args.seed)
    with tempfile.TemporaryDirectory() as scratch:
        server = RedisServer(Path(scratch))
        with server:
            costs, cycling, hot = _measure(
                server.url, batches, args.warmup, args.profiles == "on", args.label_delay
            )
    result: dict[str, Any] = {
        "records": args.records,
        "fraud_ratio": args.fraud_ratio,
        "cpu_us_per_record": {stage: round(us, 2) for stage, us in costs.items()},
        "main_thread_us_per_record": round(sum(costs.values()) - costs["write"], 2),
        "cache_lookup_us_per_account": {"cycling": round(cycling, 2), "hot": round(hot, 2)},
    }
    for stage, us in costs.items():
        log(f"{stage:>14} {us:6.2f} µs CPU a record")
    log(f"cache lookup: {cycling:.2f} µs an account cycling, {hot:.2f} hot")
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
