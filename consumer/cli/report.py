"""`fraudstream report`: the bucket's outputs over a range of days as figures (docs/analytics.md):
one self-contained HTML page, the same figures as JSON, or Markdown for a terminal.

Exit codes: 0 written; 1 the report failed part-way; 2 the source or labels unreadable, or bad
options.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

from consumer.cli.common import ByteProgress, fail

EXIT_FAILED = 1
EXIT_UNREADABLE = 2
EXIT_CODES = (
    "0 written; 1 the report failed part-way; 2 the source or labels unreadable, or bad options"
)


def add_parser(subparsers: Any) -> None:
    """Register `report` on the CLI's subparsers."""
    parser = subparsers.add_parser(
        "report",
        help="the analysts' report: KPIs, breakdowns, quality and drift over a range of days",
        description="Reads the outputs (flagged, decisions, shadow, dead letters) and the labels "
        "of a range of days with DuckDB and writes the figures as HTML, JSON or Markdown "
        "(docs/analytics.md).",
        epilog=f"exit codes: {EXIT_CODES}",
    )
    parser.add_argument(
        "--from", dest="start", required=True, type=_day, help="first day, YYYY-MM-DD (UTC)"
    )
    parser.add_argument(
        "--to", dest="end", required=True, type=_day, help="last day, YYYY-MM-DD (UTC), included"
    )
    parser.add_argument(
        "--source",
        help="s3://bucket/prefix/ or a directory with the same layout "
        "(default: s3://$FRAUD_BUCKET/$FRAUD_PREFIX)",
    )
    parser.add_argument(
        "--labels",
        help="label files: s3://bucket/prefix/ or a directory (default: <source>labels/)",
    )
    parser.add_argument("--out", help="the report's file (default: stdout)")
    parser.add_argument("--json", dest="json_out", help="also write the figures as JSON here")
    parser.add_argument(
        "--format",
        choices=("html", "json", "md"),
        default="html",
        help="--out's format (default html)",
    )
    parser.add_argument(
        "--alert-severity",
        choices=("low", "medium", "high"),
        default=os.environ.get("FRAUD_ALERT_SEVERITY", "medium"),
        help="the alerts' lowest severity ($FRAUD_ALERT_SEVERITY, default medium)",
    )
    parser.add_argument(
        "--memory-limit", help="DuckDB's memory limit, e.g. 2GB (default: DuckDB's, 80%% of RAM)"
    )
    parser.add_argument("--threads", type=int, help="DuckDB's threads (default: the cores)")
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress on stderr (default: a bar on a terminal, JSON lines otherwise)",
    )
    parser.set_defaults(run=run)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day YYYY-MM-DD") from None


def default_source() -> str | None:
    bucket = os.environ.get("FRAUD_BUCKET", "").strip()
    if not bucket:
        return None
    prefix = os.environ.get("FRAUD_PREFIX", "").lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return f"s3://{bucket}/{prefix}"


def run(args: argparse.Namespace) -> int:
    from consumer.infra.logs import configure_logging
    from consumer.report import render
    from consumer.report.run import ReportRequest, build
    from consumer.report.tables import UnreadableSource

    # JSON lines on stderr; stdout is the report's when there is no --out.
    configure_logging(os.environ.get("FRAUD_REPORT_LOG_LEVEL", "warning"))
    if args.end < args.start:
        print("fraudstream report: --to is before --from", file=sys.stderr)
        return EXIT_UNREADABLE
    source = args.source or default_source()
    if not source:
        print("fraudstream report: no --source and FRAUD_BUCKET not set", file=sys.stderr)
        return EXIT_UNREADABLE
    request = ReportRequest(
        start=args.start,
        end=args.end,
        source=source,
        labels=args.labels,
        alert_severity=args.alert_severity,
        memory_limit=args.memory_limit,
        threads=args.threads,
    )
    shown = ByteProgress(args.no_progress, "reading", "report_progress")

    def progress(done: int, total: int) -> None:
        shown.update(done, total, bytes_read=done, bytes_total=total)

    try:
        figures = build(request, progress)
    except UnreadableSource as exc:
        print(f"fraudstream report: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    except Exception as exc:
        return fail("report", exc)
    finally:
        shown.close()
    as_json = json.dumps(figures, indent=2, sort_keys=False) + "\n"
    if args.json_out:
        Path(args.json_out).write_text(as_json, encoding="utf-8")
    if args.format == "html":
        text = render.html(figures)
    elif args.format == "md":
        text = render.markdown(figures)
    else:
        text = as_json
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"fraudstream report: written {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
