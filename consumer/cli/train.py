"""`fraudstream train`: train the model score on a labelled file and write the model directory
with its report (needs the `model` extra); see docs/model.md."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

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
        "--label-delay-days",
        type=int,
        default=7,
        metavar="D",
        help="days after a transaction its label is known (merchant features; default 7)",
    )
    parser.set_defaults(run=run)


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
        report = train(
            Path(args.input),
            Path(args.out),
            threshold_precision=args.threshold_precision,
            valid_fraction=args.valid_fraction,
            holdout_fraction=args.holdout_fraction,
            label_delay_days=args.label_delay_days,
        )
    except (DatasetError, TrainError, ModelLoadError, OSError) as exc:
        return fail("train", exc)
    print((Path(args.out) / "report.md").read_text(encoding="utf-8"), end="")
    return 0 if report else 1
