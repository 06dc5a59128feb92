"""What several commands share: the help format, the failure line, AWS clients, the local
stack's options, the progress of a command reading its input."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consumer.infra.help_format import USAGE_EXIT, HelpFormatter, exit_codes

if TYPE_CHECKING:
    from consumer.local.stack import StackOptions

__all__ = [
    "PROGRESS_EVERY_S",
    "USAGE_EXIT",
    "ByteProgress",
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


PROGRESS_EVERY_S = 5.0


class ByteProgress:
    """How far a command has read its input, on stderr (stdout is its result's): a tqdm bar of
    bytes on a terminal; otherwise a JSON line (`event` and the caller's fields) every
    PROGRESS_EVERY_S and when the input is done, for a log collector; nothing with
    --no-progress. `labels import`, `ingest` and `report` show it the same way."""

    def __init__(self, no_progress: bool, desc: str, event: str) -> None:
        self._mode = "off" if no_progress else ("bar" if sys.stderr.isatty() else "lines")
        self._desc = desc
        self._event = event
        self._bar: Any = None
        self._last = time.monotonic()

    def update(self, done: int, total: int | None, postfix: str = "", **fields: object) -> None:
        """`done` of `total` bytes read (total None: unknown); `postfix` beside the bar;
        `fields` in the JSON line."""
        if self._mode == "bar":
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=self._desc,
                    file=sys.stderr,
                    dynamic_ncols=True,
                )
            self._bar.update(done - self._bar.n)
            if postfix:
                self._bar.set_postfix_str(postfix, refresh=False)
        elif self._mode == "lines":
            now = time.monotonic()
            if now - self._last >= PROGRESS_EVERY_S or (total is not None and done >= total):
                self._last = now
                line = {
                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "event": self._event,
                    **fields,
                }
                print(json.dumps(line), file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
