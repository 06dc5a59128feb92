"""`fraudstream local up | down`: start and stop the embedded local stack (consumer/local/stack.py):
Kinesis and AWS stand-ins, Redis, the stream, bucket and topic, and workers under the real
MultiLangDaemon, with a supervisor that restarts a worker that died."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from consumer.cli.common import exit_codes, stack_arguments, stack_options


def add_parser(subparsers: Any) -> None:
    """Register `local` and its `up` and `down` on the CLI's subparsers."""
    parser = subparsers.add_parser(
        "local",
        help="the embedded local stack",
        epilog=exit_codes("0 done", "1 the stack could not start or stop (the message says why)"),
    )
    actions = parser.add_subparsers(dest="action", required=True)
    up = actions.add_parser(
        "up",
        help="start servers, stream, bucket, topic and workers",
        description="Starts kinesis-mock, moto server and redis-server on 127.0.0.1, creates the "
        "stream, bucket, topic and an SQS tap on the topic, starts the workers (the real "
        "MultiLangDaemon) and a supervisor that restarts a worker that dies, and waits until "
        "every shard is leased. With --api also the scoring API, with a dev key (in the state "
        "directory and local.env). Progress on stderr; pids and logs in the state directory.",
        epilog=exit_codes("0 the stack is up (or already was)", "1 it could not start"),
    )
    stack_arguments(up)
    up.add_argument("--workers", type=int, default=1, help="worker processes (KCL daemons)")
    up.add_argument("--shards", type=int, default=2, help="shards of the new stream")
    up.add_argument(
        "--api",
        action="store_true",
        help="also start the scoring API (`fraudstream serve`) with a dev key minted now",
    )
    up.add_argument(
        "--api-port",
        type=int,
        default=None,
        help="the API's port (default 8080 when free, else a free one)",
    )
    up.add_argument(
        "--kinesis-server",
        choices=("kinesis-mock", "fraudstream"),
        default="kinesis-mock",
        help="the Kinesis stand-in: kinesis-mock (default; resharding too) or fraudstream's own "
        "in-memory server, for rates kinesis-mock cannot serve (docs/performance.md)",
    )
    up.add_argument(
        "--no-supervise",
        action="store_true",
        help="no supervisor: a worker that dies stays dead",
    )
    down = actions.add_parser(
        "down",
        help="stop exactly what `local up` started",
        epilog=exit_codes("0 stopped (or nothing was running)", "1 it could not stop"),
    )
    stack_arguments(down)
    parser.set_defaults(run=run)


_EXAMPLE = (
    '{"transaction_id": "t-1", "account_id": "acct-1", "amount": 25.00, '
    '"timestamp": "2026-12-01T12:00:00Z"}'
)


def run(args: argparse.Namespace) -> int:
    # Imported here: `fraudstream worker` (the container's entry point) does not need it.
    from dataclasses import replace

    from consumer.local import stack as local_stack

    options = stack_options(args)
    try:
        if args.action == "up":
            options = replace(
                options,
                supervise=not args.no_supervise,
                api=args.api,
                api_port=args.api_port,
                kinesis_server=args.kinesis_server,
            )
            env = local_stack.up(options)
            print(f"local stack up; `source {options.env_file}` to use it")
            if "FRAUD_API_URL" in env:
                url = env["FRAUD_API_URL"]
                print(
                    f"scoring API on {url}, dev key in {options.api_key_file} "
                    f"(and FRAUD_API_KEY in local.env):\n"
                    f'  curl -s -H "Authorization: Bearer {env["FRAUD_API_KEY"]}" '
                    f"-d '{_EXAMPLE}' {url}/v1/score"
                )
        else:
            local_stack.down(options)
    except local_stack.StackError as exc:
        print(f"fraudstream local {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0
