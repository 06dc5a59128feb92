"""`fraudstream demo`: the whole product on the local stack for a newcomer: the stack up, a minute
of synthetic traffic that looks like a real card stream (thousands of accounts, about 1 % fraud,
a few broken records), then what was flagged and why, what was dead-lettered and alerted, and
where each output is (consumer/cli/demo_steps.py).
"""

from __future__ import annotations

import argparse
from typing import Any

from consumer.cli.common import exit_codes, stack_arguments, stack_options


def add_parser(subparsers: Any) -> None:
    """Register `demo` on the CLI's subparsers."""
    parser = subparsers.add_parser(
        "demo",
        help="local stack up, a minute of traffic, what was flagged",
        description=__doc__,
        epilog=exit_codes(
            "0 the traffic was judged and checkpointed and the outputs shown",
            "1 the stack did not start, the producer failed or the workers did not catch up",
        ),
    )
    stack_arguments(parser)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (KCL daemons)")
    parser.add_argument("--shards", type=int, default=2, help="shards of the demo's stream")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of traffic")
    parser.add_argument("--rate", type=float, default=50.0, help="transactions per second")
    parser.add_argument(
        "--accounts", type=int, default=5000, help="card accounts the ordinary traffic uses"
    )
    parser.add_argument(
        "--fraud-ratio", type=float, default=0.01, help="share of transactions that are fraud"
    )
    parser.add_argument(
        "--invalid-ratio",
        type=float,
        default=0.005,
        help="share of deliberately broken records (for the dead letters)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed for the same traffic again (default: random)"
    )
    parser.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: the steps load the local stack and boto3, which the other commands need not.
    from dataclasses import replace

    from consumer.cli.demo_steps import Traffic
    from consumer.cli.demo_steps import run as run_demo

    # Supervised as `local up` is: a worker that dies mid-demo is restarted. The decisions trail
    # on, so the report the demo ends with has the transactions judged and the alert rate.
    base = stack_options(args)
    options = replace(
        base, supervise=True, worker_env={**base.worker_env, "FRAUD_DECISIONS": "true"}
    )
    traffic = Traffic(
        duration_s=args.duration,
        rate=args.rate,
        accounts=args.accounts,
        fraud_ratio=args.fraud_ratio,
        invalid_ratio=args.invalid_ratio,
        seed=args.seed,
    )
    return run_demo(options, traffic, keep=args.keep)
