"""Backlog catch-up on the local stack: records queued while the workers are down, then started.

    fraudstream local up --shards 2 --no-supervise
    python -m load_test.catchup --records 200000 --out reports/

Stops the stack's workers (SIGTERM, as `local down` does; the supervisor would restart them, so
the stack must run without it), puts --records labelled synthetic records into the stream
(PutRecords), then starts the workers again and follows, every second, how far each shard's
lease checkpoint has come through what was put, until every shard is checkpointed at its last
record. Beside it: the resident memory of the daemons (JVMs) and of their processors with the
processors' alert processes, the CPU (% of one core) of those and of the Kinesis stand-in, moto
and redis, and the machine's load average, so the report can say which was the limit. On
kinesis-mock that is kinesis-mock's GetRecords; `local up --kinesis-server fraudstream` takes it
out of the way.

Queue at the production rate (--rate, 1,000/s by default): the records carry their put time, so
a backlog queued faster than the stream ever ran makes every account look like a burst and the
velocity rule flag nearly all of it (at 6,000/s, 95 % of the records after the first 80,000).

Per shard it reports the backlog, when its processor started (its `shard_initialized` log line),
when its checkpoint reached the last record, records/s from the processor's start to that
checkpoint, and the sustained records/s from its first checkpoint to 99 % of the backlog
(checkpoints come with the S3 flushes, so the timeline is in steps). It writes
`catchup-*.json` and a PNG chart (records checkpointed, memory, CPU over time). Numbers:
docs/performance.md, "Backlog catch-up".
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from consumer.infra.readback import drain_queue, lease_checkpoints
from consumer.local.stack import (
    StackOptions,
    initialized_shards,
    read_env_file,
    running_pids,
    stack_client,
    start_worker,
)
from load_test.alert_tap import AlertTap, detach_tap
from load_test.charts import cpu_panel, memory_panel
from load_test.cli_help import HelpFormatter, add_workload_arguments, exit_codes
from load_test.memory import MemorySampler
from load_test.producer import (
    Landed,
    Producer,
    ProgressPrinter,
    add_put_arguments,
    client_config,
    run_generate,
)
from load_test.report_files import report_line, write_report
from load_test.run import ProcessSampler, _worker_counters, render_processes, stack_groups
from load_test.synthetic import TransactionGenerator

EXIT_OK = 0
EXIT_FAILED = 1  # not caught up in time, or fewer records processed than queued
EXIT_SUPERVISED = 2  # the supervisor would restart the workers while the backlog builds
EXIT_NO_STACK = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m load_test.catchup",
        description=__doc__,
        formatter_class=HelpFormatter,
        epilog=exit_codes(
            f"{EXIT_OK} caught up, every queued record processed",
            f"{EXIT_FAILED} not caught up within --timeout, or records missing from the "
            "workers' counters (the report is written all the same)",
            f"{EXIT_SUPERVISED} the stack runs a supervisor: `local up --no-supervise`",
            f"{EXIT_NO_STACK} no local stack in --state-dir",
        ),
    )
    parser.add_argument("--records", type=int, default=200_000, help="records to queue")
    parser.add_argument(
        "--rate",
        type=float,
        default=1000.0,
        help="records/s while queueing the backlog: the rate of the outage it stands for",
    )
    add_workload_arguments(parser)
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds to wait for the catch-up"
    )
    parser.add_argument(
        "--keep-tap",
        action="store_true",
        help="leave the alerts' SQS tap subscribed and drain it while catching up (slow on "
        "moto: its SNS-to-SQS delivery costs time in proportion to the queue's length)",
    )
    add_put_arguments(parser, put_api="records")
    return parser


def stop_process(pid: int, grace_s: float = 60.0) -> None:
    """SIGTERM, then wait up to `grace_s` for it to exit; SIGKILL after that."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:  # our child when this process started it; reap it
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


def position(sequences: Sequence[int], checkpoint: str | None) -> int:
    """How many of a shard's sorted put `sequences` a checkpoint covers."""
    if checkpoint is None or not checkpoint.isdigit():
        return 0
    return bisect.bisect_right(sequences, int(checkpoint))


