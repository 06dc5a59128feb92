"""Write a labelled file of synthetic transactions for `fraudstream train` (and backtests).

Usage (from the repository root)::

    python -m load_test.labelled --out labelled.jsonl.gz --records 200000 [--rate 2]
        [--accounts 1000] [--fraud-ratio 0.05] [--invalid-ratio 0.0] [--seed 7]
        [--start 2026-11-01T00:00:00Z] [--realistic]

A progress bar on stderr (a terminal only; --no-progress for none), the counts as one JSON
document on stdout. One line per record in the producer's replay format (``{"data": "<record>",
"partition_key": "<account>"}``), so the same file can be replayed into a stream. Event times
come from a simulated clock: ``--start`` plus one ``1/rate`` second step per record, so a run is
the same bytes for the same arguments and spans ``records / rate`` seconds of event time. The
labels are the generator's extra fields: ``expected_rules`` always, ``fraud`` and
``fraud_archetype`` with ``--realistic`` (see load_test/synthetic.py). With ``--invalid-ratio``,
that share of the records is deliberately invalid (unlabelled; one that is not UTF-8 is written
as ``data_b64``), for `fraudstream backtest`, which counts them by reason.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from load_test.synthetic import TransactionGenerator


class SimulatedClock:
    """`start`, then `step_s` later on every call: reproducible event times."""

    def __init__(self, start: datetime, step_s: float) -> None:
        self._start = start
        self._step = timedelta(seconds=step_s)
        self._calls = 0

    def __call__(self) -> datetime:
        moment = self._start + self._step * self._calls
        self._calls += 1
        return moment


def write_labelled(
    out: IO[str],
    records: int,
    *,
    rate: float = 2.0,
    accounts: int = 1000,
    fraud_ratio: float = 0.05,
    seed: int = 7,
    start: datetime | None = None,
    realistic: bool = False,
    invalid_ratio: float = 0.0,
    progress: bool = False,
) -> TransactionGenerator:
    """Write `records` replay lines to `out`; returns the generator (its `counts`). With
    `progress`, a tqdm bar of the records on stderr when it is a terminal."""
    clock = SimulatedClock(start or datetime(2026, 11, 1, tzinfo=UTC), 1.0 / rate)
    generator = TransactionGenerator(
        accounts=accounts,
        fraud_ratio=fraud_ratio,
        invalid_ratio=invalid_ratio,
        seed=seed,
        now=clock,
        realistic=realistic,
    )
    from tqdm import tqdm

    bar = tqdm(
        total=records,
        unit="record",
        unit_scale=True,
        desc="generating",
        file=sys.stderr,
        disable=not (progress and sys.stderr.isatty()),
        mininterval=0.5,
    )
    try:
        for record in generator.records(records):
            try:
                line = {"data": record.data.decode(), "partition_key": record.account_id}
            except UnicodeDecodeError:  # an invalid_utf8 record
                encoded = base64.b64encode(record.data).decode("ascii")
                line = {"data_b64": encoded, "partition_key": record.account_id}
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
            bar.update(1)
    finally:
        bar.close()
    return generator


def _start(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def build_parser() -> argparse.ArgumentParser:
    from load_test.cli_help import HelpFormatter, exit_codes

    parser = argparse.ArgumentParser(
        prog="python -m load_test.labelled",
        description=__doc__,
        formatter_class=HelpFormatter,
        epilog=exit_codes("0 written"),
    )
    parser.add_argument("--out", required=True, help="file to write (.gz: gzip)")
    parser.add_argument("--records", type=int, required=True, help="records to write")
    parser.add_argument("--rate", type=float, default=2.0, help="records per event-time second")
    parser.add_argument("--accounts", type=int, default=1000, help="ordinary accounts")
    parser.add_argument(
        "--fraud-ratio", type=float, default=0.05, help="share of labelled (fraud) records"
    )
    parser.add_argument(
        "--invalid-ratio", type=float, default=0.0, help="share of invalid records (0..1)"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    parser.add_argument(
        "--start",
        type=_start,
        default=None,
        help="ISO-8601 event time of the first record (default: 2026-11-01T00:00:00Z)",
    )
    parser.add_argument("--realistic", action="store_true", help="fraud labels, noise, hard fraud")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.records < 1 or args.rate <= 0:
        parser.error("--records and --rate must be positive")
    path = Path(args.out)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as handle:
        generator = write_labelled(
            handle,
            args.records,
            rate=args.rate,
            accounts=args.accounts,
            fraud_ratio=args.fraud_ratio,
            seed=args.seed,
            start=args.start,
            realistic=args.realistic,
            invalid_ratio=args.invalid_ratio,
            progress=not args.no_progress,
        )
    print(json.dumps({"out": str(path), "counts": dict(sorted(generator.counts.items()))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
