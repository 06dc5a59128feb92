"""`fraudstream status`: per shard, who holds its lease, where it is checkpointed and how far
behind it is, and with a rule set, its published and last good versions. It only reads; what it
reads and how is in consumer/cli/status_report.py."""

from __future__ import annotations

import argparse
import os
from typing import Any

from consumer.cli.common import aws_client, fail


def add_parser(subparsers: Any) -> None:
    """Register `status` on the CLI's subparsers."""
    stream_default = os.environ.get("FRAUD_STREAM")
    parser = subparsers.add_parser(
        "status", help="per shard: lease owner, checkpoint, how far behind (reads only)"
    )
    parser.add_argument(
        "--stream", default=stream_default, required=stream_default is None, help="$FRAUD_STREAM"
    )
    parser.add_argument(
        "--table",
        default=os.environ.get("FRAUD_APP_NAME", "fraudstream"),
        help="the KCL lease table: the application name ($FRAUD_APP_NAME)",
    )
    parser.add_argument(
        "--ruleset",
        default=os.environ.get("FRAUD_RULESET") or None,
        help="the rule set: its published and last good versions ($FRAUD_RULESET)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON document instead")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: botocore and the rule-set loaders are for this command only.
    from botocore.exceptions import BotoCoreError, ClientError

    from consumer.cli.status_report import (
        render_json,
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
    if args.json:
        print(render_json(args.stream, args.table, statuses, rules))
    else:
        print(render_table(statuses) + ("\n\n" + render_ruleset(rules) if rules else ""))
    return 0
