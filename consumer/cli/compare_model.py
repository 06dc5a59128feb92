"""`fraudstream compare-model`: rules alone against rules OR model on the later slice that
`train --holdout-fraction` left out, as JSON (needs the `model` extra); see docs/model.md."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from consumer.cli.common import exit_codes, fail


def add_parser(subparsers: Any) -> None:
    """Register `compare-model` on the CLI's subparsers."""
    parser = subparsers.add_parser(
        "compare-model",
        help="rules alone vs rules OR model on a later, held-out slice",
        description=__doc__,
        epilog=exit_codes(
            "0 compared (one JSON document on stdout)",
            "1 the input or the model unreadable, or the model extra missing",
        ),
    )
    parser.add_argument("--input", required=True, help="the labelled file the model saw")
    parser.add_argument("--model", required=True, help="`train --holdout-fraction F` output")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Rules alone against rules OR model on the slice the model never saw (docs/model.md)."""
    # Imported here: LightGBM and numpy are an optional extra, and the worker must start without.
    try:
        from consumer.model.compare import compare
        from consumer.model.dataset import DatasetError
        from consumer.model.scorer import ModelLoadError
    except ImportError as exc:
        return fail("compare-model", ImportError(f"{exc}: pip install 'fraudstream[model]'"))
    try:
        result = compare(Path(args.input), Path(args.model))
    except (DatasetError, ModelLoadError, OSError, ValueError) as exc:
        return fail("compare-model", exc)
    print(json.dumps(result, indent=2))
    return 0
