"""A load test of the scoring API (`fraudstream serve`, docs/api.md): latency at a fixed rate.

    python -m load_test.api --rate 500 --duration 60 [--model DIR] --out reports/
    python -m load_test.api --find-max --model DIR --out reports/
    python -m load_test.api --url http://host:8080 --key fsk_... --rate 200

Unless --url is given it starts everything itself, in a temporary directory: a redis-server on
a free port, state seeded by the workers' own store (--seed-records transactions of the
generator's accounts, written as a worker writes them), a freshly minted API key in a keys
file, and `fraudstream serve` (with --model DIR as FRAUD_MODEL_DIR). The requests are the next
transactions of the same generator (load_test/synthetic.py), so most hit accounts with history.

The traffic is open-loop: request i is due at start + i/rate and is sent then, whatever the
earlier ones are doing, over a pool of keep-alive HTTP/1.1 connections (raw asyncio streams,
pre-encoded requests); its latency runs from the time it was due, so a server that stalls is
charged for every request that queued behind it (no coordinated omission). A request still
unsent --timeout seconds after it was due is counted as a timeout without being sent.

It prints p50/p90/p99/p99.9/max, the achieved rate, errors by status, timeouts, and the CPU and
memory of the server (from /proc) and of this client, and writes a JSON report and a PNG chart
(latency percentiles and rates per second). --find-max steps the rate up (--start-rate, +--step,
--step-duration s each) until p99 reaches --p99-ms or requests fail, and reports the highest rate
that held.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from load_test.cli_help import HelpFormatter, exit_codes
from load_test.procfs import child_pids, cpu_seconds, peak_rss_mb_of
from load_test.synthetic import TransactionGenerator

EXIT_OK = 0
EXIT_FAILED = 1  # errors or timeouts, or p99 above --max-p99-ms
EXIT_NO_SERVER = 3  # the server (or redis-server) could not be started or reached

SCORE = "/v1/score"
BATCH = "/v1/score:batch"


# --- what is measured ---------------------------------------------------------------------------


def latency_summary(values_ms: list[float]) -> dict[str, float]:
    """count, p50, p90, p99, p99.9, max and mean of latencies in ms (nearest rank)."""
    if not values_ms:
        return {"count": 0}
    ordered = sorted(values_ms)
    n = len(ordered)

    def at(q: float) -> float:
        return round(ordered[min(n - 1, max(0, int(q * n + 0.5) - 1))], 3)

    return {
        "count": n,
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "p99_9": at(0.999),
        "max": round(ordered[-1], 3),
        "mean": round(sum(ordered) / n, 3),
    }


@dataclass
class Sample:
    """One request: when it was due (s since the run's start), its route, what came back."""

    due_s: float
    route: str
    status: int  # the HTTP status; 0 a timeout, -1 a connection error
    latency_ms: float
    flagged: int = 0  # decisions with "flagged":true in the answer


@dataclass
class RunReport:
    rate: float
    duration_s: float
    target: str
    model: str | None
    workers: int | None
    connections: int
    batch_share: float
    batch_size: int
    sent: int = 0  # requests due in the run (each one is in exactly one of the four below)
    ok: int = 0
    errors: int = 0  # answered with a status other than 200
    timeouts: int = 0  # no answer within --timeout (expired_unsent of them never left the client)
    connection_errors: int = 0
    expired_unsent: int = 0
    errors_by_status: dict[str, int] = field(default_factory=dict)
    transactions_scored: int = 0
    flagged: int = 0
    achieved_rate: float = 0.0  # answered requests per second of the run
    latency_ms: dict[str, float] = field(default_factory=dict)
    latency_ms_by_route: dict[str, dict[str, float]] = field(default_factory=dict)
    server_cpu_percent: float | None = None  # of one core, the server's processes together
    server_peak_rss_mb: float | None = None
    redis_cpu_percent: float | None = None
    client_cpu_percent: float = 0.0
    # The whole machine while the run lasted (100 a core): what the server, Redis and this
    # client used, and the rest, other work competing for the same cores.
    machine_busy_percent: float | None = None
    others_cpu_percent: float | None = None
    load_avg_1m: float | None = None
    timeline: list[dict[str, float]] = field(default_factory=list)

    @property
    def p99(self) -> float:
        return float(self.latency_ms.get("p99", float("inf")))

    @property
    def failed(self) -> int:
        return self.errors + self.timeouts + self.connection_errors


@dataclass
class Report:
    runs: list[RunReport]
    find_max: bool
    p99_limit_ms: float
    max_rate_under_limit: float | None = None
    started_at: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


# --- the client ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    key: str

    def request(self, path: str, body: bytes) -> bytes:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {self.key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lowered = head.lower()
    at = lowered.find(b"\r\ncontent-length:")
    if at < 0:
        raise ValueError("an answer without Content-Length")
    end = lowered.index(b"\r\n", at + 2)
    length = int(lowered[at + 17 : end])
    return status, await reader.readexactly(length)


async def open_loop(
    target: Target,
    requests: list[tuple[str, bytes]],
    rate: float,
    connections: int,
    timeout_s: float,
    on_second: Callable[[int], None] | None = None,
) -> list[Sample]:
    """Send `requests` (route, pre-encoded bytes) at `rate` per second, each at its due time,
    over `connections` keep-alive connections; one Sample per request."""
    clock = time.perf_counter  # the loop's own clock (uvloop's) has millisecond steps
    queue: asyncio.Queue[tuple[float, str, bytes] | None] = asyncio.Queue()
    samples: list[Sample] = []
    opened = []
    for _ in range(connections):  # opened before the clock starts
        opened.append(await asyncio.open_connection(target.host, target.port))
    start = clock() + 0.05

    async def connection(index: int) -> None:
        reader: asyncio.StreamReader | None
        writer: asyncio.StreamWriter | None
        reader, writer = opened[index]
        while True:
            item = await queue.get()
            if item is None:
                break
            due, route, payload = item
            if clock() - due > timeout_s:  # waited too long in the client: never sent
                samples.append(Sample(due - start, route, -2, timeout_s * 1000))
                continue
            status = -1
            body = b""
            try:
                async with asyncio.timeout(timeout_s):
                    if writer is None:
                        reader, writer = await asyncio.open_connection(target.host, target.port)
                    assert reader is not None
                    writer.write(payload)
                    status, body = await _read_answer(reader)
            except TimeoutError:
                status = 0
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                status = -1
            now = clock()
            if status <= 0 and writer is not None:
                writer.close()
                reader = writer = None
            samples.append(
                Sample(
                    due - start, route, status, (now - due) * 1000, body.count(b'"flagged":true')
                )
            )
        if writer is not None:
            writer.close()

    workers = [asyncio.create_task(connection(i)) for i in range(connections)]
    interval = 1.0 / rate
    second = -1
    for index, (route, payload) in enumerate(requests):
        due = start + index * interval
        delay = due - clock()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        queue.put_nowait((due, route, payload))
        if on_second is not None and int(index * interval) != second:
            second = int(index * interval)
            on_second(second)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return samples


# --- the server's side --------------------------------------------------------------------------


def _process_tree(pid: int) -> list[int]:
    found = [pid]
    for child in child_pids(pid):
        found.extend(_process_tree(child))
    return found


def machine_busy_s() -> float | None:
    """CPU seconds the whole machine spent busy (every core), from /proc/stat."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds of a process and its descendants (uvicorn's --workers children)."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid

    def seconds(self) -> float | None:
        if self.pid is None:
            return None
        return sum(cpu_seconds(p) for p in _process_tree(self.pid))

    def peak_rss_mb(self) -> float | None:
        if self.pid is None:
            return None
        peaks = [peak_rss_mb_of(p) for p in _process_tree(self.pid)]
        return round(sum(p for p in peaks if p is not None), 1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(host: str, port: int, path: str) -> int:
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def wait_until(ready: Callable[[], bool], alive: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        with contextlib.suppress(Exception):
            if ready():
                return True
        time.sleep(0.1)
    return False


class Started(Exception):
    """What could not be started (EXIT_NO_SERVER); the message says why."""


@dataclass
class Servers:
    target: Target
    server_pid: int | None = None
    redis_pid: int | None = None
    redis_url: str | None = None
    log: Path | None = None


def start_redis(work: Path, stack: contextlib.ExitStack) -> tuple[int, str]:
    port = free_port()
    try:
        process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work,
        )  # fmt: skip
    except FileNotFoundError:
        raise Started("redis-server not found: apt-get install -y redis-server") from None
    stack.callback(_stop, process)
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    client = redis.Redis.from_url(url)
    if not wait_until(lambda: bool(client.ping()), lambda: process.poll() is None, 10):
        raise Started(f"redis-server did not answer on port {port}")
    client.close()
    return process.pid, url


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def mint_keys(work: Path) -> tuple[str, Path]:
    """A fresh key and a keys' document accepting it, with limits far above any test rate."""
    from consumer.api.keys import new_key

    key, entry = new_key("load-test")
    path = work / "keys.json"
    path.write_text(json.dumps({"keys": [{**entry, "rate_per_s": 1e6, "burst": 1_000_000}]}))
    return key, path


def start_server(
    work: Path,
    redis_url: str,
    keys_file: Path,
    key: str,
    model: str | None,
    workers: int,
    stack: contextlib.ExitStack,
    log_level: str | None,
) -> tuple[int, Target, Path]:
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "FRAUD_API_KEYS_FILE": str(keys_file),
        "FRAUD_METRICS_ENABLED": "false",
    }
    env.pop("FRAUD_MODEL_DIR", None)
    if model is not None:
        env["FRAUD_MODEL_DIR"] = str(Path(model).resolve())
    if log_level is not None:
        env["FRAUD_LOG_LEVEL"] = log_level
    log = work / "serve.log"
    argv = [sys.executable, "-m", "consumer.cli", "serve", "--port", str(port)]
    argv += ["--workers", str(workers)]
    with log.open("wb") as err:
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
    stack.callback(_stop, process)
    ready = wait_until(
        lambda: _get("127.0.0.1", port, "/readyz") == 200, lambda: process.poll() is None, 90
    )
    if not ready:
        raise Started(f"fraudstream serve did not become ready: {log.read_text()[-2000:]}")
    return process.pid, Target("127.0.0.1", port, key), log


def seed_state(redis_url: str, records: list[bytes]) -> int:
    """Write `records` to Redis as a worker would (the store's load, add, save), in batches."""
    import redis

    from consumer.records import Transaction, parse_transaction
    from consumer.settings.config import StateConfig
    from consumer.state.store import AccountStateStore

    client = redis.Redis.from_url(redis_url)
    store = AccountStateStore(client, StateConfig(), Decimal(86400))
    written = 0
    for first in range(0, len(records), 500):
        items = []
        for offset, data in enumerate(records[first : first + 500]):
            parsed = parse_transaction(data)
            if isinstance(parsed, Transaction):
                items.append(((1000 + first + offset, 0), parsed))
        view = store.load(items)
        for position, parsed in items:
            view.add(parsed, position)
        store.save(view)
        written += len(items)
    client.close()
    return written


# --- the traffic ----------------------------------------------------------------------------------


class StepClock:
    """Event time for the generator: from `start`, `step_ms` further at every reading, so the
    records' timestamps are spaced as real traffic's and all lie in the past."""

    def __init__(self, start: datetime, step_ms: float) -> None:
        self._at = start
        self._step = timedelta(milliseconds=step_ms)

    def __call__(self) -> datetime:
        self._at += self._step
        return self._at


class Traffic:
    def __init__(self, target: Target, accounts: int, seed: int, event_rate: float) -> None:
        self.target = target
        # Event time runs at `event_rate` records a second from 30 days back, however fast the
        # requests are sent: the accounts' histories look like real traffic's (and like the
        # labelled files' a model is trained on), and no timestamp is in the future.
        clock = StepClock(datetime.now(UTC) - timedelta(days=30), 1000.0 / event_rate)
        self.generator = TransactionGenerator(
            accounts=accounts, fraud_ratio=0.02, invalid_ratio=0.0, seed=seed, now=clock
        )

    def records(self, count: int) -> list[bytes]:
        return [self.generator.next_record().data for _ in range(count)]

    def requests(
        self, count: int, batch_share: float, batch_size: int
    ) -> tuple[list[tuple[str, bytes]], int]:
        """`count` requests (a `batch_share` of them batches), and the transactions in them."""
        out: list[tuple[str, bytes]] = []
        transactions = 0
        batch_every = round(1 / batch_share) if batch_share > 0 else 0
        for index in range(count):
            if batch_every and index % batch_every == batch_every - 1:
                body = b'{"transactions":[' + b",".join(self.records(batch_size)) + b"]}"
                out.append((BATCH, self.target.request(BATCH, body)))
                transactions += batch_size
            else:
                out.append((SCORE, self.target.request(SCORE, self.records(1)[0])))
                transactions += 1
        return out, transactions


# --- one run --------------------------------------------------------------------------------------


def summarize(
    report: RunReport, samples: list[Sample], wall_s: float, cpu_by_second: dict[int, float]
) -> None:
    report.sent = len(samples)
    statuses = Counter(s.status for s in samples)
    report.ok = statuses.get(200, 0)
    report.timeouts = statuses.get(0, 0) + statuses.get(-2, 0)
    report.expired_unsent = statuses.get(-2, 0)
    report.connection_errors = statuses.get(-1, 0)
    report.errors_by_status = {str(k): v for k, v in sorted(statuses.items()) if k not in (200,)}
    report.errors = sum(v for k, v in statuses.items() if k > 0 and k != 200)
    report.flagged = sum(s.flagged for s in samples)
    answered = [s for s in samples if s.status > 0]
    report.achieved_rate = round(len(answered) / max(wall_s, 1e-9), 1)
    report.latency_ms = latency_summary([s.latency_ms for s in samples])
    for route in sorted({s.route for s in samples}):
        report.latency_ms_by_route[route] = latency_summary(
            [s.latency_ms for s in samples if s.route == route]
        )
    by_second: dict[int, list[Sample]] = {}
    for s in samples:
        by_second.setdefault(int(s.due_s), []).append(s)
    for second in sorted(by_second):
        bucket = by_second[second]
        lat = latency_summary([s.latency_ms for s in bucket])
        point = {
            "t": float(second),
            "offered_per_s": float(len(bucket)),
            "ok_per_s": float(sum(1 for s in bucket if s.status == 200)),
            "failed_per_s": float(sum(1 for s in bucket if s.status != 200)),
            "p50_ms": lat["p50"],
            "p99_ms": lat["p99"],
            "max_ms": lat["max"],
        }
        if second in cpu_by_second:
            point["server_cpu_percent"] = cpu_by_second[second]
        report.timeline.append(point)


async def _measured(
    target: Target,
    requests: list[tuple[str, bytes]],
    rate: float,
    connections: int,
    timeout_s: float,
    server: CpuMeter,
) -> tuple[list[Sample], float, dict[int, float]]:
    cpu_by_second: dict[int, float] = {}
    last: tuple[float, float | None] = (time.monotonic(), server.seconds())

    def tick(second: int) -> None:
        nonlocal last
        now, used = time.monotonic(), server.seconds()
        if used is not None and last[1] is not None and second > 0:
            cpu_by_second[second - 1] = round(100 * (used - last[1]) / (now - last[0]), 1)
        last = (now, used)

    began = time.monotonic()
    samples = await open_loop(target, requests, rate, connections, timeout_s, tick)
    return samples, time.monotonic() - began, cpu_by_second


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency of the server
        return asyncio.new_event_loop()


def run_once(
    args: argparse.Namespace,
    traffic: Traffic,
    rate: float,
    duration_s: float,
    server: CpuMeter,
    redis_meter: CpuMeter,
) -> RunReport:
    count = max(1, round(rate * duration_s))
    requests, transactions = traffic.requests(count, args.batch_share, args.batch_size)
    report = RunReport(
        rate=rate,
        duration_s=duration_s,
        target=f"{traffic.target.host}:{traffic.target.port}",
        model=args.model,
        workers=None if args.url else args.workers,
        connections=args.connections,
        batch_share=args.batch_share,
        batch_size=args.batch_size,
        transactions_scored=transactions,
    )
    if args.warmup > 0:  # connections, caches and the server's first requests, not counted
        warm, _ = traffic.requests(max(1, round(rate * args.warmup)), args.batch_share, 5)
        with contextlib.closing(_new_loop()) as loop:
            loop.run_until_complete(open_loop(traffic.target, warm, rate, 8, args.timeout))
    cpu0, redis0 = server.seconds(), redis_meter.seconds()
    client0, machine0 = time.process_time(), machine_busy_s()
    with contextlib.closing(_new_loop()) as loop:
        samples, wall_s, cpu_by_second = loop.run_until_complete(
            _measured(traffic.target, requests, rate, args.connections, args.timeout, server)
        )
    client_s = time.process_time() - client0
    cpu1, redis1, machine1 = server.seconds(), redis_meter.seconds(), machine_busy_s()
    summarize(report, samples, wall_s, cpu_by_second)
    report.client_cpu_percent = round(100 * client_s / wall_s, 1)
    if cpu0 is not None and cpu1 is not None:
        report.server_cpu_percent = round(100 * (cpu1 - cpu0) / wall_s, 1)
        report.server_peak_rss_mb = server.peak_rss_mb()
    if redis0 is not None and redis1 is not None:
        report.redis_cpu_percent = round(100 * (redis1 - redis0) / wall_s, 1)
    if machine0 is not None and machine1 is not None:
        report.machine_busy_percent = round(100 * (machine1 - machine0) / wall_s, 1)
        ours = report.client_cpu_percent + (report.server_cpu_percent or 0.0)
        ours += report.redis_cpu_percent or 0.0
        report.others_cpu_percent = round(max(0.0, report.machine_busy_percent - ours), 1)
    with contextlib.suppress(OSError):
        report.load_avg_1m = round(os.getloadavg()[0], 2)
    return report


# --- output ---------------------------------------------------------------------------------------


def render_run(run: RunReport) -> str:
    lat = run.latency_ms
    model = f"model {run.model}" if run.model else "no model"
    lines = [
        f"rate {run.rate:g}/s for {run.duration_s:g} s ({model}"
        f", {run.connections} connections, batch share {run.batch_share:g}): sent {run.sent}, "
        f"ok {run.ok}, errors {run.errors} {run.errors_by_status or ''}, timeouts {run.timeouts}, "
        f"connection errors {run.connection_errors}; achieved {run.achieved_rate:g}/s",
    ]
    if lat.get("count"):
        lines.append(
            f"  latency ms: p50 {lat['p50']:.1f}  p90 {lat['p90']:.1f}  p99 {lat['p99']:.1f}  "
            f"p99.9 {lat['p99_9']:.1f}  max {lat['max']:.1f}  (flagged {run.flagged} of "
            f"{run.transactions_scored} transactions)"
        )
    cpu = "n/a" if run.server_cpu_percent is None else f"{run.server_cpu_percent:.0f}%"
    rss = "n/a" if run.server_peak_rss_mb is None else f"{run.server_peak_rss_mb:.0f} MB"
    redis_cpu = "n/a" if run.redis_cpu_percent is None else f"{run.redis_cpu_percent:.0f}%"
    lines.append(
        f"  CPU of one core: server {cpu}, redis {redis_cpu}, this client "
        f"{run.client_cpu_percent:.0f}%; server peak RSS {rss}"
    )
    if run.others_cpu_percent is not None:
        lines.append(
            f"  the machine: {run.machine_busy_percent:.0f}% busy of {100 * (os.cpu_count() or 1)}"
            f"%, other processes {run.others_cpu_percent:.0f}%, load average {run.load_avg_1m}"
        )
    return "\n".join(lines)


def plot(report: Report, path: Path) -> bool:
    """Latency percentiles per second and the rates (every run one after the other) as a PNG;
    False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    offset = 0.0
    xs: list[float] = []
    series: dict[str, list[float]] = {k: [] for k in ("p50_ms", "p99_ms", "max_ms")}
    offered: list[float] = []
    ok: list[float] = []
    cpu: list[float] = []
    for run in report.runs:
        for point in run.timeline:
            xs.append(offset + point["t"])
            for name, values in series.items():
                values.append(point.get(name, float("nan")))
            offered.append(point["offered_per_s"])
            ok.append(point["ok_per_s"])
            cpu.append(point.get("server_cpu_percent", float("nan")))
        if len(report.runs) > 1:
            top.axvline(offset, color="grey", linewidth=0.5)
            top.text(offset, 1, f"{run.rate:g}/s", fontsize=7, color="grey")
        offset += run.duration_s
    for name, values in series.items():
        top.plot(xs, values, label=name.replace("_ms", ""))
    top.axhline(50, color="orange", linestyle="--", linewidth=0.8, label="50 ms")
    top.axhline(report.p99_limit_ms, color="red", linestyle="--", linewidth=0.8,
                label=f"{report.p99_limit_ms:g} ms")  # fmt: skip
    top.set_yscale("log")
    top.set_ylabel("latency from due time (ms)")
    top.legend(loc="upper left", fontsize=8)
    top.set_title("fraudstream serve: open-loop load test")
    bottom.plot(xs, offered, label="offered/s")
    bottom.plot(xs, ok, label="200 answers/s")
    bottom.set_ylabel("requests/s")
    bottom.set_xlabel("seconds since start")
    right = bottom.twinx()
    right.plot(xs, cpu, color="grey", linewidth=0.8, label="server CPU %")
    right.set_ylabel("server CPU (% of a core)")
    bottom.legend(loc="upper left", fontsize=8)
    right.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


# --- the command ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m load_test.api",
        description=__doc__,
        formatter_class=HelpFormatter,
        epilog=exit_codes(
            f"{EXIT_OK} every request answered 200 in time (and p99 within --max-p99-ms); "
            "with --find-max, a rate held",
            f"{EXIT_FAILED} errors or timeouts, or p99 above --max-p99-ms; with --find-max, no "
            "rate held (the report is written all the same)",
            f"{EXIT_NO_SERVER} the server or redis-server could not be started, or --url does "
            "not answer",
        ),
    )
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second offered")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of traffic")
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of traffic first, not counted"
    )
    parser.add_argument(
        "--batch-share", type=float, default=0.0, help="share of requests sent to /v1/score:batch"
    )
    parser.add_argument("--batch-size", type=int, default=20, help="transactions in a batch")
    parser.add_argument(
        "--connections", type=int, default=64, help="keep-alive connections in the pool"
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds from due time to a timeout"
    )
    parser.add_argument("--model", metavar="DIR", help="a trained model (FRAUD_MODEL_DIR)")
    parser.add_argument("--workers", type=int, default=1, help="`fraudstream serve --workers`")
    parser.add_argument(
        "--log-level", help="FRAUD_LOG_LEVEL of the server (default: its own, info)"
    )
    parser.add_argument("--accounts", type=int, default=2000, help="ordinary accounts")
    parser.add_argument(
        "--seed-records",
        type=int,
        default=5000,
        help="transactions written to the state first (the accounts' history)",
    )
    parser.add_argument("--seed", type=int, default=7, help="the generator's seed")
    parser.add_argument(
        "--event-rate",
        type=float,
        default=3.0,
        help="transactions per second of event time (their timestamps), as in the labelled "
        "files models are trained on",
    )
    parser.add_argument(
        "--url", help="a running server instead (no redis-server started, nothing seeded)"
    )
    parser.add_argument("--key", help="the API key for --url")
    parser.add_argument(
        "--server-pid", type=int, help="with --url: the server's pid, to measure its CPU"
    )
    parser.add_argument("--out", default="reports", help="directory for the JSON report and PNG")
    parser.add_argument(
        "--max-p99-ms", type=float, help="fail (exit 1) when a run's p99 is above this"
    )
    finding = parser.add_argument_group("--find-max")
    finding.add_argument(
        "--find-max", action="store_true", help="step the rate up to the highest that holds"
    )
    finding.add_argument("--start-rate", type=float, default=250.0, help="the first step's rate")
    finding.add_argument("--step", type=float, default=250.0, help="added at each step")
    finding.add_argument("--max-rate", type=float, default=5000.0, help="the last step at most")
    finding.add_argument("--step-duration", type=float, default=25.0, help="seconds a step")
    finding.add_argument(
        "--p99-ms", type=float, default=100.0, help="a step holds with p99 below this"
    )
    return parser


def _usage_problem(args: argparse.Namespace) -> str | None:
    if (
        args.event_rate <= 0
        or args.rate <= 0
        or args.duration <= 0
        or args.connections < 1
        or args.timeout <= 0
    ):
        return "--rate, --duration, --timeout must be positive and --connections >= 1"
    if not 0 <= args.batch_share <= 1 or not 1 <= args.batch_size <= 500:
        return "--batch-share must be within 0..1 and --batch-size 1..500"
    if args.url and not args.key:
        return "--url needs --key"
    if args.model and args.url:
        return "--model starts a server: not with --url"
    if args.model and not Path(args.model).is_dir():
        return f"--model {args.model}: not a directory"
    return None


@contextlib.contextmanager
def servers(args: argparse.Namespace) -> Iterator[Servers]:
    """The target: --url, or redis-server, seeded state and `fraudstream serve` started here."""
    if args.url:
        parsed = urllib.parse.urlsplit(args.url)
        host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
        try:
            if _get(host, port, "/healthz") != 200:
                raise Started(f"{args.url}/healthz does not answer 200")
        except OSError as exc:
            raise Started(f"{args.url} does not answer: {exc}") from None
        yield Servers(Target(host, port, args.key), server_pid=args.server_pid)
        return
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="api-load-") as tmp:
        work = Path(tmp)
        redis_pid, redis_url = start_redis(work, stack)
        key, keys_file = mint_keys(work)
        pid, target, log = start_server(
            work, redis_url, keys_file, key, args.model, args.workers, stack, args.log_level
        )
        yield Servers(target, pid, redis_pid, redis_url, log)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = _usage_problem(args)
    if problem:
        parser.error(problem)
    started_at = datetime.now(UTC)
    runs: list[RunReport] = []
    try:
        with servers(args) as up:
            traffic = Traffic(up.target, args.accounts, args.seed, args.event_rate)
            if up.redis_url is not None and args.seed_records > 0:
                seeded = seed_state(up.redis_url, traffic.records(args.seed_records))
                print(f"state seeded with {seeded} transactions of {args.accounts} accounts",
                      file=sys.stderr)  # fmt: skip
            server, redis_meter = CpuMeter(up.server_pid), CpuMeter(up.redis_pid)
            if not args.find_max:
                runs.append(run_once(args, traffic, args.rate, args.duration, server, redis_meter))
                print(render_run(runs[-1]))
            else:
                rate = args.start_rate
                while rate <= args.max_rate:
                    run = run_once(args, traffic, rate, args.step_duration, server, redis_meter)
                    runs.append(run)
                    print(render_run(run), flush=True)
                    if run.p99 >= args.p99_ms or run.failed > 0.001 * run.sent:
                        break
                    rate += args.step
    except Started as exc:
        print(f"python -m load_test.api: {exc}", file=sys.stderr)
        return EXIT_NO_SERVER
    report = Report(runs, args.find_max, args.p99_ms, started_at=started_at.isoformat())
    holding = [r.rate for r in runs if r.p99 < args.p99_ms and r.failed <= 0.001 * r.sent]
    if args.find_max:
        report.max_rate_under_limit = max(holding) if holding else None
        print(f"highest rate with p99 < {args.p99_ms:g} ms: {report.max_rate_under_limit}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = started_at.strftime("%Y%m%dT%H%M%S")
    (out / f"api-{stamp}.json").write_text(report.to_json())
    charted = plot(report, out / f"api-{stamp}.png")
    print(
        f"report: {out / f'api-{stamp}.json'}"
        + (f", chart: {out / f'api-{stamp}.png'}" if charted else "")
    )
    # With --find-max the steps past the limit fail by design: only "no rate held" fails.
    failed = report.max_rate_under_limit is None if args.find_max else any(r.failed for r in runs)
    if args.max_p99_ms is not None and any(r.p99 > args.max_p99_ms for r in runs):
        failed = True
    return EXIT_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
