"""A generated day of a busy stream for `fraudstream report` (docs/analytics.md, "Measured").

Usage (from the repository root)::

    python -m bench.report_day --out /tmp/day [--lines 10000000] [--day 2026-12-01] [--jobs 2]
    /usr/bin/time -v fraudstream report --from 2026-12-01 --to 2026-12-01 \
        --source /tmp/day --out /tmp/day.html --json /tmp/day.json

Writes the bucket's layout directly (gzip JSON Lines, no pipeline: the point is the report's
reading, not the rules): `--lines` decision lines spread evenly over the day's 24 hour
partitions in objects of 500 lines (the worker's FRAUD_FLUSH_MAX_RECORDS) over 4 shards; 3% of
them flagged (a flagged line each, with a transaction), 0.2% shadow lines, 0.1% dead letters,
and one label file: every flagged transaction (30% fraud) and 1% of the others (1% fraud).
Model scores on every line, two rule set versions (the second from 14:00). Deterministic for the
same arguments. Prints a JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from multiprocessing import Pool
from pathlib import Path

PER_OBJECT = 500
SHARDS = 4
RULES = (("high_amount", "high"), ("velocity", "medium"), ("geo_mismatch", "low"))
CATEGORIES = ("grocery", "electronics", "travel", "gaming", "fuel", "jewelry")
CHANNELS = ("card_present", "online", "atm", "transfer")
COUNTRIES = ("US", "FR", "DE", "GB", "NG", "BR")


def _hour(args: tuple[str, str, int, int, int]) -> dict[str, int]:
    root, day, hour, lines, first = args
    rng = random.Random(hour * 7919 + 24)
    start_s = int(datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00").timestamp())
    rules_version = "v1" if hour < 14 else "v2"
    base = Path(root)
    counts = {"decisions": 0, "flagged": 0, "shadow": 0, "dead_letters": 0}
    labels: list[str] = []
    per_shard = lines // SHARDS
    for shard in range(SHARDS):
        shard_id = f"shardId-{shard:012d}"
        for offset in range(0, per_shard, PER_OBJECT):
            n_lines = min(PER_OBJECT, per_shard - offset)
            seq0 = first + shard * per_shard + offset
            name = f"{shard_id}-{seq0:056d}.jsonl.gz"
            dec: list[str] = []
            flg: list[str] = []
            shd: list[str] = []
            dead: list[str] = []
            for k in range(n_lines):
                seq = seq0 + k
                tid = f"t-{seq}"
                acct = f"acct-{seq % 200_000}"
                event = start_s + (offset + k) * 3600 // per_shard
                score = round(rng.random() ** 3 * 100, 2)
                roll = rng.random()
                common = (
                    f'"shard_id":"{shard_id}","sequence_number":"{seq:056d}",'
                    f'"sub_sequence_number":0'
                )
                if roll < 0.001:
                    dead.append(
                        f'{{"data":"e30=",{common},"approximate_arrival_timestamp":'
                        f'{event * 1000},"error":"amount: missing"}}'
                    )
                    continue
                model = f'"model_score":{score},"model_version":"m-2026-11"'
                flagged = roll < 0.031
                amount = f"{rng.randrange(100, 2_000_000) / 100:.2f}"
                # What a decision line carries of the transaction (docs/contract.md).
                seen = (
                    f'"amount":{amount},"currency":"USD","merchant_id":"m-{seq % 50_000}",'
                    f'"merchant_category":"{CATEGORIES[seq % len(CATEGORIES)]}",'
                    f'"channel":"{CHANNELS[seq % len(CHANNELS)]}",'
                    f'"origin_country":"{COUNTRIES[seq % 3]}",'
                    f'"destination_country":"{COUNTRIES[seq % len(COUNTRIES)]}"'
                )
                if flagged:
                    rule, severity = RULES[rng.randrange(len(RULES))]
                    txn = (
                        f'{{"transaction_id":"{tid}","account_id":"{acct}","amount":{amount},'
                        f'"timestamp":{event * 1000},"currency":"USD",'
                        f'"merchant_category":"{CATEGORIES[seq % len(CATEGORIES)]}",'
                        f'"channel":"{CHANNELS[seq % len(CHANNELS)]}",'
                        f'"origin_country":"{COUNTRIES[seq % 3]}",'
                        f'"destination_country":"{COUNTRIES[seq % len(COUNTRIES)]}"}}'
                    )
                    flg.append(
                        f'{{"transaction_id":"{tid}","account_id":"{acct}","severity":"{severity}",'
                        f'"reasons":[{{"rule":"{rule}","detail":"fired"}}],"transaction":{txn},'
                        f'{common},"detected_at":"{day}T{hour:02d}:00:00.000Z",'
                        f'"rules_version":"{rules_version}",{model}}}'
                    )
                    dec.append(
                        f'{{"transaction_id":"{tid}","account_id":"{acct}","event_time":'
                        f'"{event}.000","flagged":true,"severity":"{severity}","rules":["{rule}"],'
                        f'"rules_version":"{rules_version}",{common},{model},{seen}}}'
                    )
                    fraud = rng.random() < 0.3
                else:
                    dec.append(
                        f'{{"transaction_id":"{tid}","account_id":"{acct}","event_time":'
                        f'"{event}.000","flagged":false,"severity":null,"rules":[],'
                        f'"rules_version":"{rules_version}",{common},{model},{seen}}}'
                    )
                    fraud = rng.random() < 0.01
                if roll < 0.033:
                    shd.append(
                        f'{{"transaction_id":"{tid}","account_id":"{acct}","severity":"low",'
                        f'"reasons":[{{"rule":"night_owl","detail":"fired"}}],'
                        f'"transaction":{{"transaction_id":"{tid}","amount":1}},{common},'
                        f'"detected_at":"{day}T{hour:02d}:00:00.000Z",'
                        f'"rules_version":"{rules_version}","flagged_by_live_rules":'
                        f"{'true' if flagged else 'false'}}}"
                    )
                if flagged or rng.random() < 0.01:
                    labels.append(
                        f'{{"transaction_id":"{tid}","is_fraud":{"true" if fraud else "false"},'
                        f'"labelled_at":{(event + 86400) * 1000},"account_id":"{acct}",'
                        f'"event_time":{event * 1000}}}'
                    )
            for folder, key, rows in (
                ("decisions", "decisions", dec),
                ("flagged", "flagged", flg),
                ("shadow", "shadow", shd),
                ("dead-letter", "dead_letters", dead),
            ):
                if not rows:
                    continue
                part = f"dt={day}" if folder == "dead-letter" else f"dt={day}/hour={hour:02d}"
                path = base / folder / part / name
                path.parent.mkdir(parents=True, exist_ok=True)
                body = ("\n".join(rows) + "\n").encode()
                path.write_bytes(gzip.compress(body, compresslevel=6, mtime=0))
                counts[key] += len(rows)
    label_path = base / "labels" / f"{day}-{hour:02d}.jsonl.gz"
    label_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.write_bytes(gzip.compress(("\n".join(labels) + "\n").encode(), mtime=0))
    counts["labels"] = len(labels)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report_day", description=__doc__)
    parser.add_argument("--out", required=True, help="directory to write (the bucket's layout)")
    parser.add_argument("--lines", type=int, default=10_000_000, help="decision lines (a day)")
    parser.add_argument("--day", type=date.fromisoformat, default=date(2026, 12, 1))
    parser.add_argument("--jobs", type=int, default=2, help="processes (hours in parallel)")
    args = parser.parse_args(argv)
    per_hour = args.lines // 24
    started = time.monotonic()
    tasks = [
        (args.out, args.day.isoformat(), hour, per_hour, 1 + hour * per_hour) for hour in range(24)
    ]
    totals: dict[str, int] = {}
    with Pool(args.jobs) as pool:
        for counts in pool.imap_unordered(_hour, tasks):
            for key, value in counts.items():
                totals[key] = totals.get(key, 0) + value
            sys.stderr.write(json.dumps({"event": "hour_written", **counts}) + "\n")
    size = sum(p.stat().st_size for p in Path(args.out).rglob("*") if p.is_file())
    files = sum(1 for p in Path(args.out).rglob("*") if p.is_file())
    summary = {
        "out": args.out,
        "day": args.day.isoformat(),
        "lines": totals,
        "files": files,
        "bytes": size,
        "seconds": round(time.monotonic() - started, 1),
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
