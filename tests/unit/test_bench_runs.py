"""`python -m bench` end to end on a small workload: both sides run the real code against a
redis-server and a moto it starts itself, and the summary counts what they wrote."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.parametrize("keep_alive", [False, True])
def test_the_benchmark_runs_and_its_summary_matches_the_outputs(keep_alive: bool) -> None:
    command = [sys.executable, "-m", "bench", "--json", "--records", "1500"]
    command += ["--peer-records", "200", "--batch-size", "250", "--accounts", "300"]
    command += ["--cache-entries", "400"]
    if keep_alive:
        command.append("--moto-keep-alive")
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 1: targets missed, not a failure
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["moto_keep_alive"] is keep_alive
    assert summary["judged"] == 1500 + 2 * 250  # the timed records and two warm-up batches
    assert summary["flagged"] > 0
    assert summary["s3_flagged_lines"] == summary["flagged"]
    assert summary["records_per_s"] > 0 and summary["peer_records_per_s"] > 0
    assert summary["cache_entries"] == 400
    # Every party's CPU is counted, so the machine's bound is at least what was measured.
    assert summary["machine_bound_records_per_s"] >= 0.9 * summary["records_per_s"]
