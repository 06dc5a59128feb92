"""`python -m bench.backtest [--json]`: records per second of `fraudstream backtest`.

Writes a labelled replay file with the load-test generator (gzip JSON Lines, event time at
--rate, --accounts ordinary accounts, 5 % fraud, 1 % invalid) unless --input names one, then runs
the backtest as the CLI does (file read and decompressed, every record parsed, history built,
judged by --rules and by the default rule set; --parts and --history-cache as the CLI's)
--repeat times for each --jobs value and reports the best wall-clock rate, the CPU time per
record of the single-process run (less sensitive to other jobs on the machine than wall time)
and the load average, since a shared machine's numbers are only a range.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from consumer.backtest.history import VIEW_ENTRIES
from consumer.backtest.inputs import RecordFile
from consumer.backtest.parallel import run_parallel
from consumer.backtest.run import run_backtest
from consumer.rules.ruleset_load import default_ruleset, load_ruleset
from load_test.labelled import write_labelled

DAY_OF_A_BUSY_SHARD = 86_400_000  # 1,000 records/s for 24 h


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")


def _generate(path: Path, records: int, accounts: int, rate: float) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        write_labelled(
            handle,
            records,
            rate=rate,
            accounts=accounts,
            fraud_ratio=0.05,
            invalid_ratio=0.01,
            seed=7,
            start=datetime(2026, 11, 24, tzinfo=UTC),
        )


def _once(
    path: Path, rules: str, jobs: int, parts: int | None, cache: int, limit: int | None
) -> tuple[float, float, int]:
    """(wall s, CPU s of this process, records) for one run (the first `limit` records)."""
    new, baseline = load_ruleset(rules), default_ruleset()
    wall, cpu = time.perf_counter(), time.process_time()
    if jobs == 1 and not parts:
        with RecordFile(path) as source:
            items = islice(source.items(), limit)
            result = run_backtest(items, new, baseline, view_entries=cache)
    else:
        result = run_parallel(path, new, baseline, jobs, parts=parts, view_entries=cache)
    return time.perf_counter() - wall, time.process_time() - cpu, result.records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backtest", description=__doc__)
    parser.add_argument("--input", help="a replay or CSV file (default: generate one)")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="event-time records/s")
    parser.add_argument("--rules", default="docs/rules.example.yaml")
    parser.add_argument("--jobs", default="1,2", help="comma-separated (default 1,2)")
    parser.add_argument("--parts", type=int, help="as the CLI's --parts (at least each --jobs)")
    parser.add_argument(
        "--history-cache", type=int, default=VIEW_ENTRIES, help="as the CLI's --history-cache"
    )
    parser.add_argument("--limit", type=int, help="only the first N records (--jobs 1 only)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.limit is not None and (args.jobs != "1" or args.parts):
        parser.error("--limit needs --jobs 1 and no --parts")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(args.input) if args.input else Path(scratch) / "records.jsonl.gz"
        if not args.input:
            started = time.perf_counter()
            _generate(path, args.records, args.accounts, args.rate)
            _say(f"generated {args.records:,} records in {time.perf_counter() - started:.1f} s")
        runs: list[dict[str, Any]] = []
        for jobs in (int(j) for j in args.jobs.split(",")):
            best: tuple[float, float, int] | None = None
            for _ in range(args.repeat):
                outcome = _once(path, args.rules, jobs, args.parts, args.history_cache, args.limit)
                best = outcome if best is None or outcome[0] < best[0] else best
            assert best is not None
            wall, cpu, records = best
            row: dict[str, Any] = {
                "jobs": jobs,
                "records": records,
                "wall_s": round(wall, 2),
                "records_per_s": round(records / wall),
                "day_of_a_busy_shard_min": round(DAY_OF_A_BUSY_SHARD / (records / wall) / 60, 1),
            }
            if jobs == 1 and not args.parts:
                row["cpu_us_per_record"] = round(cpu / records * 1e6, 1)
            runs.append(row)
            _say(
                f"jobs {jobs}: {records:,} records in {wall:.2f} s = {records / wall:,.0f} "
                f"records/s; 86.4M records would take {row['day_of_a_busy_shard_min']} min"
                + (
                    f" ({row['cpu_us_per_record']} µs CPU/record)"
                    if "cpu_us_per_record" in row
                    else ""
                )
            )
        report = {
            "rules": args.rules,
            "input": args.input or f"generated: {args.records} records, {args.accounts} accounts",
            "parts": args.parts,
            "history_cache": args.history_cache,
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "runs": runs,
        }
        _say(f"load average {report['load_average']}, {report['cpus']} CPUs")
        if args.json:
            sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
