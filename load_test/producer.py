"""Load-test producer: put transactions to a Kinesis stream with PutRecords (or PutRecord).

Usage (from the repository root)::

    python -m load_test.producer generate --rate 200 --duration 60 [--accounts 1000]
        [--fraud-ratio 0.05] [--invalid-ratio 0.0] [--seed 7] [common options]
    python -m load_test.producer replay --file records.jsonl [common options]

    common options: --stream NAME (env FRAUD_STREAM)  --endpoint-url URL  --region REGION
                    --max-attempts N  --put-api records|record  --concurrency N  --json

The sending itself (batching, retries with backoff and jitter, never two entries of one
partition key in flight) is :mod:`consumer.ingest.producer`, shared with `fraudstream ingest`;
its names are re-exported here for the load test's callers.

Python API
    ``send(client, stream, entries, ...) -> Summary`` and :class:`Producer` (from
    :mod:`consumer.ingest.producer`), ``run_generate`` for the ``generate`` mode,
    ``load_replay_file(path) -> list[Entry]``; the synthetic records come from
    :mod:`load_test.synthetic`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import math
import os
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from consumer.ingest.entries import MAX_PARTITION_KEY_CHARS, Entry
from consumer.ingest.producer import (
    DEFAULT_BASE_DELAY_S,
    DEFAULT_CONCURRENCY,
    DEFAULT_LOOKAHEAD,
    DEFAULT_LOOKAHEAD_BYTES,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_DELAY_S,
    MAX_BATCH_ENTRIES,
    MAX_REQUEST_BYTES,
    PUT_APIS,
    RETRIABLE_CALL_ERRORS,
    KinesisClient,
    Landed,
    LandedCallback,
    NewestPerShard,
    Producer,
    ProducerError,
    ProgressCallback,
    Summary,
    client_config,
    make_client,
    send,
)
from load_test.synthetic import TransactionGenerator

__all__ = [
    "DEFAULT_BASE_DELAY_S",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_LOOKAHEAD",
    "DEFAULT_LOOKAHEAD_BYTES",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_DELAY_S",
    "MAX_BATCH_ENTRIES",
    "MAX_REQUEST_BYTES",
    "PUT_APIS",
    "RETRIABLE_CALL_ERRORS",
    "Entry",
    "KinesisClient",
    "Landed",
    "LandedCallback",
    "NewestPerShard",
    "Producer",
    "ProducerError",
    "ProgressCallback",
    "ProgressPrinter",
    "ReplayFileError",
    "Summary",
    "account_key",
    "add_put_arguments",
    "client_config",
    "load_replay_file",
    "main",
    "make_client",
    "parse_replay_line",
    "parse_replay_lines",
    "positive_int",
    "run_generate",
    "send",
]

EXIT_OK = 0
EXIT_FAILED_ENTRIES = 1
EXIT_USAGE = 2
EXIT_FATAL = 3
EXIT_INTERRUPTED = 130


# -- replay files ---------------------------------------------------------------------------------


class ReplayFileError(ValueError):
    """A malformed line in a replay file."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}:{line}: {message}")
        self.source = source
        self.line = line
        self.message = message


