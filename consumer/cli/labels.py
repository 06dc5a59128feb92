"""`fraudstream labels import FILE|s3://bucket/key`: a backfill of labels (docs/labels.md).

The same reader and store as the worker's S3 pickup (consumer/labels/apply.py), written to the
Redis the worker uses (REDIS_URL, FRAUD_REDIS_CLUSTER). Safe to run again, or while the fleet
applies other files: a label is applied once however often it comes.

Exit codes: 0 the file was read (bad lines or not: they are listed, never fatal); 1 Redis
failed; 2 the file or the s3:// location cannot be read, or a setting is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from consumer.cli.common import ByteProgress, aws_client

EXIT_REDIS = 1
EXIT_UNREADABLE = 2


def add_parser(subparsers: Any) -> None:
    """Register `labels` (with its `import` subcommand) on the CLI's subparsers."""
    parser = subparsers.add_parser(
        "labels",
        help="labels in: import a label file (chargebacks, analysts' verdicts)",
        epilog="exit codes: see `labels import --help`",
    )
    commands = parser.add_subparsers(dest="labels_command", required=True)
    imports = commands.add_parser(
        "import",
        help="apply a label file (CSV or JSON Lines, gzip allowed) to Redis",
        description="Applies every good line of a label file (docs/contract.md, 'Labels') to "
        "the Redis in REDIS_URL, as the worker's pickup does; bad lines are counted and listed.",
        epilog=f"exit codes: 0 the file was read and applied (bad lines included); "
        f"{EXIT_REDIS} Redis failed; {EXIT_UNREADABLE} the source unreadable or bad options",
    )
    imports.add_argument("source", help="a file path or s3://bucket/key")
    imports.add_argument(
        "--json",
        action="store_true",
        help="the summary as one JSON document on stdout instead of text",
    )
    imports.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress on stderr (default: a bar on a terminal, JSON lines otherwise)",
    )
    imports.set_defaults(run=run)


class _Counting:
    """The source's bytes as read (compressed, as on disk or in S3): the progress measure."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._raw.read(size)
        self.count += len(data)
        return data


def _progress_of(progress: ByteProgress, source: _Counting, total: int | None) -> Any:
    """The import's per-chunk callback, drawn by `progress`."""

    def show(result: Any) -> None:
        progress.update(
            source.count,
            total,
            f"{result.applied.labels:,} labels, {result.bad_lines:,} bad",
            bytes=source.count,
            total_bytes=total,
            labels=result.applied.labels,
            bad_lines=result.bad_lines,
        )

    return show


def _open(source: str) -> tuple[Any, str, int | None]:
    """The source's byte stream, its name for `file:line`, its size; OSError or ValueError
    (a bad s3:// location) or botocore's errors when it cannot be opened."""
    from consumer.settings.s3_uri import is_s3, parse_s3

    if is_s3(source):
        location = parse_s3(source)
        if not location.key or location.key.endswith("/"):
            raise ValueError(f"must be s3://<bucket>/<key> of one object, got {source!r}")
        reply = aws_client("s3").get_object(Bucket=location.bucket, Key=location.key)
        return reply["Body"], location.key.rsplit("/", 1)[-1], reply.get("ContentLength")
    stream = open(source, "rb")  # noqa: SIM115 - closed by run()
    return stream, os.path.basename(source), os.fstat(stream.fileno()).st_size


def _redis() -> Any:
    import redis
    import redis.cluster

    from consumer.settings.config import load_redis_location

    url, cluster = load_redis_location()
    options: dict[str, Any] = {"socket_connect_timeout": 5, "socket_timeout": 30}
    if cluster:
        return redis.cluster.RedisCluster.from_url(url, **options)
    return redis.Redis.from_url(url, **options)


def _summary(source: str, result: Any, elapsed: float) -> str:
    counts = result.applied
    lines = [
        f"labels import {source}: {counts.labels:,} labels in {elapsed:.1f} s",
        f"  applied           {counts.applied:,}",
        f"  unchanged         {counts.unchanged:,}  (not newer than the verdict kept)",
        f"  too old           {counts.too_old:,}  (before the merchant's window)",
        f"  without merchant  {counts.without_merchant:,}  (counted for quality only)",
        f"  first labels      {counts.first_labels:,}  (counted for quality)",
        f"  bad lines         {result.bad_lines:,}",
    ]
    lines += [f"    {bad.where}: {bad.reason}" for bad in result.first_bad]
    if result.bad_lines > len(result.first_bad):
        lines.append(f"    ... and {result.bad_lines - len(result.first_bad):,} more")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    # Imported here: botocore and redis are for this command only.
    from botocore.exceptions import BotoCoreError, ClientError
    from redis.exceptions import RedisError

    from consumer.labels.apply import apply_file
    from consumer.settings.config import ConfigError
    from consumer.state.labels import LabelStore

    try:
        store = LabelStore(_redis())
    except (ConfigError, ValueError) as exc:
        print(f"fraudstream labels: configuration error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    try:
        raw, name, size = _open(args.source)
    except (OSError, ValueError, BotoCoreError, ClientError) as exc:
        print(f"fraudstream labels: cannot read {args.source}: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    counting = _Counting(raw)
    progress = ByteProgress(args.no_progress, "labels", "labels_import_progress")
    started = time.monotonic()
    try:
        result = apply_file(counting, name, store, on_chunk=_progress_of(progress, counting, size))
    except (OSError, BotoCoreError, ClientError) as exc:
        print(
            f"fraudstream labels: reading {args.source} failed part way: {exc} (what was "
            "applied stays; running the import again is safe)",
            file=sys.stderr,
        )
        return EXIT_UNREADABLE
    except RedisError as exc:
        print(
            f"fraudstream labels: Redis: {exc} (running the import again is safe)", file=sys.stderr
        )
        return EXIT_REDIS
    finally:
        progress.close()
        raw.close()
    elapsed = time.monotonic() - started
    if args.json:
        print(json.dumps({"source": args.source, "seconds": round(elapsed, 3), **result.as_dict()}))
    else:
        print(_summary(args.source, result, elapsed))
    return 0
