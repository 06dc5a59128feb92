"""`fraudstream local up | down`: start and stop the embedded local stack (consumer/local/stack.py):
Kinesis and AWS stand-ins, Redis, the stream, bucket and topic, and workers under the real
MultiLangDaemon."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from consumer.cli.common import stack_arguments, stack_options


def add_parser(subparsers: Any) -> None:
    """Register `local` and its `up` and `down` on the CLI's subparsers."""
    parser = subparsers.add_parser("local", help="the embedded local stack")
    actions = parser.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="start servers, stream, bucket, topic and workers")
    stack_arguments(up)
    up.add_argument("--workers", type=int, default=1)
    up.add_argument("--shards", type=int, default=2)
    down = actions.add_parser("down", help="stop exactly what `local up` started")
    stack_arguments(down)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: `fraudstream worker` (the container's entry point) does not need it.
    from consumer.local import stack as local_stack

    options = stack_options(args)
    try:
        if args.action == "up":
            local_stack.up(options)
            print(f"local stack up; `source {options.env_file}` to use it")
        else:
            local_stack.down(options)
    except local_stack.StackError as exc:
        print(f"fraudstream local {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0
