"""Every S3 line and alert the real processor writes for one fixed synthetic stream, as JSON.

A refactoring that must not change behaviour is checked by running this script against two
checkouts (it imports the package, the generator and the test driver from PYTHONPATH) and
comparing the files (nothing but `detected_at`, the wall clock, is removed):

    git worktree add /tmp/before <commit>
    PYTHONPATH=/tmp/before .venv/bin/python tests/support/outputs_snapshot.py /tmp/a.json
    PYTHONPATH=. .venv/bin/python tests/support/outputs_snapshot.py /tmp/b.json
    cmp /tmp/a.json /tmp/b.json

The stream: 6,000 generated records (300 accounts, 5% fraud archetypes, 3% invalid) in batches
of 250 through the processor over the daemon protocol (tests/support/drive.py), a real
redis-server on a free port, S3 and SNS in memory, the decisions trail on.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from itertools import count
from typing import Any

import redis

from load_test.synthetic import generate_records
from tests.support.drive import drive

START = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)


def snapshot() -> dict[str, Any]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    try:
        conn = redis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
        for _ in range(200):
            try:
                conn.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        ticks = count()

        def now() -> datetime:
            return datetime.fromtimestamp(START.timestamp() + next(ticks) * 0.7, tz=UTC)

        records = [
            r.data
            for r in generate_records(
                6000, accounts=300, fraud_ratio=0.05, invalid_ratio=0.03, seed=11, now=now
            )
        ]
        out = drive(
            [records[i : i + 250] for i in range(0, len(records), 250)], conn, decisions=True
        )

        def clean(line: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in line.items() if k != "detected_at"}

        return {
            "lines": {k: [clean(x) for x in out.s3.lines(k)] for k in sorted(out.s3.objects)},
            "alerts": [clean(m) for m in out.sns.messages],
            "checkpoints": out.checkpoints,
        }
    finally:
        server.terminate()


if __name__ == "__main__":
    result = snapshot()
    with open(sys.argv[1], "w", encoding="utf-8") as handle:
        json.dump(result, handle, sort_keys=True, indent=0)
    lines = sum(len(v) for v in result["lines"].values())
    print(
        f"{len(result['lines'])} objects, {lines} lines, {len(result['alerts'])} alerts",
        file=sys.stderr,
    )
