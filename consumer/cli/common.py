"""What several commands share: the help format, the failure line, AWS clients, the local
stack's options."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consumer.infra.help_format import USAGE_EXIT, HelpFormatter, exit_codes

if TYPE_CHECKING:
    from consumer.local.stack import StackOptions

__all__ = [
    "USAGE_EXIT",
    "HelpFormatter",
    "aws_client",
    "exit_codes",
    "fail",
    "stack_arguments",
    "stack_options",
]


def fail(command: str, exc: Exception) -> int:
    """`fraudstream <command>: <exc>` on stderr; exit code 1."""
    print(f"fraudstream {command}: {exc}", file=sys.stderr)
    return 1


def aws_client(service: str) -> Any:
    """A client with the region and endpoint from the environment (AWS_REGION,
    AWS_ENDPOINT_URL_<SERVICE>), as the worker's: `source .fraudstream/local.env` for the
    local stack."""
    import boto3

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    session: Any = boto3.session.Session()
    return session.client(service, region_name=region)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def stack_arguments(parser: argparse.ArgumentParser) -> None:
    """The local stack's state directory and ports, defaults from the environment."""
    parser.add_argument(
        "--state-dir",
        default=os.environ.get("FRAUD_STATE_DIR", ".fraudstream"),
        help="pids, logs and local.env of the stack ($FRAUD_STATE_DIR)",
    )
    parser.add_argument(
        "--kinesis-port",
        type=int,
        default=_env_int("FRAUD_KINESIS_PORT", 4567),
        help="kinesis-mock's plain HTTP port ($FRAUD_KINESIS_PORT)",
    )
    parser.add_argument(
        "--kinesis-tls-port",
        type=int,
        default=_env_int("FRAUD_KINESIS_TLS_PORT", 4568),
        help="kinesis-mock's TLS port ($FRAUD_KINESIS_TLS_PORT)",
    )
    parser.add_argument(
        "--moto-port",
        type=int,
        default=_env_int("FRAUD_MOTO_PORT", 4569),
        help="moto server's port: DynamoDB, S3, SNS, SQS, CloudWatch ($FRAUD_MOTO_PORT)",
    )
    parser.add_argument(
        "--redis-port",
        type=int,
        default=_env_int("FRAUD_REDIS_PORT", 6390),
        help="redis-server's port ($FRAUD_REDIS_PORT)",
    )


def stack_options(args: argparse.Namespace) -> StackOptions:
    """The parsed `stack_arguments` (and --workers, --shards where the command has them)."""
    # Imported here: `fraudstream worker` (the container's entry point) does not need it.
    from consumer.local.stack import StackOptions

    return StackOptions(
        state_dir=Path(args.state_dir),
        kinesis_port=args.kinesis_port,
        kinesis_tls_port=args.kinesis_tls_port,
        moto_port=args.moto_port,
        redis_port=args.redis_port,
        workers=getattr(args, "workers", 1),
        shards=getattr(args, "shards", 2),
    )