def _random_key(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def account_key(data: bytes) -> str | None:
    """The record's ``account_id`` if the data is a JSON object with a usable string one."""
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(parsed, dict):
        return None
    account = parsed.get("account_id")
    if not isinstance(account, str) or not 1 <= len(account) <= MAX_PARTITION_KEY_CHARS:
        return None
    try:
        account.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return account


def parse_replay_line(raw: bytes, *, rng: random.Random) -> Entry | None:
    """One replay line to an entry (None for a blank line); ValueError if malformed."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"line is not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    has_data = obj.get("data") is not None
    has_b64 = obj.get("data_b64") is not None
    if has_data and has_b64:
        raise ValueError('has both "data" and "data_b64"; give exactly one')
    if has_data:
        if not isinstance(obj["data"], str):
            raise ValueError('"data" must be a string (the record as text)')
        try:
            data = obj["data"].encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError('"data" is not encodable as UTF-8; use "data_b64"') from exc
    elif has_b64:
        if not isinstance(obj["data_b64"], str):
            raise ValueError('"data_b64" must be a base64 string')
        try:
            data = base64.b64decode(obj["data_b64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f'"data_b64" is not valid base64: {exc}') from exc
    else:
        raise ValueError('needs a "data" or "data_b64" field')
    key = obj.get("partition_key")
    if key is None:
        key = account_key(data) or _random_key(rng)
    elif not isinstance(key, str):
        raise ValueError('"partition_key" must be a string')
    return Entry(data=data, partition_key=key)


def parse_replay_lines(
    lines: Iterable[bytes], *, source: str = "<replay>", rng: random.Random | None = None
) -> list[Entry]:
    """Parse replay lines; raises :class:`ReplayFileError` naming the first bad line."""
    rng = rng if rng is not None else random.Random()
    entries: list[Entry] = []
    for number, raw in enumerate(lines, start=1):
        try:
            entry = parse_replay_line(raw, rng=rng)
        except (ValueError, TypeError) as exc:
            raise ReplayFileError(source, number, str(exc)) from exc
        if entry is not None:
            entries.append(entry)
    return entries


def load_replay_file(
    path: str | os.PathLike[str], *, rng: random.Random | None = None
) -> list[Entry]:
    """Read a replay file (``-`` = stdin): one JSON object per line, ``{"data": "<record>"}``
    or ``{"data_b64": "<base64>"}``, optional ``"partition_key"`` (default: the record's
    ``account_id`` when the data is a JSON object with a string one, else a random key per
    line); other keys ignored; blank lines skipped. Raises :class:`ReplayFileError` (a
    ``ValueError``) with the line number of the first malformed line."""
    if str(path) == "-":
        return parse_replay_lines(sys.stdin.buffer, source="<stdin>", rng=rng)
    with Path(path).open("rb") as handle:
        return parse_replay_lines(handle, source=str(path), rng=rng)


# -- command line ---------------------------------------------------------------------------------


class ProgressPrinter:
    """Progress on stderr: a tqdm bar on a TTY (of `total` records when known), a line every
    few seconds otherwise."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        total: int | None = None,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._interval = interval_s if interval_s is not None else (0.25 if self._tty else 5.0)
        self._clock = clock
        self._last = clock()
        self._shown = False
        self._bar: Any = None
        if self._tty:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                desc="sent",
                unit="record",
                file=self._stream,
                mininterval=self._interval,
                dynamic_ncols=True,
            )

    def __call__(self, summary: Summary) -> None:
        if self._bar is not None:
            self._bar.update(summary.sent - self._bar.n)
            self._bar.set_postfix_str(
                f"retried={summary.retried} failed={summary.failed} pending={summary.pending} "
                f"rate={summary.rate:.1f}/s",
                refresh=False,
            )
            return
        now = self._clock()
        if now - self._last < self._interval:
            return
        self._last = now
        line = (
            f"sent={summary.sent} retried={summary.retried} failed={summary.failed} "
            f"pending={summary.pending} rate={summary.rate:.1f}/s"
        )
        if self._tty:
            self._stream.write("\r" + line + "\x1b[K")
        else:
            self._stream.write(line + "\n")
        self._stream.flush()
        self._shown = True

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.refresh()
            self._bar.close()
            self._bar = None
            return
        if self._tty and self._shown:
            self._stream.write("\n")
            self._stream.flush()
            self._shown = False


