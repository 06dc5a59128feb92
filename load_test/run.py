"""A load test against the running local stack, ending in a report (text, JSON and a PNG chart).

    fraudstream local up --workers 1
    python -m load_test.run --rate 300 --duration 300 --out reports/

It produces labelled synthetic traffic at the given rate, samples the workers' memory (the Java
daemon, its Python processors and their alert processes) while it runs, waits until every shard
is checkpointed at its last record (showing how many are), then reads back what the consumer
wrote: the flagged lines in S3, the alerts that SNS delivered (by HTTP to this process for the
run, in place of the stack's SQS tap: load_test/alert_tap.py says why), and the workers' own
counters from their logs. It fails (exit 1) when the workers did not catch up in time or a
record was lost: a transaction the producer was told landed whose expected flag is not in S3, a
broken record that landed without its dead letter, or one the producer gave up on. It also
samples, every second, the CPU (% of one core) and resident memory of kinesis-mock, moto, redis,
the daemons and their processors, and the machine's load average: the report says which of them
was the limit. The patched stand-in takes PutRecords batches at production rates
(docs/performance.md), hence PutRecords and 1,000 records/s by default.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from consumer.infra.readback import (
    at_or_past,
    drain_queue,
    last_sequence_per_shard,
    lease_checkpoints,
    read_jsonl_objects,
)
from consumer.ingest.entries import Entry
from consumer.local.stack import (
    StackOptions,
    read_env_file,
    running_pids,
    stack_client,
    worker_log_events,
)
from load_test.alert_tap import HttpAlertTap
from load_test.cli_help import HelpFormatter, add_workload_arguments, exit_codes
from load_test.memory import MemorySampler, worker_tree
from load_test.procfs import cpu_seconds
from load_test.producer import (
    Landed,
    NewestPerShard,
    Producer,
    ProgressPrinter,
    add_put_arguments,
    client_config,
    run_generate,
)
from load_test.report import (
    Report,
    parse_time,
    percentiles,
    plot,
    render_text,
    rule_counts,
    score_labels,
    timeline,
)
from load_test.report_files import report_line, write_report
from load_test.synthetic import TransactionGenerator
from load_test.windows import drift, render_windows, window_rows


def worker_log_counters(options: StackOptions, since: float) -> dict[str, dict[str, int]]:
    """Per worker log: the sums of its `metrics` lines written after `since`."""
    out: dict[str, dict[str, int]] = {
        path.stem: {} for path in sorted(options.logs.glob("worker-*.log"))
    }
    for worker, entry in worker_log_events(options, b'"event": "metrics"', since):
        totals = out[worker]
        for key, value in entry.items():
            if isinstance(value, int) and not isinstance(value, bool):
                totals[key] = totals.get(key, 0) + value
    return out


def _worker_counters(options: StackOptions, since: float) -> dict[str, int]:
    """The workers' `metrics` log lines written after `since`, summed over all workers."""
    totals: dict[str, int] = {}
    for counters in worker_log_counters(options, since).values():
        for key, value in counters.items():
            totals[key] = totals.get(key, 0) + value
    return totals


def resident_mb(pid: int) -> float:
    """VmRSS of a live process in MiB (0.0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def stack_groups(options: StackOptions) -> dict[str, list[int]]:
    """The local stack's processes by role: each stand-in, the daemons (JVMs), and their
    processors with the processors' alert processes."""
    alive = running_pids(options)
    groups: dict[str, list[int]] = {
        name: [pid] for name, pid in alive.items() if name in ("kinesis", "moto", "redis")
    }
    daemons = [pid for name, pid in alive.items() if name.startswith("worker-")]
    groups["daemon_jvm"] = daemons
    groups["processors"] = []
    for daemon in daemons:
        processors, alert_processes = worker_tree(daemon)
        groups["processors"] += processors + alert_processes
    return groups