def summarize(
    backlog: Mapping[str, int],
    timeline: Sequence[Mapping[str, Any]],
    initialized_at: Mapping[str, float],
) -> dict[str, dict[str, float | None]]:
    """Per shard: its backlog, when its processor started and when its checkpoint covered the
    whole backlog (seconds since the workers were started), records/s in between, the fastest
    10 s of checkpoint progress, and the sustained rate: records/s from the first checkpoint to
    the one that covers 99 % of the backlog. That last one leaves out what is not reading: the
    processor's start before its first batch and, at the end, the last partial batch, which is
    checkpointed when its S3 batch flushes by age (FRAUD_BATCH_MAX_AGE_S, 10 s by default).
    `timeline` rows: {"t": s, "done": {shard: records}}."""
    out: dict[str, dict[str, float | None]] = {}
    for shard, total in sorted(backlog.items()):
        points = [(row["t"], row["done"].get(shard, 0)) for row in timeline]
        done_at = next((t for t, done in points if done >= total), None)
        first = next(((t, done) for t, done in points if done > 0), None)
        most = next(((t, done) for t, done in points if done >= 0.99 * total), None)
        sustained = None
        if first is not None and most is not None and most[0] > first[0]:
            sustained = round((most[1] - first[1]) / (most[0] - first[0]), 1)
        started = initialized_at.get(shard)
        rate = None
        if done_at is not None and started is not None and done_at > started:
            rate = round(total / (done_at - started), 1)
        peak = 0.0
        times = [t for t, _ in points]
        for t, done in points:
            j = bisect.bisect_left(times, t + 10.0)
            if j < len(points) and points[j][0] > t:
                peak = max(peak, (points[j][1] - done) / (points[j][0] - t))
        out[shard] = {
            "backlog": total,
            "processor_started_s": None if started is None else round(started, 2),
            "caught_up_s": None if done_at is None else round(done_at, 2),
            "records_per_s": rate,
            "peak_10s_records_per_s": round(peak, 1),
            "first_checkpoint_s": None if first is None else first[0],
            "checkpoint_99pct_s": None if most is None else most[0],
            "sustained_records_per_s": sustained,
        }
    return out