def run_generate(
    producer: Producer,
    next_entry: Callable[[], Entry],
    *,
    rate: float,
    duration_s: float,
    tick_s: float = 0.1,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Produce ``round(rate * duration_s)`` entries on a wall-clock schedule (entry i is due
    at ``start + i / rate``): every tick, create the entries that are due and send what is
    eligible, in batches; never sleeps per record. Returns the number of entries created
    (the caller flushes)."""
    total = max(0, round(rate * duration_s))
    start = clock()
    produced = 0
    while produced < total:
        round_start = clock()
        due = min(total, math.floor((round_start - start) * rate) + 1)
        for _ in range(due - produced):
            producer.add(next_entry())
        produced = max(produced, due)
        producer.send_ready()
        if produced >= total:
            break
        wake_at = max(start + produced / rate, round_start + tick_s)
        delay = wake_at - clock()
        if delay > 0:
            sleep(delay)
    return produced


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within 0..1, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def add_put_arguments(
    parser: argparse.ArgumentParser, *, put_api: str, suppress: bool = False
) -> None:
    """--put-api (default `put_api`) and --concurrency: the producer's CLI and the load tests'."""
    parser.add_argument(
        "--put-api",
        choices=PUT_APIS,
        default=argparse.SUPPRESS if suppress else put_api,
        help=(
            "records: PutRecords batches (the right call against AWS, and against the local"
            " stack's patched kinesis-mock); record: one PutRecord per entry, --concurrency at"
            f" once (an unpatched kinesis-mock: docs/performance.md); default {put_api}"
        ),
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=argparse.SUPPRESS if suppress else DEFAULT_CONCURRENCY,
        help=f"PutRecord calls at once with --put-api record (default {DEFAULT_CONCURRENCY})",
    )


def _add_common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--stream",
        default=default(os.environ.get("FRAUD_STREAM")),
        help="stream name or ARN (default: $FRAUD_STREAM)",
    )
    parser.add_argument(
        "--endpoint-url",
        default=default(None),
        help="Kinesis endpoint (default: boto3's resolution, e.g. $AWS_ENDPOINT_URL_KINESIS)",
    )
    parser.add_argument(
        "--region",
        default=default(os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"),
        help="AWS region (default: $AWS_DEFAULT_REGION or us-east-1)",
    )
    parser.add_argument(
        "--max-attempts",
        type=positive_int,
        default=default(DEFAULT_MAX_ATTEMPTS),
        help=f"sends per entry before giving up (default {DEFAULT_MAX_ATTEMPTS})",
    )
    add_put_arguments(parser, put_api="records", suppress=suppress)
    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="the summary as one JSON object on stdout and nothing else there (default: a line "
        "of text)",
    )


def build_parser() -> argparse.ArgumentParser:
    from load_test.cli_help import HelpFormatter, exit_codes

    codes = exit_codes(
        f"{EXIT_OK} every record put",
        f"{EXIT_FAILED_ENTRIES} some records failed after --max-attempts",
        f"{EXIT_USAGE} a usage error or an unreadable --file",
        f"{EXIT_FATAL} a non-retriable error stopped the run",
        f"{EXIT_INTERRUPTED} interrupted (Ctrl-C)",
    )
    parser = argparse.ArgumentParser(
        prog="python -m load_test.producer",
        description="Put transactions to a Kinesis stream (load test). Progress on stderr; "
        "the summary on stdout (with --json as one JSON document).",
        formatter_class=HelpFormatter,
        epilog=codes,
    )
    _add_common(parser, suppress=False)
    sub = parser.add_subparsers(dest="mode", required=True)

    gen = sub.add_parser(
        "generate",
        help="synthetic transactions at a fixed rate",
        formatter_class=HelpFormatter,
        epilog=codes,
    )
    gen.add_argument("--rate", type=_positive_float, required=True, help="records per second")
    gen.add_argument("--duration", type=_positive_float, required=True, help="seconds")
    gen.add_argument("--accounts", type=positive_int, default=1000, help="ordinary accounts")
    gen.add_argument(
        "--fraud-ratio", type=_ratio, default=0.05, help="share of labelled (fraud) records"
    )
    gen.add_argument(
        "--invalid-ratio", type=_ratio, default=0.0, help="share of deliberately broken records"
    )
    gen.add_argument(
        "--seed", type=int, default=None, help="seed for reproducible records (default: random)"
    )
    _add_common(gen, suppress=True)

    rep = sub.add_parser(
        "replay",
        help="records from a file, in file order",
        formatter_class=HelpFormatter,
        epilog=codes,
    )
    rep.add_argument(
        "--file",
        required=True,
        help='JSON Lines: {"data": ...} or {"data_b64": ...}, optional "partition_key"; - = stdin',
    )
    _add_common(rep, suppress=True)
    return parser


def _report(summary: Summary, extra: dict[str, Any], as_json: bool) -> None:
    text = "summary: " + summary.format_text()
    if "generated" in extra:
        text += (
            f" (generated {extra['generated']}: fraud {extra['fraud']}, invalid {extra['invalid']})"
        )
    if as_json:  # one JSON document on stdout and nothing else, as every --json
        print(json.dumps({**summary.to_dict(), **extra}, separators=(",", ":")))
    else:
        print(text)
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.stream:
        parser.error("--stream is required (or set FRAUD_STREAM)")

    extra: dict[str, Any] = {"mode": args.mode}
    entries: list[Entry] = []
    generator: Any = None
    if args.mode == "replay":
        try:
            entries = load_replay_file(args.file)
        except ReplayFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except OSError as exc:
            print(f"error: cannot read {args.file}: {exc}", file=sys.stderr)
            return EXIT_USAGE
    else:
        if args.fraud_ratio + args.invalid_ratio > 1.0:
            parser.error("--fraud-ratio + --invalid-ratio must not exceed 1")
        generator = TransactionGenerator(
            accounts=args.accounts,
            fraud_ratio=args.fraud_ratio,
            invalid_ratio=args.invalid_ratio,
            seed=args.seed,
        )

    total = len(entries) if generator is None else max(0, round(args.rate * args.duration))
    progress = ProgressPrinter(total=total)
    producer = Producer(
        make_client(args.region, args.endpoint_url, args.concurrency),
        args.stream,
        on_progress=progress,
        max_attempts=args.max_attempts,
        put_api=args.put_api,
        concurrency=args.concurrency,
    )
    code = EXIT_OK
    try:
        if generator is not None:
            run_generate(
                producer,
                lambda: generator.next_record().to_entry(),
                rate=args.rate,
                duration_s=args.duration,
            )
            summary = producer.flush()
        else:
            summary = producer.send_all(entries)
    except ProducerError as exc:
        progress.finish()
        print(f"error: {exc}", file=sys.stderr)
        summary, code = exc.summary, EXIT_FATAL
    except KeyboardInterrupt:
        progress.finish()
        print("interrupted", file=sys.stderr)
        summary, code = producer.summary(), EXIT_INTERRUPTED
    else:
        progress.finish()
        if summary.failed:
            code = EXIT_FAILED_ENTRIES
    finally:
        producer.close()
    if generator is not None:
        extra.update(
            generated=sum(generator.counts.values()),
            fraud=generator.fraud_count,
            invalid=generator.invalid_count,
        )
    _report(summary, extra, args.json)
    return code


if __name__ == "__main__":
    sys.exit(main())
