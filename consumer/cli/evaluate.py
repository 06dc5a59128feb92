"""`fraudstream evaluate`: the benchmark's protocol (warm-up, train, delay, test days) over a
labelled file: ROC AUC, average precision and Card Precision@k of the model, the rules and
rules OR model, as a table or JSON, and a PNG of their precision-recall curves (needs the
`model` extra; the PNG needs matplotlib); see docs/model.md."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consumer.cli.common import exit_codes, fail

if TYPE_CHECKING:
    from consumer.model.evaluate import Evaluation


def _days(minimum: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number of days: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


def add_parser(subparsers: Any) -> None:
    """Register `evaluate` on the CLI's subparsers."""
    parser = subparsers.add_parser(
        "evaluate",
        help="the benchmark's protocol: train, delay, test days; ROC AUC, AP, Card Precision@k",
        description=__doc__,
        epilog=exit_codes(
            "0 evaluated",
            "1 the input or the labels unreadable, too few days, the PNG not written or the "
            "model extra missing",
        ),
    )
    parser.add_argument("file", help="labelled JSON Lines (.gz: gzip), in stream order")
    parser.add_argument(
        "--json", action="store_true", help="one JSON document on stdout instead of the table"
    )
    parser.add_argument(
        "--png", metavar="OUT.png", help="write the precision-recall curves there (default: no PNG)"
    )
    parser.add_argument("--warmup-days", type=_days(0), default=1, help="history only (default 1)")
    parser.add_argument(
        "--train-days", type=_days(1), default=7, help="days to train on (default 7)"
    )
    parser.add_argument(
        "--delay-days",
        type=_days(0),
        default=7,
        help="days before a label is known; history only (default 7)",
    )
    parser.add_argument("--test-days", type=_days(1), default=7, help="days to test on (default 7)")
    parser.add_argument("--k", type=_days(1), default=100, help="cards per day (default 100)")
    parser.add_argument(
        "--labels",
        metavar="FILE",
        help="a label file (docs/contract.md; CSV or JSON Lines, gzip allowed): each label known "
        "from its labelled_at; default: the records' `fraud` field, known --delay-days after",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """The benchmark's protocol over a labelled file (docs/model.md)."""
    # Imported here: LightGBM and numpy are an optional extra, and the worker must start without.
    try:
        from consumer.model.dataset import DatasetError
        from consumer.model.evaluate import EvaluateError, Periods, evaluate
        from consumer.model.labels import FileLabels
    except ImportError as exc:
        return fail("evaluate", ImportError(f"{exc}: pip install 'fraudstream[model]'"))
    periods = Periods(args.warmup_days, args.train_days, args.delay_days, args.test_days)
    try:
        labels = FileLabels(Path(args.labels)) if args.labels else None
        if labels is not None and labels.bad:
            shown = "; ".join(labels.bad_examples)
            print(f"evaluate: {labels.bad} bad label lines skipped ({shown})", file=sys.stderr)
        result = evaluate(Path(args.file), periods, k=args.k, labels=labels)
    except (DatasetError, EvaluateError, OSError, UnicodeDecodeError) as exc:
        return fail("evaluate", exc)
    if args.png:
        try:
            write_png(result, Path(args.png))
        except (ImportError, OSError, ValueError) as exc:
            return fail("evaluate", exc)
    if args.json:
        print(json.dumps(result.summary(), indent=2))
    else:
        print(render_table(result), end="")
    return 0


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def render_table(result: Evaluation) -> str:
    summary = result.summary()
    dates = summary["period_dates"]
    lines = [
        f"{summary['input']}: day 0 = {summary['first_day']}",
        *(
            f"  {name:<7} {dates[name][0]} .. {dates[name][1]}: {summary['rows'][name]} records, "
            f"{summary['frauds'][name]} frauds"
            for name in ("warmup", "train", "delay", "test")
            if name in dates
        ),
        f"  test kept: {summary['test_rows_kept']} records, {summary['test_frauds_kept']} "
        f"frauds over {summary['test_days_present']} days "
        f"({summary['test_rows_known_compromised']} of known compromised cards dropped); "
        f"model: {summary['trees']} trees",
        "",
        f"{'':<16}{'ROC AUC':>10}{'AP':>10}{'CP@' + str(summary['k']):>10}",
    ]
    for name, variant in summary["variants"].items():
        lines.append(
            f"{name:<16}{_cell(variant['roc_auc']):>10}{_cell(variant['average_precision']):>10}"
            f"{_cell(variant['card_precision_at_k']):>10}"
        )
    return "\n".join(lines) + "\n"


def write_png(result: Evaluation, out: Path) -> None:
    """The precision-recall curves of the three variants on the kept test transactions."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    from consumer.model.metrics import precision_recall_curve

    figure, axes = pyplot.subplots(figsize=(6, 5))
    try:
        for name, variant in result.variants.items():
            precision, recall, _ = precision_recall_curve(result.test_labels, variant.scores)
            axes.step(
                [0.0, *recall.tolist()],
                [precision[0] if precision.size else 1.0, *precision.tolist()],
                where="post",
                label=f"{name} (AP {variant.average_precision:.3f})",
            )
        axes.set_xlabel("recall")
        axes.set_ylabel("precision")
        axes.set_xlim(0.0, 1.0)
        axes.set_ylim(0.0, 1.05)
        axes.set_title(f"test {result.period_dates['test'][0]} .. {result.period_dates['test'][1]}")
        axes.legend(loc="lower left")
        figure.savefig(out, format="png", dpi=100)
    finally:
        pyplot.close(figure)
