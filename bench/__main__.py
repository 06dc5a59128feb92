"""`python -m bench [--json] ...`: the hot-path benchmark (see bench/__init__.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.harness import Options, log, run, table
from consumer.settings.config import StateConfig


def _positive(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {raw!r}")
    return value


def _ratio(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within 0..1, got {raw!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "The record processor's hot path against a naive per-record peer, side by side on"
            " a redis-server and a moto server that the benchmark starts and stops itself."
        ),
    )
    p.add_argument("--records", type=_positive, default=100_000, help="timed, our side")
    p.add_argument("--batch-size", type=_positive, default=500, help="records per GetRecords")
    p.add_argument("--accounts", type=_positive, default=10_000)
    p.add_argument("--fraud-ratio", type=_ratio, default=0.05)
    p.add_argument("--invalid-ratio", type=_ratio, default=0.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--peer-records", type=_positive, default=10_000, help="timed, the peer")
    p.add_argument("--warmup-batches", type=int, default=2, help="untimed, on both sides")
    p.add_argument("--json", action="store_true", help="one JSON object as stdout's last line")
    p.add_argument("--profile", action="store_true", help="pyinstrument on our side")
    p.add_argument("--profile-dir", type=Path, help="keep the profile (text and HTML) here")
    p.add_argument("--keep-logs", type=Path, help="copy the processes' logs here")
    p.add_argument("--model", type=Path, help="score with this model (fraudstream train's --out)")
    p.add_argument(
        "--cache-entries",
        type=int,
        default=StateConfig().cache_entries,
        help="history entries the processor's account cache may hold (FRAUD_STATE_CACHE_ENTRIES)",
    )
    p.add_argument(
        "--alerts-in-process",
        action="store_true",
        help="publish alerts from the processor's own process (FRAUD_ALERT_PROCESS=false)",
    )
    p.add_argument(
        "--moto-keep-alive",
        action="store_true",
        help="serve moto with HTTP keep-alive, as AWS does (moto_server closes every connection)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.fraud_ratio + args.invalid_ratio > 1.0:
        parser().error("--fraud-ratio + --invalid-ratio must not exceed 1")
    if args.warmup_batches < 0:
        parser().error("--warmup-batches must be >= 0")
    opts = Options(
        records=args.records,
        batch_size=args.batch_size,
        accounts=args.accounts,
        fraud_ratio=args.fraud_ratio,
        invalid_ratio=args.invalid_ratio,
        seed=args.seed,
        peer_records=args.peer_records,
        warmup_batches=args.warmup_batches,
        profile=args.profile,
        profile_dir=args.profile_dir,
        keep_logs=args.keep_logs,
        model=args.model,
        moto_keep_alive=args.moto_keep_alive,
        cache_entries=args.cache_entries,
        alerts_in_process=args.alerts_in_process,
    )
    try:
        summary = run(opts)
    except RuntimeError as exc:
        log(f"bench failed: {exc}")
        return 1
    profile = summary.pop("_profile_text", None)
    if profile:
        log(profile)
    log(table(summary))
    if args.json:
        sys.stdout.write(json.dumps(summary, sort_keys=True) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
