"""`python -m load_test.api` for a few seconds against a real server and redis-server: the
report's counts add up and nothing failed (no timing is asserted: the machine is shared)."""

from __future__ import annotations

import json
from pathlib import Path

from load_test.api import EXIT_OK, main


def test_a_short_run_reports_every_request_and_no_error(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    code = main(
        ["--rate", "40", "--duration", "2", "--warmup", "0.5", "--batch-share", "0.25",
         "--batch-size", "5", "--seed-records", "300", "--accounts", "100",
         "--connections", "4", "--out", str(out)]
    )  # fmt: skip
    assert code == EXIT_OK
    (report_file,) = out.glob("api-*.json")
    report = json.loads(report_file.read_text())
    (run,) = report["runs"]
    assert run["sent"] == 80
    assert run["ok"] + run["errors"] + run["timeouts"] + run["connection_errors"] == run["sent"]
    assert run["ok"] == run["sent"] and run["errors"] == 0 and run["timeouts"] == 0
    assert run["errors_by_status"] == {}
    by_route = run["latency_ms_by_route"]
    assert by_route["/v1/score"]["count"] + by_route["/v1/score:batch"]["count"] == 80
    assert by_route["/v1/score:batch"]["count"] == 20
    assert run["transactions_scored"] == 60 + 20 * 5
    assert sum(point["offered_per_s"] for point in run["timeline"]) == 80
    assert run["server_cpu_percent"] is not None and run["server_peak_rss_mb"] > 0
    assert list(out.glob("api-*.png"))


def test_help_names_the_exit_codes() -> None:
    from load_test.api import build_parser

    text = build_parser().format_help()
    assert "exit codes:" in text and "--find-max" in text
