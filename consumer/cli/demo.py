"""`fraudstream demo`: the whole product on the local stack for a newcomer: the stack up, a minute
of synthetic traffic, then what was flagged, dead-lettered and alerted (consumer/cli/demo_steps.py).
"""

from __future__ import annotations

import argparse
from typing import Any

from consumer.cli.common import stack_arguments, stack_options


def add_parser(subparsers: Any) -> None:
    """Register `demo` on the CLI's subparsers."""
    parser = subparsers.add_parser(
        "demo", help="local stack up, a minute of traffic, what was flagged"
    )
    stack_arguments(parser)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: the steps load the local stack and boto3, which the other commands need not.
    from consumer.cli.demo_steps import run as run_demo

    options = stack_options(args)
    return run_demo(options, duration_s=args.duration, rate=args.rate, keep=args.keep)
