"""How much the local Kinesis stand-in takes: PutRecords in, GetRecords out.

    python -m load_test.standin --shards 4 --rate 2000 --duration 600
    python -m load_test.standin --server fraudstream --shards 2 --rate 5000 --duration 40 \
        --backlog-first

Starts its own kinesis-mock (the patched copy `fraudstream local up` runs, or with --unpatched
the pinned build with only its bind address changed; or with --server fraudstream, fraudstream's
own server, consumer/local/kinesis_server) on a free port, creates a stream, puts
batches of --batch records paced to --rate (open loop: a batch is due at its time whatever the
previous one took), and reads every shard as the KCL polls it (GetRecords, limit 10000, every
--poll-ms). Each minute (--interval) it reports the records/s accepted and read, the put latency,
how far the readers are behind, kinesis-mock's RSS and CPU (% of one core) and the machine's
load. At the end it checks what was read: every accepted record once, in sequence-number order per
shard. Exit 1 if that check fails. --json writes the rows and the totals. With --backlog-first
the readers start only when everything is put: the time they take to read it all is what a
backlog costs the stand-in (drain_s, drain_read_per_s).

The numbers and what they mean: docs/performance.md, "A stand-in that takes production rates".
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from consumer.local.kinesis_patch import patch_kinesis_mock
from consumer.local.stack import (
    BIND_HOST,
    LOCAL_CREDENTIALS,
    StackOptions,
    find_kinesis_mock,
    kinesis_command,
)
from load_test.procfs import cpu_seconds

STREAM = "standin-bench"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((BIND_HOST, 0))
        return int(probe.getsockname()[1])


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@contextmanager
def kinesis_mock(unpatched: bool, heap_mb: int | None) -> Iterator[tuple[int, int]]:
    """(pid, port) of a kinesis-mock started in a temporary directory, stopped on exit."""
    source = find_kinesis_mock()
    with tempfile.TemporaryDirectory(prefix="standin-") as tmp:
        work = Path(tmp)
        if unpatched:
            script = source.read_text(encoding="utf-8").replace(
                '.em("0.0.0.0")', f'.em("{BIND_HOST}")'
            )
        else:
            script = patch_kinesis_mock(source.read_bytes(), BIND_HOST, str(source))
        (work / "main.js").write_text(script, encoding="utf-8")
        shutil.copy(source.parent / "server.json", work / "server.json")
        port, tls_port = _free_port(), _free_port()
        env = {
            **os.environ,
            **LOCAL_CREDENTIALS,
            "KINESIS_MOCK_PLAIN_PORT": str(port),
            "KINESIS_MOCK_TLS_PORT": str(tls_port),
            "LOG_LEVEL": "WARN",
        }
        argv = ["node"]
        if heap_mb:
            argv.append(f"--max-old-space-size={heap_mb}")
        with open(work / "kinesis.log", "wb") as log:
            process = subprocess.Popen(
                [*argv, str(work / "main.js")], cwd=work, env=env, stdout=log, stderr=log
            )
        with _serving(process, port, work / "kinesis.log") as served:
            yield served


@contextmanager
def fraudstream_server() -> Iterator[tuple[int, int]]:
    """(pid, port) of fraudstream's own Kinesis server (consumer/local/kinesis_server)."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="standin-") as tmp:
        argv, cwd = kinesis_command(
            StackOptions(state_dir=Path(tmp), kinesis_port=port, kinesis_server="fraudstream")
        )
        with open(Path(tmp) / "kinesis.log", "wb") as log:
            process = subprocess.Popen(
                argv, cwd=cwd, env={**os.environ, **LOCAL_CREDENTIALS}, stdout=log, stderr=log
            )
        with _serving(process, port, Path(tmp) / "kinesis.log") as served:
            yield served


@contextmanager
def _serving(process: subprocess.Popen[bytes], port: int, log: Path) -> Iterator[tuple[int, int]]:
    """(pid, port) once the started stand-in listens; stopped (SIGTERM, then SIGKILL) on exit."""
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as probe:
                if probe.connect_ex((BIND_HOST, port)) == 0:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the Kinesis stand-in did not start: {log}")
            time.sleep(0.2)
        yield process.pid, port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def stand_in(args: argparse.Namespace) -> Any:
    """The stand-in --server names, started for the run."""
    if args.server == "fraudstream":
        return fraudstream_server()
    return kinesis_mock(args.unpatched, args.heap_mb)


def _client(port: int, pool: int) -> Any:
    return boto3.client(
        "kinesis",
        endpoint_url=f"http://{BIND_HOST}:{port}",
        region_name=LOCAL_CREDENTIALS["AWS_REGION"],
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(
            max_pool_connections=pool,
            retries={"max_attempts": 1, "mode": "standard"},
            read_timeout=120,
        ),
    )


