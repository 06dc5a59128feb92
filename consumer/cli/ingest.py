"""`fraudstream ingest FILE|s3://bucket/key`: a file's rows into the stream (docs/ingest.md).

CSV (with a mapping) or JSON Lines, gzip allowed; each row validated as the workers would
(rejects beside the source), the rest put with the producer's retry and per-account order.
The ECS ingest task runs exactly this command with `--archive` on the object that landed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from consumer.cli.common import ByteProgress, HelpFormatter, exit_codes

EXIT_CODES = exit_codes(
    "0 every valid row put (rejected rows allowed), or the key skipped (an archived or rejects "
    "file)",
    "1 a row not put after --max-attempts, or AWS failed part-way (stream, S3)",
    "2 the source unreadable, a bad mapping, or bad options",
)


def _region_default() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def add_parser(subparsers: Any) -> None:
    """Register `ingest` on the CLI's subparsers."""
    from consumer.ingest.producer import DEFAULT_CONCURRENCY, DEFAULT_MAX_ATTEMPTS, PUT_APIS

    parser = subparsers.add_parser(
        "ingest",
        help="put a file's rows (CSV with a mapping, or JSON Lines; gzip allowed) to the stream",
        description="Reads a file or one S3 object, validates every row as the workers would "
        "(rejected rows go to a rejects file beside it, or under ingest-rejects/ for an "
        "incoming/ object), and puts the rest to the stream with account_id as the partition "
        "key. Progress on stderr; the summary on stdout. docs/ingest.md.",
        formatter_class=HelpFormatter,
        epilog=EXIT_CODES,
    )
    parser.add_argument("source", help="a file path or s3://bucket/key")
    parser.add_argument(
        "--mapping",
        default=os.environ.get("FRAUD_INGEST_MAPPING"),
        help="the CSV mapping, a YAML/JSON file or s3://bucket/key (default: "
        "$FRAUD_INGEST_MAPPING); not used for JSON Lines",
    )
    parser.add_argument(
        "--format",
        choices=("csv", "jsonl"),
        default=None,
        help="the source's format (default: by its name, .csv or .jsonl before .gz, else by "
        "its first line)",
    )
    parser.add_argument(
        "--stream",
        default=os.environ.get("FRAUD_STREAM"),
        help="stream name or ARN (default: $FRAUD_STREAM)",
    )
    parser.add_argument(
        "--endpoint-url",
        default=None,
        help="Kinesis endpoint (default: boto3's resolution, e.g. $AWS_ENDPOINT_URL_KINESIS; "
        "S3 follows $AWS_ENDPOINT_URL_S3)",
    )
    parser.add_argument(
        "--region",
        default=_region_default(),
        help="AWS region of the stream and the bucket (default: $AWS_REGION, "
        "$AWS_DEFAULT_REGION or us-east-1)",
    )
    parser.add_argument(
        "--archive",
        action="store_true",
        help="for an s3://.../incoming/<name> source: afterwards move it to incoming/done/<name> "
        "(exit 0) or incoming/failed/<name> (otherwise)",
    )
    parser.add_argument(
        "--max-attempts",
        type=_positive_int,
        default=DEFAULT_MAX_ATTEMPTS,
        help="sends per row before giving up",
    )
    parser.add_argument(
        "--put-api",
        choices=PUT_APIS,
        default="records",
        help="records: PutRecords batches (AWS); record: one PutRecord per row, --concurrency at "
        "once (kinesis-mock: docs/performance.md)",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        help="PutRecord calls at once with --put-api record",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="the summary as one JSON document on stdout instead of text",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress on stderr (default: a bar on a terminal, JSON lines otherwise)",
    )
    parser.set_defaults(run=run)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _log(event: str, **fields: Any) -> None:
    """One JSON line on stderr, the shape of the workers' log lines."""
    line = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event}
    print(json.dumps({**line, **fields}), file=sys.stderr, flush=True)


def _progress_of(progress: ByteProgress) -> Any:
    """The run's progress callback, drawn by `progress`."""

    def show(p: Any) -> None:
        progress.update(
            p.bytes_read,
            p.total_bytes,
            f"{p.rows_read:,} rows, {p.put:,} put, {p.rejected:,} rejected, {p.failed:,} failed",
            rows_read=p.rows_read,
            put=p.put,
            rejected=p.rejected,
            failed=p.failed,
            pending=p.pending,
            bytes=p.bytes_read,
            total_bytes=p.total_bytes,
        )

    return show


def _summary_text(result: dict[str, Any]) -> str:
    if result.get("skipped"):
        return f"ingest {result['source']}: skipped ({result['skipped']})"
    lines = [
        f"ingest {result['source']}: {result['put']:,} put in {result['duration_s']:.1f} s "
        f"({result['rows_per_s']:,.0f} rows/s)",
        f"  rows read  {result['rows_read']:,}",
        f"  put        {result['put']:,}",
        f"  rejected   {result['rejected']:,}  ({result['rejects']})",
        f"  failed     {result['failed']:,}",
    ]
    if result.get("archived"):
        lines.append(f"  archived   {result['archived']}")
    if result.get("error"):
        lines.append(f"  error      {result['error']}")
    return "\n".join(lines)


