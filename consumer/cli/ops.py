"""`fraudstream ops scale`: operating the service on AWS; `scale` sets the ECS service's desired
count from the stream's open shards (the arithmetic and the update: consumer/cli/scale.py)."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from consumer.cli.common import aws_client, exit_codes, fail


def add_parser(subparsers: Any) -> None:
    """Register `ops` and its `scale` on the CLI's subparsers."""
    stream_default = os.environ.get("FRAUD_STREAM")
    parser = subparsers.add_parser(
        "ops", help="operating the service on AWS", epilog=exit_codes("see `ops scale --help`")
    )
    actions = parser.add_subparsers(dest="action", required=True)
    scale = actions.add_parser(
        "scale",
        help="set the ECS service's desired count from the stream's open shards",
        description=__doc__,
        epilog=exit_codes(
            "0 done or nothing to change (one JSON document on stdout)",
            "1 the stream or the service could not be read or updated",
        ),
    )
    scale.add_argument(
        "--stream",
        default=stream_default,
        required=stream_default is None,
        help="the stream (default: $FRAUD_STREAM)",
    )
    scale.add_argument("--cluster", required=True, help="the ECS cluster")
    scale.add_argument("--service", required=True, help="the ECS service of the workers")
    scale.add_argument(
        "--shards-per-task",
        type=int,
        required=True,
        help="shards one task is sized for (docs/performance.md)",
    )
    scale.add_argument("--min", type=int, default=1, help="fewest tasks (default 1)")
    scale.add_argument("--max", type=int, required=True, help="most tasks")
    scale.add_argument(
        "--dry-run", action="store_true", help="print what it would do; change nothing"
    )
    scale.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """`ops scale`: print the result as one JSON object."""
    # Imported here: botocore is for the commands that call AWS only.
    from botocore.exceptions import BotoCoreError, ClientError

    from consumer.cli.scale import ScaleError, scale

    try:
        result = scale(
            aws_client("kinesis"),
            aws_client("ecs"),
            stream=args.stream,
            cluster=args.cluster,
            service=args.service,
            shards_per_task=args.shards_per_task,
            minimum=args.min,
            maximum=args.max,
            dry_run=args.dry_run,
        )
    except (ScaleError, BotoCoreError, ClientError) as exc:
        return fail("ops scale", exc)
    print(json.dumps(result.as_dict()))
    return 0
