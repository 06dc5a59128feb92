"""`fraudstream train`: train the model score on a labelled file and write the model directory
with its report (needs the `model` extra); see docs/model.md."""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from consumer.cli.common import exit_codes, fail


def add_parser(subparsers: Any) -> None:
    """Register `train` on the CLI's subparsers."""
    parser = subparsers.add_parser(
        "train",
        help="train the model score on a labelled file",
        description=__doc__,
        epilog=exit_codes(
            "0 the model and its report written (the report on stdout)",
            "1 the input unreadable, training failed, no model could be chosen or the model "
            "extra is missing",
        ),
    )
    parser.add_argument("--input", required=True, help="labelled JSON Lines (.gz: gzip)")
    parser.add_argument("--out", required=True, help="model directory to write")
    parser.add_argument(
        "--threshold-precision",
        type=float,
        default=None,
        metavar="P",
        help="threshold: most validation recall at precision >= P (default: best F1)",
    )
    parser.add_argument(
        "--valid-fraction",
        type=float,
        default=0.2,
        help="latest share of the training rows used to choose the threshold (default 0.2)",
    )
    parser.add_argument(
        "--holdout-fraction",
        type=float,
        default=0.0,
        help="latest share of event time left out for `fraudstream compare-model` (default 0)",
    )
    parser.add_argument(
        "--labels",
        metavar="FILE",
        default=None,
        help="a label file (docs/contract.md; CSV or JSON Lines, gzip allowed): the labels and "
        "when each became known, instead of the records' `fraud` field; a transaction it does "
        "not name is legitimate",
    )
    parser.add_argument(
        "--label-delay-days",
        type=int,
        default=7,
        metavar="D",
        help="days after a transaction its label is known (merchant features; default 7)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar on stderr (default: one on a terminal)",
    )
    parser.set_defaults(run=run)


@contextlib.contextmanager
def progress(enabled: bool, stream: TextIO | None = None, tick_s: float = 0.5) -> Iterator[Any]:
    """A tqdm bar on `stream` (stderr) while the block runs, when it is a terminal: the time
    spent so far (reading the file, building the features and training have no count to show
    from here). Yields the bar, or None when there is none."""
    out = stream if stream is not None else sys.stderr
    if not (enabled and out.isatty()):
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(desc="training", file=out, bar_format="{desc}: {elapsed} elapsed {postfix}")
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(tick_s):
            bar.refresh()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield bar
    finally:
        stop.set()
        ticker.join()
        bar.close()


def run(args: argparse.Namespace) -> int:
    """Train the model score on a labelled file (needs the `model` extra); see docs/model.md."""
    # Imported here: LightGBM and numpy are an optional extra, and the worker must start without.
    try:
        from consumer.model.dataset import DatasetError
        from consumer.model.scorer import ModelLoadError
        from consumer.model.train import TrainError, train
    except ImportError as exc:
        return fail("train", ImportError(f"{exc}: pip install 'fraudstream[model]'"))
    try:
        with progress(not args.no_progress):
            report = train(
                Path(args.input),
                Path(args.out),
                threshold_precision=args.threshold_precision,
                valid_fraction=args.valid_fraction,
                holdout_fraction=args.holdout_fraction,
                label_delay_days=args.label_delay_days,
                labels_path=Path(args.labels) if args.labels else None,
            )
    except (DatasetError, TrainError, ModelLoadError, OSError) as exc:
        return fail("train", exc)
    print((Path(args.out) / "report.md").read_text(encoding="utf-8"), end="")
    return 0 if report else 1