class ProcessSampler(threading.Thread):
    """Every `interval_s`: each group's CPU (% of one core, summed over its processes, from the
    CPU seconds each used since the previous sample) and resident memory (MiB, summed), and the
    machine's 1-minute load average. `rows` is the timeline; `summary()` the mean and max."""

    def __init__(
        self,
        groups: Callable[[], Mapping[str, list[int]]],
        interval_s: float = 1.0,
        *,
        cpu: Callable[[int], float] = cpu_seconds,
        rss: Callable[[int], float] = resident_mb,
        load: Callable[[], float] = lambda: os.getloadavg()[0],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(daemon=True, name="process-sampler")
        self._groups = groups
        self._interval_s = interval_s
        self._cpu, self._rss, self._load, self._clock = cpu, rss, load, clock
        self._halt = threading.Event()
        self._t0 = clock()
        self._previous: dict[int, tuple[float, float]] = {}  # pid -> (clock, cpu seconds)
        self.rows: list[dict[str, float]] = []

    def sample(self) -> dict[str, float]:
        now = self._clock()
        row: dict[str, float] = {"t": round(now - self._t0, 2), "load1": self._load()}
        for group, pids in self._groups().items():
            busy = 0.0
            for pid in pids:
                used = self._cpu(pid)
                before = self._previous.get(pid)
                if before is not None and now > before[0]:
                    busy += max(0.0, used - before[1]) / (now - before[0])
                self._previous[pid] = (now, used)
            row[f"{group}_cpu_pct"] = round(100 * busy, 1)
            row[f"{group}_rss_mb"] = round(sum(self._rss(pid) for pid in pids), 1)
        self.rows.append(row)
        return row

    def run(self) -> None:
        self.sample()  # the baseline of each process's CPU seconds
        while not self._halt.wait(self._interval_s):
            self.sample()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per column (but `t`): mean and max over the samples after the first (the first has
        no CPU interval)."""
        rows = self.rows[1:] or self.rows
        keys = sorted({key for row in rows for key in row} - {"t"})
        out: dict[str, dict[str, float]] = {}
        for key in keys:
            values = [row[key] for row in rows if key in row]
            out[key] = {
                "mean": round(sum(values) / len(values), 1),
                "max": round(max(values), 1),
            }
        return out


def render_processes(summary: Mapping[str, Mapping[str, float]]) -> str:
    """The sampler's summary as text lines: CPU and memory by role, and the load."""
    lines = []
    for key, value in summary.items():
        unit = "% of a core" if key.endswith("_cpu_pct") else "MB" if key.endswith("_mb") else ""
        lines.append(f"{key:<24} mean {value['mean']:>7.1f}  max {value['max']:>7.1f} {unit}")
    return "\n".join(lines)


EXIT_OK = 0
EXIT_FAILED = 1  # the workers did not catch up, or records were lost
EXIT_NO_STACK = 3  # no local stack to test: `fraudstream local up` first
DEFAULT_RATE = 1000.0  # the production rate; the patched stand-in takes 2,000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m load_test.run",
        description=__doc__,
        formatter_class=HelpFormatter,
        epilog=exit_codes(
            f"{EXIT_OK} caught up and nothing lost",
            f"{EXIT_FAILED} the workers did not catch up within --catch-up-timeout, or records "
            "were lost (the report is written all the same)",
            f"{EXIT_NO_STACK} no local stack in --state-dir",
        ),
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        help="records per second offered (the patched local stand-in takes 2,000 into 4 shards)",
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of traffic")
    add_workload_arguments(parser)
    parser.add_argument(
        "--window",
        type=float,
        default=60.0,
        help="seconds per row of the windows table (latency and memory over time, for soaks)",
    )
    parser.add_argument(
        "--catch-up-timeout",
        type=float,
        default=300.0,
        help="seconds to wait after the producer for every shard's checkpoint",
    )
    add_put_arguments(parser, put_api="records")
    return parser


@dataclass(frozen=True)
class Verdict:
    """What makes a load test fail: the workers behind, or records lost."""

    caught_up: bool
    missing_flags: int  # labelled transactions that landed whose flagged line is not in S3
    failed_puts: int  # records the producer gave up on: never reached the stream
    missing_dead_letters: int = 0  # broken records that landed without their dead letter

    @property
    def problems(self) -> list[str]:
        found = []
        if not self.caught_up:
            found.append("the workers did not checkpoint the last records in time")
        if self.missing_flags:
            found.append(
                f"{self.missing_flags} labelled transactions that reached the stream have no "
                "flagged line in S3"
            )
        if self.missing_dead_letters:
            found.append(
                f"{self.missing_dead_letters} broken records that reached the stream have no "
                "dead letter in S3"
            )
        if self.failed_puts:
            found.append(f"{self.failed_puts} records the producer gave up on")
        return found

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.problems else EXIT_OK


def verdict(
    caught_up: bool,
    expected: Mapping[str, frozenset[str]],
    found: Mapping[str, frozenset[str]],
    failed_puts: int,
    invalid_landed: frozenset[str] = frozenset(),
    dead_lettered: frozenset[str] = frozenset(),
) -> Verdict:
    """`expected`: the landed transactions' labels; `found`: the flagged lines read back;
    `invalid_landed`: the sequence numbers of the broken records that landed;
    `dead_lettered`: the sequence numbers of the dead letters read back."""
    missing = sum(1 for tid, rules in expected.items() if rules and tid not in found)
    return Verdict(caught_up, missing, failed_puts, len(invalid_landed - dead_lettered))


class CatchUpProgress:
    """How many shards are checkpointed at their last put, while the run waits: a tqdm bar on
    a terminal, a line every `interval_s` otherwise (stderr)."""

    def __init__(self, shards: int, interval_s: float = 10.0) -> None:
        from tqdm import tqdm

        self._bar = tqdm(
            total=shards,
            desc="caught up",
            unit="shard",
            file=sys.stderr,
            disable=not sys.stderr.isatty(),
        )
        self._interval = interval_s
        self._last = time.monotonic()
        self._started = self._last

    def __call__(self, done: int) -> None:
        if not self._bar.disable:
            self._bar.update(done - self._bar.n)
            return
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            print(
                f"waiting for the workers: {done}/{self._bar.total} shards checkpointed at "
                f"their last record after {now - self._started:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        self._bar.close()


def wait_for_catch_up(
    checkpoints: Callable[[], Mapping[str, str]],
    targets: Mapping[str, str],
    timeout_s: float,
    progress: Callable[[int], None],
    poll_s: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Poll the lease checkpoints until every shard in `targets` is at or past its sequence
    number (True) or `timeout_s` passed (False), telling `progress` how many shards are."""
    deadline = clock() + timeout_s
    while True:
        reached = checkpoints()
        done = sum(at_or_past(reached.get(shard), seq) for shard, seq in targets.items())
        progress(done)
        if done == len(targets):
            return True
        if clock() > deadline:
            return False
        sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    options = StackOptions(state_dir=Path(args.state_dir))
    try:
        env = read_env_file(options)
    except FileNotFoundError:
        print(
            f"no local stack in {args.state_dir}: run `fraudstream local up` first",
            file=sys.stderr,
        )
        return EXIT_NO_STACK
    kinesis, sqs, s3 = (
        stack_client(env, "kinesis", client_config(args.concurrency)),
        stack_client(env, "sqs"),
        stack_client(env, "s3"),
    )
    drain_queue(sqs, env["FRAUD_ALERTS_QUEUE_URL"])  # alerts of earlier runs

    labels: dict[str, frozenset[str]] = {}
    created_at: dict[str, float] = {}  # the transaction's own timestamp
    put_time: dict[str, float] = {}  # when Kinesis acknowledged its put: the latency clock
    id_of_data: dict[bytes, str] = {}
    generator = TransactionGenerator(
        accounts=args.accounts,
        fraud_ratio=args.fraud_ratio,
        invalid_ratio=args.invalid_ratio,
        seed=args.seed,
    )

    invalid_data: set[bytes] = set()
    invalid_landed: set[str] = set()  # sequence numbers: each must come back as a dead letter

    def next_entry() -> Entry:
        record = generator.next_record()
        if record.is_invalid:
            invalid_data.add(record.data)
        else:
            body = json.loads(record.data)
            labels[body["transaction_id"]] = frozenset(record.expected_rules)
            created_at[body["transaction_id"]] = parse_time(body["timestamp"])
            id_of_data[record.data] = body["transaction_id"]
        return record.to_entry()

    newest = NewestPerShard()

    def landed(receipt: Landed) -> None:
        transaction_id = id_of_data.pop(receipt.entry.data, None)
        if transaction_id is not None:
            put_time[transaction_id] = receipt.at
        elif receipt.entry.data in invalid_data:
            invalid_landed.add(receipt.sequence_number)
        newest(receipt)

    def workers() -> dict[str, int]:
        return {
            name: pid for name, pid in running_pids(options).items() if name.startswith("worker-")
        }

    sampler = MemorySampler(workers)
    sampler.start()
    sampler_wall = time.time()
    processes = ProcessSampler(lambda: stack_groups(options))
    processes.start()
    tap = HttpAlertTap(
        stack_client(env, "sns"), sqs, env["FRAUD_TOPIC_ARN"], env["FRAUD_ALERTS_QUEUE_URL"]
    )
    tap.start()
    started = time.time()
    progress = ProgressPrinter(total=max(0, round(args.rate * args.duration)))
    producer = Producer(
        kinesis,
        env["FRAUD_STREAM"],
        on_progress=progress,
        put_api=args.put_api,
        concurrency=args.concurrency,
        on_landed=landed,
    )
    try:
        run_generate(producer, next_entry, rate=args.rate, duration_s=args.duration)
        summary = producer.flush()
    finally:
        producer.close()
    progress.finish()
    produced_at = time.time()

    dynamodb = stack_client(env, "dynamodb")
    targets = newest.checkpoints()
    # Read the stream's ends back only if the puts' answers did not name them.
    last = targets or last_sequence_per_shard(kinesis, env["FRAUD_STREAM"])
    waiting = CatchUpProgress(len(last))
    try:
        in_time = wait_for_catch_up(
            lambda: lease_checkpoints(dynamodb, env["FRAUD_APP_NAME"]),
            last,
            args.catch_up_timeout,
            waiting,
        )
    finally:
        waiting.close()
    if not in_time:
        print("the workers did not catch up in time", file=sys.stderr)
    caught_up = time.time() - produced_at
    reached = lease_checkpoints(dynamodb, env["FRAUD_APP_NAME"])
    sampler.stop()
    processes.stop()

    found: dict[str, frozenset[str]] = {}
    s3_latency: list[float] = []
    modified = {
        item["Key"]: item["LastModified"].timestamp()
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=env["FRAUD_BUCKET"], Prefix="flagged/"
        )
        for item in page.get("Contents", [])
    }
    for key, line in read_jsonl_objects(s3, env["FRAUD_BUCKET"], "flagged/"):
        tid = line["transaction_id"]
        if tid in put_time:
            found[tid] = frozenset(r["rule"] for r in line["reasons"])
            s3_latency.append(modified[key] - put_time[tid])
    alert_pairs = []
    for alert in tap.stop():
        tid = json.loads(alert["Message"])["transaction_id"]
        if tid in put_time:
            alert_pairs.append((put_time[tid], parse_time(alert["Timestamp"])))

    counters = _worker_counters(options, started)
    report = Report(
        produced=summary.sent,
        produce_seconds=round(produced_at - started, 2),
        judged=counters.get("records.judged", 0),
        invalid=counters.get("records.invalid", 0),
        duplicates=counters.get("records.duplicate", 0),
        flagged=len(found),
        alerts=len(alert_pairs),
        flagged_by_rule=rule_counts(found),
        alert_latency_s=percentiles([published - put for put, published in alert_pairs]),
        s3_latency_s=percentiles(s3_latency),
        put_lag_s=percentiles([put_time[t] - created_at[t] for t in put_time]),
        catch_up_seconds=round(caught_up, 2),
        checkpoints={
            shard: {"put": targets.get(shard), "checkpointed": at} for shard, at in reached.items()
        },
        throughput_per_s=round(summary.sent / max(produced_at - started, 1e-9), 1),
        peak_rss_mb={k: round(v, 1) for k, v in sampler.peak.items()},
        timeline=timeline(started, list(put_time.values()), alert_pairs),
    )
    # Scored against what reached the stream: an entry the producer gave up on is its failure.
    score_labels({t: labels[t] for t in put_time}, found, report)

    document = json.loads(report.to_json())
    document["processes"] = {"summary": processes.summary(), "timeline": processes.rows}
    windows = window_rows(
        started,
        alert_pairs,
        list(put_time.values()),
        processes.rows,
        args.window,
        sampler_offset_s=sampler_wall - started,
    )
    document["windows"] = {"width_s": args.window, "rows": windows, "drift": drift(windows)}
    report_path, chart = write_report(
        Path(args.out),
        "load",
        started,
        document,
        lambda path: plot(report, path, processes.rows, sampler_offset_s=sampler_wall - started),
    )
    print(render_text(report))
    print(render_processes(processes.summary()))
    print(f"per {args.window:.0f} s (latency by put time, memory at each window's end):")
    print(render_windows(windows))
    print(f"drift, last full window - first after the first: {json.dumps(drift(windows))}")
    print(report_line(report_path, chart))
    dead_lettered = frozenset(
        str(line.get("sequence_number"))
        for _, line in read_jsonl_objects(s3, env["FRAUD_BUCKET"], "dead-letter/")
    )
    result = verdict(
        in_time,
        {t: labels[t] for t in put_time},
        found,
        summary.failed,
        frozenset(invalid_landed),
        dead_lettered,
    )
    for problem in result.problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