def plot(document: Mapping[str, Any], path: Path) -> bool:
    """Records checkpointed per shard, memory and CPU over time; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, (top, middle, bottom) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    rows = document["timeline"]
    for shard in document["shards"]:
        top.plot([r["t"] for r in rows], [r["done"].get(shard, 0) for r in rows], label=shard)
    top.set_ylabel("records checkpointed")
    top.set_title(f"fraudstream backlog catch-up: {document['records']} records queued")
    top.legend(loc="lower right")
    processes = document["processes"]["timeline"]
    memory_panel(
        middle, processes, groups=("daemon_jvm_rss_mb", "processors_rss_mb", "kinesis_rss_mb")
    )
    cpu_panel(bottom, processes, legend="upper right")
    bottom.set_xlabel("seconds since the workers were started")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = StackOptions(state_dir=Path(args.state_dir))
    try:
        env = read_env_file(options)
    except FileNotFoundError:
        print(f"no local stack in {args.state_dir}: `fraudstream local up` first", file=sys.stderr)
        return EXIT_NO_STACK
    alive = running_pids(options)
    if "supervisor" in alive:
        print(
            "the stack runs a supervisor, which restarts stopped workers: "
            "`fraudstream local down`, then `local up --no-supervise`",
            file=sys.stderr,
        )
        return EXIT_SUPERVISED
    workers = sorted(int(name.split("-")[1]) for name in alive if name.startswith("worker-"))
    sqs = stack_client(env, "sqs")
    sns = stack_client(env, "sns")
    tap: AlertTap | None = None
    detached: list[str] = []
    if args.keep_tap:
        drain_queue(sqs, env["FRAUD_ALERTS_QUEUE_URL"])
        tap = AlertTap(sqs, env["FRAUD_ALERTS_QUEUE_URL"])
        tap.start()
    else:
        detached = detach_tap(sns, sqs, env["FRAUD_TOPIC_ARN"], env["FRAUD_ALERTS_QUEUE_URL"])
    try:
        return catch_up(args, options, env, alive, workers, tap)
    finally:
        for queue_arn in detached:  # the stack as it was, for the runs after this one
            sns.subscribe(TopicArn=env["FRAUD_TOPIC_ARN"], Protocol="sqs", Endpoint=queue_arn)


def catch_up(
    args: argparse.Namespace,
    options: StackOptions,
    env: Mapping[str, str],
    alive: Mapping[str, int],
    workers: Sequence[int],
    tap: AlertTap | None,
) -> int:
    """Stop the workers, queue the backlog, start them and follow the checkpoints; the report."""
    kinesis = stack_client(env, "kinesis", client_config(args.concurrency))
    dynamodb = stack_client(env, "dynamodb")
    for index in workers:
        stop_process(alive[f"worker-{index}"])
    print(f"stopped worker(s) {workers}", file=sys.stderr)
    baseline = lease_checkpoints(dynamodb, env["FRAUD_APP_NAME"])

    generator = TransactionGenerator(
        accounts=args.accounts,
        fraud_ratio=args.fraud_ratio,
        invalid_ratio=args.invalid_ratio,
        seed=args.seed,
    )
    sequences: dict[str, list[int]] = {}

    def landed(receipt: Landed) -> None:
        if receipt.sequence_number.isdigit():
            sequences.setdefault(receipt.shard_id, []).append(int(receipt.sequence_number))

    queue_started = time.time()
    producer = Producer(
        kinesis,
        env["FRAUD_STREAM"],
        on_progress=ProgressPrinter(total=args.records),
        put_api=args.put_api,
        concurrency=args.concurrency,
        on_landed=landed,
    )
    try:
        run_generate(
            producer,
            lambda: generator.next_record().to_entry(),
            rate=args.rate,
            duration_s=args.records / args.rate,
        )
        summary = producer.flush()
    finally:
        producer.close()
    queue_seconds = time.time() - queue_started
    for values in sequences.values():
        values.sort()
    skip = {shard: position(values, baseline.get(shard)) for shard, values in sequences.items()}
    backlog = {shard: len(values) - skip[shard] for shard, values in sequences.items()}
    print(
        f"queued {summary.sent} records in {queue_seconds:.0f} s "
        f"({summary.failed} failed): {backlog}; starting the workers",
        file=sys.stderr,
    )

    def worker_pids() -> dict[str, int]:
        return {n: p for n, p in running_pids(options).items() if n.startswith("worker-")}

    memory = MemorySampler(worker_pids)
    processes = ProcessSampler(lambda: stack_groups(options))
    started = time.time()
    for index in workers:
        start_worker(options, index, env)
    memory.start()
    processes.start()
    timeline: list[dict[str, Any]] = []
    initialized_at: dict[str, float] = {}
    caught_up = False
    while time.time() - started < args.timeout:
        now = time.time() - started
        if len(initialized_at) < len(backlog):  # each processor's start, to the poll
            for shard in initialized_shards(options, started):
                initialized_at.setdefault(shard, round(now, 2))
        reached = lease_checkpoints(dynamodb, env["FRAUD_APP_NAME"])
        done = {
            shard: position(values, reached.get(shard)) - skip[shard]
            for shard, values in sequences.items()
        }
        timeline.append({"t": round(now, 2), "done": done})
        if all(done[shard] >= backlog[shard] for shard in backlog):
            caught_up = True
            break
        time.sleep(1.0)
    memory.stop()
    processes.stop()
    elapsed = time.time() - started
    tapped = None if tap is None else len(tap.stop())

    counters = _worker_counters(options, started)
    processed = sum(counters.get(k, 0) for k in ("records.judged", "records.invalid"))
    shards = summarize(backlog, timeline, initialized_at)
    rates = [s["records_per_s"] for s in shards.values() if s["records_per_s"] is not None]
    sustained = [
        s["sustained_records_per_s"]
        for s in shards.values()
        if s["sustained_records_per_s"] is not None
    ]
    document = {
        "records": summary.sent,
        "failed_puts": summary.failed,
        "queue_seconds": round(queue_seconds, 1),
        "caught_up": caught_up,
        "catch_up_seconds": round(elapsed, 2) if caught_up else None,
        "shards": shards,
        "min_records_per_s_per_shard": min(rates) if rates else None,
        "min_sustained_records_per_s_per_shard": min(sustained) if sustained else None,
        "processed_by_counters": processed,
        "duplicates": counters.get("records.duplicate", 0),
        "alerts_sent": counters.get("alerts.sent", 0),
        "alerts_tapped": tapped,
        "peak_rss_mb": {k: round(v, 1) for k, v in memory.peak.items()},
        "processes": {"summary": processes.summary(), "timeline": processes.rows},
        "timeline": timeline,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
    }
    report_path, chart = write_report(
        Path(args.out), "catchup", started, document, lambda path: plot(document, path)
    )
    for shard, figures in shards.items():
        print(f"{shard}: {json.dumps(figures)}")
    print(
        f"caught up: {caught_up} after {elapsed:.1f} s; processed (workers' counters) "
        f"{processed} of {summary.sent}"
    )
    print(render_processes(processes.summary()))
    for name, mb in sorted(memory.peak.items()):
        print(f"peak RSS        {name}: {mb:.0f} MB")
    print(report_line(report_path, chart))
    complete = processed >= sum(backlog.values())
    if not complete:
        print(
            f"FAILED: the workers counted {processed} of {sum(backlog.values())}", file=sys.stderr
        )
    return EXIT_OK if caught_up and complete else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
