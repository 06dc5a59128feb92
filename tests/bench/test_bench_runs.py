"""`python -m bench` end to end on a small workload: both sides run the real code against a
redis-server and a moto it starts itself, and the summary counts what they wrote."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.parametrize(("keep_alive", "alerts_in_process"), [(False, False), (True, True)])
def test_the_benchmark_runs_and_its_summary_matches_the_outputs(
    keep_alive: bool, alerts_in_process: bool
) -> None:
    command = [sys.executable, "-m", "bench", "--json", "--records", "1500"]
    command += ["--peer-records", "200", "--batch-size", "250", "--accounts", "300"]
    command += ["--cache-entries", "400"]
    if keep_alive:
        command.append("--moto-keep-alive")
    if alerts_in_process:
        command.append("--alerts-in-process")
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 1: targets missed, not a failure
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["moto_keep_alive"] is keep_alive
    assert summary["judged"] == 1500 + 2 * 250  # the timed records and two warm-up batches
    assert summary["flagged"] > 0
    # Alerts counted by the alert process reach the processor's metrics like its own.
    assert summary["alerts"] > 0 and summary["alerts_in_process"] is alerts_in_process
    assert (summary["alert_process_peak_rss_mb"] > 0) is not alerts_in_process
    assert summary["s3_flagged_lines"] == summary["flagged"]
    assert summary["records_per_s"] > 0 and summary["peer_records_per_s"] > 0
    assert summary["cache_entries"] == 400
    # Every party's CPU is counted, so the machine's bound is at least what was measured.
    assert summary["machine_bound_records_per_s"] >= 0.9 * summary["records_per_s"]


def test_the_model_score_benchmark_reports_every_part(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m bench.model_score` on a small file (it trains its own model): the features,
    their fixed cost, the encoding and the scorer, per batch size."""
    pytest.importorskip("lightgbm")
    from bench import model_score

    assert model_score.main(["--json", "--records", "2000", "--repeat", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 < result["features_for_empty_history_us"] < result["features_for_us"]
    assert result["features_for_store_order_us"] > result["features_for_empty_history_us"]
    assert result["history_entries_per_transaction"] > 0
    for part in ("encode_us", "raw_only_us", "explain_flagged_us", "score_batch_us"):
        assert set(result[part]) == {"1", "100", "500"}  # 10,000: more than the rows
        assert all(value > 0 for value in result[part].values())
    # Explaining every row costs more than the raw score alone, which includes no encoding.
    assert result["score_batch_us"]["500"] > result["raw_only_us"]["500"]


def test_the_state_stages_benchmark_times_every_stage(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m bench.state_stages` on a few batches: every stage of the store is timed, and
    the main thread's share is the stages but the save's write."""
    from bench import state_stages

    assert state_stages.main(["--json", "--records", "3000", "--warmup", "2"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    costs = result["cpu_us_per_record"]
    assert set(costs) == set(state_stages.STAGES)
    assert all(us >= 0 for us in costs.values())  # the timer's own cost taken off
    assert costs["load"] > 0 and costs["add"] > 0 and costs["write"] > 0
    assert result["main_thread_us_per_record"] == pytest.approx(
        sum(costs.values()) - costs["write"], abs=0.05
    )
    assert all(us > 0 for us in result["cache_lookup_us_per_account"].values())
