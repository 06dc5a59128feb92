"""`fraudstream status`: per shard, who holds its lease, where it is checkpointed and how far
behind it is; with a rule set, its published and last good versions; with a Redis URL, the
model's precision and recall by day from the labels (docs/monitoring.md). It only reads; what it
reads and how is in consumer/cli/status_report.py."""

from __future__ import annotations

import argparse
import os
from typing import Any

from consumer.cli.common import aws_client, exit_codes, fail


def add_parser(subparsers: Any) -> None:
    """Register `status` on the CLI's subparsers."""
    stream_default = os.environ.get("FRAUD_STREAM")
    parser = subparsers.add_parser(
        "status",
        help="per shard: lease owner, checkpoint, how far behind (reads only)",
        description=__doc__,
        epilog=exit_codes(
            "0 read (an unreachable Redis is a line of the output)",
            "1 the stream or the lease table could not be read",
        ),
    )
    parser.add_argument(
        "--stream",
        default=stream_default,
        required=stream_default is None,
        help="the stream (default: $FRAUD_STREAM)",
    )
    parser.add_argument(
        "--table",
        default=os.environ.get("FRAUD_APP_NAME", "fraudstream"),
        help="the KCL lease table: the application name ($FRAUD_APP_NAME)",
    )
    parser.add_argument(
        "--ruleset",
        default=os.environ.get("FRAUD_RULESET") or None,
        help="the rule set: its published and last good versions (default: $FRAUD_RULESET; "
        "without it that section is left out)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL") or None,
        help="the workers' Redis, for the model's quality by day from the labels (default: "
        "$REDIS_URL; without it that section is left out)",
    )
    parser.add_argument(
        "--redis-cluster",
        action="store_true",
        default=os.environ.get("FRAUD_REDIS_CLUSTER", "").lower() in ("true", "1", "yes"),
        help="Redis in cluster mode ($FRAUD_REDIS_CLUSTER)",
    )
    parser.add_argument(
        "--days",
        type=_days,
        default=14,
        help="the model's quality for this many days, today included (default 14)",
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON document on stdout instead of the tables"
    )
    parser.set_defaults(run=run)


def _days(raw: str) -> int:
    """1 to 366: a year of daily counters is one small pipelined read."""
    try:
        days = int(raw)
    except ValueError:
        days = 0
    if not 1 <= days <= 366:
        raise argparse.ArgumentTypeError(f"want a whole number of days 1-366, got {raw!r}")
    return days


def run(args: argparse.Namespace) -> int:
    # Imported here: botocore and the rule-set loaders are for this command only.
    from botocore.exceptions import BotoCoreError, ClientError

    from consumer.cli.status_report import (
        quality_status,
        render_json,
        render_quality,
        render_ruleset,
        render_table,
        ruleset_status,
        shard_statuses,
    )

    try:
        statuses = shard_statuses(
            aws_client("kinesis"), aws_client("dynamodb"), args.stream, args.table
        )
    except (BotoCoreError, ClientError) as exc:
        return fail("status", exc)
    rules = None
    if args.ruleset:  # the published rule set, the last good one: what a new worker would use
        last_good = os.environ.get("FRAUD_RULESET_LAST_GOOD") or None
        rules = ruleset_status(args.ruleset, last_good, aws_client("s3"))
    quality = None
    if args.redis_url:  # the labels' counters; unreachable is a line of the output, not a failure
        quality = quality_status(args.redis_url, args.days, args.redis_cluster)
    if args.json:
        print(render_json(args.stream, args.table, statuses, rules, quality))
    else:
        sections = [render_table(statuses)]
        if rules:
            sections.append(render_ruleset(rules))
        if quality:
            sections.append(render_quality(quality))
        print("\n\n".join(sections))
    return 0