@dataclass
class Counters:
    """What the threads count, per second of the run (index = second since start)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    accepted: dict[int, int] = field(default_factory=dict)
    failed: int = 0
    errors: int = 0
    put_ms: dict[int, list[float]] = field(default_factory=dict)
    read: dict[int, int] = field(default_factory=dict)
    get_ms: dict[int, list[float]] = field(default_factory=dict)
    # shard -> sequence numbers accepted / read, in order
    put_seq: dict[str, list[int]] = field(default_factory=dict)
    got_seq: dict[str, list[int]] = field(default_factory=dict)
    order_errors: int = 0


def _record(i: int) -> dict[str, Any]:
    account = f"acct-{random.randrange(50_000):05d}"
    body = {
        "transaction_id": f"tx-{i:012d}",
        "account_id": account,
        "amount": round(random.uniform(1, 900), 2),
        "currency": "USD",
        "merchant": f"m-{random.randrange(5000)}",
        "country": "US",
        "ts": time.time(),
    }
    return {"Data": json.dumps(body).encode(), "PartitionKey": account}


def _producer(
    client: Any, counters: Counters, t0: float, due: Iterator[tuple[int, float]], batch: int
) -> None:
    for index, due_at in due:
        delay = due_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        records = [_record(index * batch + j) for j in range(batch)]
        started = time.monotonic()
        try:
            answer = client.put_records(StreamName=STREAM, Records=records)
        except Exception:  # counted, the run goes on
            with counters.lock:
                counters.errors += 1
            continue
        done = time.monotonic()
        second = int(done - t0)
        ok = [entry for entry in answer["Records"] if "SequenceNumber" in entry]
        with counters.lock:
            counters.accepted[second] = counters.accepted.get(second, 0) + len(ok)
            counters.failed += len(answer["Records"]) - len(ok)
            counters.put_ms.setdefault(second, []).append((done - started) * 1000)
            for entry in ok:
                counters.put_seq.setdefault(entry["ShardId"], []).append(
                    int(entry["SequenceNumber"])
                )


def _reader(
    client: Any, counters: Counters, t0: float, shard: str, poll_s: float, stop: threading.Event
) -> None:
    iterator = client.get_shard_iterator(
        StreamName=STREAM, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    last = -1
    got: list[int] = []
    counters.got_seq[shard] = got
    idle_after_stop = 0
    while True:
        started = time.monotonic()
        try:
            answer = client.get_records(ShardIterator=iterator, Limit=10000)
        except Exception:
            with counters.lock:
                counters.errors += 1
            time.sleep(poll_s)
            continue
        done = time.monotonic()
        second = int(done - t0)
        records = answer["Records"]
        for record in records:
            number = int(record["SequenceNumber"])
            if number <= last:
                counters.order_errors += 1
            last = number
            got.append(number)
        with counters.lock:
            counters.read[second] = counters.read.get(second, 0) + len(records)
            counters.get_ms.setdefault(second, []).append((done - started) * 1000)
        iterator = answer.get("NextShardIterator") or iterator
        if stop.is_set():
            idle_after_stop = idle_after_stop + 1 if not records else 0
            if idle_after_stop >= 3:
                return
        time.sleep(poll_s)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _stop_on_sigterm() -> None:
    """SIGTERM (a `timeout`, a person) ends the run like Ctrl-C: kinesis-mock is stopped too."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def run(args: argparse.Namespace) -> int:
    _stop_on_sigterm()
    with stand_in(args) as (pid, port):
        control = _client(port, 4)
        control.create_stream(StreamName=STREAM, ShardCount=args.shards)
        while True:
            description = control.describe_stream_summary(StreamName=STREAM)
            if description["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
                break
            time.sleep(0.2)
        shards = [s["ShardId"] for s in control.list_shards(StreamName=STREAM)["Shards"]]
        counters = Counters()
        stop = threading.Event()
        reader_client = _client(port, len(shards) + 2)
        t0 = time.monotonic()
        readers = [
            threading.Thread(
                target=_reader,
                args=(reader_client, counters, t0, shard, args.poll_ms / 1000, stop),
                daemon=True,
            )
            for shard in shards
        ]
        if not args.backlog_first:
            for thread in readers:
                thread.start()
        read_started: float | None = None
        batches = int(args.rate * args.duration / args.batch)
        spacing = args.batch / args.rate
        due_lock = threading.Lock()
        schedule = iter([(i, t0 + i * spacing) for i in range(batches)])

        def due() -> Iterator[tuple[int, float]]:
            while True:
                with due_lock:
                    item = next(schedule, None)
                if item is None:
                    return
                yield item

        put_client = _client(port, args.producers + 2)
        producers = [
            threading.Thread(
                target=_producer,
                args=(put_client, counters, t0, due(), args.batch),
                daemon=True,
            )
            for _ in range(args.producers)
        ]
        for thread in producers:
            thread.start()
        rows: list[dict[str, Any]] = []
        header = (
            "| minute | accepted/s | read/s | put p50 ms | put p99 ms | get p99 ms "
            "| behind (records) | stand-in RSS MB | stand-in CPU % | load 1m |"
        )
        print(header)
        print("|" + " ---: |" * 10)
        sys.stdout.flush()
        window_start = 0
        cpu_before = cpu_seconds(pid)
        wall_before = time.monotonic()
        max_rss = 0.0
        while True:
            finished = not any(t.is_alive() for t in producers)
            if finished and args.backlog_first:
                if read_started is None:  # the backlog is in: now the readers start
                    read_started = time.monotonic()
                    for thread in readers:
                        thread.start()
                stop.set()
                finished = not any(t.is_alive() for t in readers)
            now = time.monotonic()
            elapsed = now - t0
            if finished:
                stop.set()
            if elapsed >= window_start + args.interval or finished:
                window_end = int(elapsed)
                if window_end <= window_start:  # the last row already covered the run
                    break
                seconds = range(window_start, window_end)
                span = max(1, window_end - window_start)
                with counters.lock:
                    accepted = sum(counters.accepted.get(s, 0) for s in seconds)
                    read = sum(counters.read.get(s, 0) for s in seconds)
                    put_ms = [v for s in seconds for v in counters.put_ms.get(s, [])]
                    get_ms = [v for s in seconds for v in counters.get_ms.get(s, [])]
                    behind = sum(counters.accepted.values()) - sum(counters.read.values())
                cpu_now = cpu_seconds(pid)
                rss = _rss_mb(pid)
                max_rss = max(max_rss, rss)
                row = {
                    "minute": round(window_end / 60, 2),
                    "accepted_per_s": round(accepted / span),
                    "read_per_s": round(read / span),
                    "put_p50_ms": round(_pct(put_ms, 0.5)),
                    "put_p99_ms": round(_pct(put_ms, 0.99)),
                    "get_p99_ms": round(_pct(get_ms, 0.99)),
                    "behind": behind,
                    "rss_mb": round(rss),
                    "cpu_pct": round(100 * (cpu_now - cpu_before) / (now - wall_before)),
                    "load_1m": round(os.getloadavg()[0], 2),
                }
                rows.append(row)
                print("| " + " | ".join(str(v) for v in row.values()) + " |")
                sys.stdout.flush()
                cpu_before, wall_before, window_start = cpu_now, now, window_end
                if finished:
                    break
            time.sleep(0.5)
        for thread in readers:
            thread.join(60)
        total_s = time.monotonic() - t0
        put = {s: sorted(v) for s, v in counters.put_seq.items()}
        lost = sum(len(set(put.get(s, [])) - set(counters.got_seq.get(s, []))) for s in shards)
        duplicates = sum(len(v) - len(set(v)) for v in counters.got_seq.values())
        accepted_total = sum(counters.accepted.values())
        drain_s = None if read_started is None else round(total_s - (read_started - t0), 1)
        summary = {
            "server": args.server,
            "shards": args.shards,
            "rate": args.rate,
            "duration_s": args.duration,
            "patched": not args.unpatched,
            "accepted": accepted_total,
            "accepted_per_s": round(accepted_total / max(total_s, 1)),
            "read": sum(counters.read.values()),
            "failed_entries": counters.failed,
            "call_errors": counters.errors,
            "lost": lost,
            "duplicates": duplicates,
            "out_of_order": counters.order_errors,
            "max_rss_mb": round(max_rss),
            "wall_s": round(total_s, 1),
            # --backlog-first: from the readers' start to the last one's end (it stops after
            # three empty polls: 3 x --poll-ms of that is waiting, not reading).
            "drain_s": drain_s,
            "drain_read_per_s": None
            if not drain_s
            else round(sum(counters.read.values()) / drain_s),
        }
        print(json.dumps(summary))
        if args.json:
            Path(args.json).write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
        return 0 if lost == duplicates == counters.order_errors == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load_test.standin", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--rate", type=float, default=2000, help="records/s offered")
    parser.add_argument("--duration", type=float, default=120, help="seconds of putting")
    parser.add_argument("--batch", type=int, default=500, help="records per PutRecords")
    parser.add_argument("--producers", type=int, default=2, help="threads putting")
    parser.add_argument("--poll-ms", type=int, default=200, help="between GetRecords per shard")
    parser.add_argument("--interval", type=float, default=60, help="seconds per report row")
    parser.add_argument("--heap-mb", type=int, default=None, help="node --max-old-space-size")
    parser.add_argument(
        "--unpatched", action="store_true", help="the pinned build (bind address only)"
    )
    parser.add_argument(
        "--server",
        choices=("kinesis-mock", "fraudstream"),
        default="kinesis-mock",
        help="the stand-in: kinesis-mock (patched as `local up` runs it) or fraudstream's own "
        "(consumer/local/kinesis_server)",
    )
    parser.add_argument(
        "--backlog-first",
        action="store_true",
        help="put everything first, then start the readers: how fast a backlog drains",
    )
    parser.add_argument("--json", help="write the rows and the totals here")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
