"""`fraudstream backtest`: a rule set against a file of records, before it goes live.

Exit codes: 0 done; 2 a rule set refused (the loader's message) or the input unreadable.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from typing import Any

EXIT_USAGE = 2
EXIT_CODES = (
    "0 done; 1 the run failed part-way; 2 a rule set refused (the loader's message), the "
    "input unreadable or bad options"
)


def add_parser(subparsers: Any) -> None:
    """Register `backtest` on the CLI's subparsers."""
    parser = subparsers.add_parser(
        "backtest",
        help="judge a file of records with a new rule set and a baseline; per-rule hits and diff",
        description="Runs the stream's engine over records in file order (stream order) with "
        "the stream's history semantics, for a new rule set and a baseline in one pass.",
        epilog=f"exit codes: {EXIT_CODES}",
    )
    parser.add_argument("--rules", required=True, help="the new rule set (.yaml, .yml, .json)")
    parser.add_argument(
        "--baseline", help="the rule set to compare with (default: the packaged default)"
    )
    parser.add_argument(
        "--input",
        required=True,
        help='records: replay JSON Lines ({"data": ...} a line) or CSV with a header; '
        "gzip allowed (.gz)",
    )
    parser.add_argument(
        "--jobs",
        type=_jobs,
        default=1,
        help="processes, splitting the accounts by hash (same results; default 1)",
    )
    parser.add_argument(
        "--parts",
        type=_jobs,
        default=None,
        metavar="K",
        help="split the accounts into K parts run --jobs at a time (K >= --jobs; same results): "
        "each process holds about 1/K of the histories, and the file is read K times",
    )
    parser.add_argument(
        "--history-cache",
        type=_entries,
        default=None,
        metavar="ENTRIES",
        help="history entries kept built for the accounts judged most recently, per process "
        "(~400 bytes each; more is faster on long histories; default 500000)",
    )
    parser.add_argument(
        "--model",
        metavar="DIR",
        help="also score with this model (fraudstream train's --out; needs the model extra): "
        "its flags and rules OR model against the `fraud` labels; one process",
    )
    parser.add_argument(
        "--label-delay-days",
        type=_entries,
        default=None,
        metavar="D",
        help="days after a transaction its `fraud` label reaches the merchant profiles "
        "(default: the model's own, features.json)",
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON document on stdout instead of the table"
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar on stderr (default: a bar on a terminal)",
    )
    parser.set_defaults(run=run)


def _jobs(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _entries(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    # Imported here: the engine, the loaders and the readers are for this command only.
    from consumer.backtest.history import VIEW_ENTRIES
    from consumer.backtest.inputs import READ_ERRORS, RecordFile
    from consumer.backtest.parallel import run_parallel
    from consumer.backtest.report import render_table, to_dict
    from consumer.backtest.run import PartitionError, run_backtest
    from consumer.rules.ruleset import RuleSetError
    from consumer.rules.ruleset_load import default_ruleset, load_ruleset
    from consumer.settings.config import ConfigError, load_state_config

    parts = args.jobs if args.parts is None else args.parts
    if parts < args.jobs:
        print(f"fraudstream backtest: --parts ({parts}) must be at least --jobs", file=sys.stderr)
        return EXIT_USAGE
    try:
        new = load_ruleset(args.rules)
        baseline = load_ruleset(args.baseline) if args.baseline else default_ruleset()
    except RuleSetError as exc:
        print(f"fraudstream backtest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        state = load_state_config()  # FRAUD_STATE_MAX_ENTRIES etc., as the worker reads them
    except ConfigError as exc:
        print(f"fraudstream backtest: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        source = RecordFile(args.input)
    except OSError as exc:
        print(f"fraudstream backtest: cannot read {args.input}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    model = None
    delay = args.label_delay_days
    if args.model is not None:
        if parts > 1:
            print(
                "fraudstream backtest: --model runs in one process (a merchant's profile spans "
                "accounts): drop --jobs and --parts",
                file=sys.stderr,
            )
            return EXIT_USAGE
        try:
            model, own_delay = _load_model(args.model)
        except Exception as exc:  # ImportError (no extra), ModelLoadError: the message says
            print(f"fraudstream backtest: {exc}", file=sys.stderr)
            return EXIT_USAGE
        delay = own_delay if delay is None else delay
    if parts > 1 and "fork" not in multiprocessing.get_all_start_methods():
        print("fraudstream backtest: --jobs and --parts need fork (Linux, macOS)", file=sys.stderr)
        return EXIT_USAGE
    cache = VIEW_ENTRIES if args.history_cache is None else args.history_cache
    show = not args.no_progress and sys.stderr.isatty()
    started = time.perf_counter()
    with source, _Progress(source.size, show) as bar:
        try:
            if parts > 1:
                result = run_parallel(
                    args.input,
                    new,
                    baseline,
                    args.jobs,
                    state=state,
                    progress=bar.update,
                    view_entries=cache,
                    parts=parts,
                )
            else:
                result = run_backtest(
                    source.items(),
                    new,
                    baseline,
                    state=state,
                    progress=lambda count: bar.update(source.position(), count),
                    view_entries=cache,
                    model=model,
                    label_delay_days=7 if delay is None else delay,
                )
        except READ_ERRORS as exc:  # e.g. a truncated or corrupt gzip file
            print(f"fraudstream backtest: reading {args.input}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except (PartitionError, RuntimeError) as exc:
            print(f"fraudstream backtest: {exc}", file=sys.stderr)
            return 1
    report = to_dict(result, new, baseline, time.perf_counter() - started)
    try:
        print(json.dumps(report) if args.json else render_table(report))
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader has seen enough; nothing left to flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _load_model(directory: str) -> tuple[Any, int]:
    """The model as the worker scores with it (its own threshold, else 80) and its label
    delay. LightGBM is an optional extra, imported only here."""
    from consumer.model.rule import ModelRule
    from consumer.model.scorer import ModelScorer
    from consumer.model.stage import BatchModel

    scorer = ModelScorer.load(directory)
    threshold = scorer.threshold if scorer.threshold is not None else 80.0
    return BatchModel(scorer, ModelRule(threshold, "high", False)), scorer.label_delay_days


class _Progress:
    """A tqdm bar over the input's bytes on disk (stderr), updated every few thousand records."""

    def __init__(self, size: int, show: bool) -> None:
        self._bar: Any = None
        if show:
            from tqdm import tqdm

            tqdm.monitor_interval = 0  # no monitor thread: --jobs forks after the bar exists
            self._bar = tqdm(
                total=size,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc="backtest",
                file=sys.stderr,
                dynamic_ncols=True,
            )
        self._started = time.perf_counter()

    def update(self, position: int, records: int) -> None:
        bar = self._bar
        if bar is None:
            return
        bar.update(position - bar.n)
        elapsed = time.perf_counter() - self._started
        rate = records / elapsed if elapsed > 0 else 0.0
        bar.set_postfix_str(f"{records:,} records, {rate:,.0f}/s", refresh=False)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *_: object) -> None:
        if self._bar is not None:
            self._bar.close()