def _report(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        print(_summary_text(result))
    sys.stdout.flush()


def _archive(source: str, succeeded: bool, result: dict[str, Any], region: str) -> bool:
    """Move the source; False (and the error in `result`) when the move failed."""
    from botocore.exceptions import BotoCoreError, ClientError

    from consumer.ingest.archive import archive

    try:
        import boto3

        s3 = boto3.session.Session().client("s3", region_name=region)
        result["archived"] = archive(s3, source, succeeded)
    except (BotoCoreError, ClientError) as exc:
        result["archived"] = None
        message = f"archiving {source} failed: {exc}"
        result["error"] = f"{result['error']}; {message}" if result.get("error") else message
        return False
    return True


def _unusable(args: argparse.Namespace, message: str) -> int:
    """Exit 2 before any row was put: the message, the archive to failed/ when asked."""
    from consumer.settings.s3_uri import is_s3

    print(f"fraudstream ingest: {message}", file=sys.stderr)
    if args.archive and is_s3(args.source):
        result: dict[str, Any] = {"error": message}
        _archive(args.source, False, result, args.region)
        if result.get("archived"):
            _log("ingest_archived", source=args.source, to=result["archived"])
    return 2


def run(args: argparse.Namespace) -> int:
    from consumer.ingest.locations import skip_reason
    from consumer.ingest.mapping import IngestMapping, MappingError, load_mapping
    from consumer.ingest.producer import Producer, make_client
    from consumer.ingest.rejects import open_rejects
    from consumer.ingest.rows import DEFAULT_MAX_AHEAD_S, read_rows
    from consumer.ingest.run import EXIT_OK, run_ingest
    from consumer.ingest.source import SourceError, open_source
    from consumer.settings.s3_uri import is_s3, parse_s3

    source: str = args.source
    if is_s3(source):
        try:
            reason = skip_reason(parse_s3(source).key)
        except ValueError as exc:
            print(f"fraudstream ingest: {exc}", file=sys.stderr)
            return 2
        if reason is not None:
            _log("skipped", source=source, reason=reason)
            _report({"source": source, "skipped": reason, "exit_code": 0}, args.json)
            return 0
    if args.archive and not is_s3(source):
        print("fraudstream ingest: --archive needs an s3:// source", file=sys.stderr)
        return 2
    if not args.stream:
        return _unusable(args, "--stream is required (or set FRAUD_STREAM)")
    try:
        max_ahead = int(os.environ.get("FRAUD_TIMESTAMP_MAX_AHEAD_S", DEFAULT_MAX_AHEAD_S))
    except ValueError:
        return _unusable(args, "FRAUD_TIMESTAMP_MAX_AHEAD_S must be an integer (seconds)")

    clients: dict[str, Any] = {}

    def s3() -> Any:
        """One S3 client (the source, the mapping, the rejects), in --region, made when needed."""
        if "s3" not in clients:
            import boto3

            clients["s3"] = boto3.session.Session().client("s3", region_name=args.region)
        return clients["s3"]

    mapping: IngestMapping | None = None
    if args.mapping:
        try:
            mapping = load_mapping(args.mapping, s3)
        except MappingError as exc:
            return _unusable(args, str(exc))
    try:
        opened = open_source(source, s3)
    except SourceError as exc:
        return _unusable(args, str(exc))
    try:
        rejects = open_rejects(source, s3)
    except OSError as exc:
        opened.close()
        return _unusable(args, f"cannot write the rejects file: {exc}")

    progress = ByteProgress(args.no_progress, "ingest", "ingest_progress")
    client = make_client(args.region, args.endpoint_url, args.concurrency)

    def make_producer(on_progress: Any) -> Producer:
        return Producer(
            client,
            args.stream,
            on_progress=on_progress,
            max_attempts=args.max_attempts,
            put_api=args.put_api,
            concurrency=args.concurrency,
        )

    rows = read_rows(opened, opened.name, mapping=mapping, fmt=args.format, max_ahead_s=max_ahead)
    try:
        outcome = run_ingest(
            source,
            rows,
            make_producer,
            rejects,
            bytes_read=lambda: opened.read_bytes,
            total_bytes=opened.size,
            on_progress=_progress_of(progress),
        )
    except KeyboardInterrupt:
        progress.close()
        print("fraudstream ingest: interrupted", file=sys.stderr)
        return 130
    finally:
        opened.close()
    progress.close()
    code = outcome.exit_code
    result = outcome.to_dict()
    if outcome.error:
        print(f"fraudstream ingest: {outcome.error}", file=sys.stderr)
    moved = not args.archive or _archive(source, code == EXIT_OK, result, args.region)
    if not moved and code == EXIT_OK:
        code = 1  # put, but left in incoming/: the next event for it would run it again
    result["exit_code"] = code
    _report(result, args.json)
    return code
