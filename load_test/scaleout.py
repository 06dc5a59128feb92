"""Scale-out on the local stack: workers added one by one under steady traffic; how the KCL
spreads the leases, how long until they are balanced, and the records/s of each worker.

    fraudstream local up --shards 8 --workers 1 --no-supervise --state-dir /tmp/fsX
    python -m load_test.scaleout --state-dir /tmp/fsX --rate 800 --workers 4 \\
        --join-every 180 --out /tmp/reportsX

It puts labelled synthetic records (PutRecords) at --rate for the whole run. The workers
already running come first; every --join-every seconds one more worker starts (as `local up`
starts one: `worker-N`, the KCL worker id) until --workers run, and the last one gets another
--join-every seconds. Then it waits until every shard is checkpointed at its last put record.
Every second it reads the lease table (each shard's owner, checkpoint and the KCL's own
throughput figure) and samples CPU and resident memory of every stack process and the load, as
load_test.catchup does.

Per join it reports the seconds from the join until the leases were balanced (every open shard
owned by a running worker, and at most one lease between the busiest and the idlest worker,
held for --settle seconds), the lease moves after the join, and the leases and records/s of
each worker. The owner is the lease's `checkpointOwner` while a graceful hand-off is pending
(the old owner still processes until it checkpoints), else its `leaseOwner`.

Records/s per worker come from checkpoint progress: each second, how many of the records this
run put to a shard its checkpoint newly covers, credited to the shard's owner at the start of
that second (the owner at the end if it had none: a lease moving within the second is credited
to the worker that gave it up, whose hand-off checkpoint it is). Checkpoints come with the S3
flushes (every 10 s at the latest), so a worker's rate is averaged over --rate-window seconds.
Counted this way a record processed twice (by the old owner, uncheckpointed, then again by the
new) counts once; the workers' `metrics` log lines count it twice, and are reported beside it
per worker (`log_counters`) as a cross-check. Nothing is lost when at the end every shard's
checkpoint is at or past the last record put to it. Writes `scaleout-*.json` and a PNG (leases
per worker with the joins marked, records/s per worker, CPU).
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from consumer.infra.readback import at_or_past
from consumer.local.stack import (
    StackOptions,
    read_env_file,
    running_pids,
    stack_client,
    start_worker,
)
from load_test.alert_tap import HttpAlertTap
from load_test.catchup import position
from load_test.charts import cpu_panel
from load_test.cli_help import HelpFormatter, add_workload_arguments, exit_codes
from load_test.memory import MemorySampler
from load_test.producer import (
    Landed,
    NewestPerShard,
    Producer,
    Summary,
    add_put_arguments,
    client_config,
    run_generate,
)
from load_test.report_files import report_line, write_report
from load_test.run import ProcessSampler, render_processes, stack_groups, worker_log_counters
from load_test.synthetic import TransactionGenerator

EXIT_OK = 0
EXIT_FAILED = 1  # a join not balanced within --target, or a record not checkpointed
EXIT_SUPERVISED = 2  # the supervisor would start and stop workers of its own
EXIT_NO_STACK = 3

Row = Mapping[str, Any]  # a timeline row: {"t", "workers", "owners", "done", ...}


# --- the pure parts: balance, moves, throughput ------------------------------------------------


def lease_counts(owners: Mapping[str, str], workers: Iterable[str]) -> dict[str, int]:
    """Leases per worker: every worker in `workers` (0 when it holds none), and any other owner
    named in `owners` (a worker not started by this run, or one that died). Unowned leases
    (owner "") are not counted."""
    counts = dict.fromkeys(workers, 0)
    for owner in owners.values():
        if owner:
            counts[owner] = counts.get(owner, 0) + 1
    return counts


def is_balanced(owners: Mapping[str, str], workers: Sequence[str], shards: Iterable[str]) -> bool:
    """Every shard in `shards` owned by one of `workers`, and the leases per worker (among
    `workers`, idle ones too) differ by at most one."""
    running = set(workers)
    if not running:
        return False
    if any(owners.get(shard, "") not in running for shard in shards):
        return False
    counts = [n for w, n in lease_counts(owners, workers).items() if w in running]
    return max(counts) - min(counts) <= 1


def balanced_since(
    timeline: Sequence[Row], start: float, end: float, shards: Iterable[str], settle_s: float
) -> float | None:
    """The time of the first row in [start, end] from which the leases stayed balanced (each
    row's own `workers`) for at least `settle_s`, checked on the rows up to `end`; None when no
    balanced stretch that long began and was seen out in the window."""
    shards = list(shards)
    began: float | None = None
    for row in timeline:
        if row["t"] < start or row["t"] > end:
            continue
        if is_balanced(row["owners"], row["workers"], shards):
            if began is None:
                began = row["t"]
            if row["t"] - began >= settle_s:
                return began
        else:
            began = None
    return None


def lease_moves(timeline: Sequence[Row], start: float, end: float) -> list[dict[str, Any]]:
    """The lease moves seen in rows with start < t <= end: a shard whose owner became another
    worker than its last owner (a spell without an owner in between does not hide a move; a
    first owner is an assignment, not a move). Each: {"t", "shard", "from", "to"}."""
    last: dict[str, str] = {}
    moves: list[dict[str, Any]] = []
    for row in timeline:
        if row["t"] > end:
            break
        for shard, owner in sorted(row["owners"].items()):
            if not owner:
                continue
            before = last.get(shard)
            if before is not None and before != owner and row["t"] > start:
                moves.append({"t": row["t"], "shard": shard, "from": before, "to": owner})
            last[shard] = owner
    return moves


def attribute(timeline: Sequence[Row]) -> list[dict[str, Any]]:
    """Per interval between two rows: the records each worker checkpointed in it,
    {"t0", "t1", "records": {worker: n}}. A shard's progress (the growth of its `done`) goes to
    its owner in the earlier row, or in the later row when it had none then."""
    intervals: list[dict[str, Any]] = []
    for before, after in itertools.pairwise(timeline):
        records: dict[str, int] = {}
        for shard, done in after["done"].items():
            grown = done - before["done"].get(shard, 0)
            if grown <= 0:
                continue
            owner = before["owners"].get(shard) or after["owners"].get(shard) or ""
            records[owner] = records.get(owner, 0) + grown
        intervals.append({"t0": before["t"], "t1": after["t"], "records": records})
    return intervals


def records_per_s(
    intervals: Sequence[Mapping[str, Any]], start: float, end: float
) -> dict[str, float]:
    """Records/s per worker over [start, end]: the records of the intervals that end in
    (start, end], over end - start."""
    if end <= start:
        return {}
    totals: dict[str, int] = {}
    for interval in intervals:
        if start < interval["t1"] <= end:
            for worker, n in interval["records"].items():
                totals[worker] = totals.get(worker, 0) + n
    return {w: round(n / (end - start), 1) for w, n in sorted(totals.items())}


def rate_series(
    intervals: Sequence[Mapping[str, Any]], window_s: float, end: float
) -> list[dict[str, Any]]:
    """Records/s per worker in consecutive windows of `window_s` from 0 to `end`:
    [{"t": the window's end, "rates": {worker: records/s}}]."""
    series = []
    t = 0.0
    while t < end:
        upper = min(t + window_s, end)
        series.append({"t": round(upper, 2), "rates": records_per_s(intervals, t, upper)})
        t = upper
    return series


def summarize_join(
    timeline: Sequence[Row],
    intervals: Sequence[Mapping[str, Any]],
    join: Mapping[str, Any],
    end: float,
    shards: Iterable[str],
    settle_s: float,
    target_s: float,
) -> dict[str, Any]:
    """One join's window, from the join to `end` (the next join, or the run's end): when the
    leases were balanced (seconds after the join; None if not), whether within `target_s`, the
    lease moves, the leases per worker at the window's end, and records/s per worker over the
    window and over its balanced part."""
    start = join["t"]
    shards = list(shards)
    since = balanced_since(timeline, start, end, shards, settle_s)
    rows = [row for row in timeline if start <= row["t"] <= end]
    last = rows[-1] if rows else None
    moves = lease_moves(timeline, start, end)
    balanced_after = None if since is None else round(since - start, 2)
    return {
        "t": start,
        "worker": join.get("worker"),
        "workers": len(join["workers"]),
        "balanced_after_s": balanced_after,
        "within_target": balanced_after is not None and balanced_after <= target_s,
        "lease_moves": len(moves),
        "moves": moves,
        "leases_at_end": lease_counts(last["owners"], last["workers"]) if last else {},
        "records_per_s": records_per_s(intervals, start, end),
        "records_per_s_balanced": (
            records_per_s(intervals, since, end) if since is not None else {}
        ),
    }


def nothing_lost(targets: Mapping[str, str], reached: Mapping[str, str]) -> list[str]:
    """The shards whose checkpoint is not at or past the last sequence number put to them."""
    return sorted(s for s, seq in targets.items() if not at_or_past(reached.get(s), seq))


# --- reading the stack ------------------------------------------------------------------------


def read_leases(dynamodb: Any, table: str) -> dict[str, dict[str, Any]]:
    """shard -> {"owner", "checkpoint", "kbps", "handoff"} from one consistent scan of the lease
    table: the owner is the `checkpointOwner` during a graceful hand-off (KCL 3's actual owner),
    else the `leaseOwner`; `kbps` is the KCL's own throughput figure for the lease."""
    items = dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    leases: dict[str, dict[str, Any]] = {}
    for item in items:
        if "leaseKey" not in item:
            continue
        pending = item.get("checkpointOwner", {}).get("S")
        kbps = item.get("throughputKBps", {}).get("N")
        leases[item["leaseKey"]["S"]] = {
            "owner": pending or item.get("leaseOwner", {}).get("S", ""),
            "checkpoint": item.get("checkpoint", {}).get("S", ""),
            "kbps": None if kbps is None else round(float(kbps), 2),
            "handoff": pending is not None,
        }
    return leases


def open_shards(kinesis: Any, stream: str) -> list[str]:
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    return sorted(
        s["ShardId"] for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]
    )


# --- the command ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m load_test.scaleout",
        description=__doc__,
        formatter_class=HelpFormatter,
        epilog=exit_codes(
            f"{EXIT_OK} the leases were balanced within --target after every join, and every "
            "shard was checkpointed at its last put record",
            f"{EXIT_FAILED} a join not balanced within --target, records not checkpointed "
            "within --catch-up-timeout, or puts given up (the report is written all the same)",
            f"{EXIT_SUPERVISED} the stack runs a supervisor (`local up --no-supervise`), or a "
            "usage error",
            f"{EXIT_NO_STACK} no local stack in --state-dir",
        ),
    )
    parser.add_argument("--rate", type=float, default=800.0, help="records/s for the whole run")
    parser.add_argument(
        "--workers", type=int, default=4, help="workers at the end (one joins at a time)"
    )
    parser.add_argument(
        "--join-every",
        type=float,
        default=180.0,
        help="seconds between joins; the first joins this long after the start, and the last "
        "one is watched this long",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=10.0,
        help="seconds the leases must stay balanced to count as balanced",
    )
    parser.add_argument(
        "--target",
        type=float,
        default=120.0,
        help="seconds after a join by which the leases must be balanced (issue 25)",
    )
    parser.add_argument(
        "--rate-window",
        type=float,
        default=10.0,
        help="seconds over which the chart averages each worker's records/s",
    )
    parser.add_argument(
        "--catch-up-timeout",
        type=float,
        default=300.0,
        help="seconds to wait after the producer for every shard's checkpoint",
    )
    add_workload_arguments(parser)
    add_put_arguments(parser, put_api="records")
    return parser


def plot(document: Mapping[str, Any], path: Path) -> bool:
    """Leases per worker (joins and balance marked), records/s per worker, and CPU over time;
    False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, (top, middle, bottom) = plt.subplots(3, 1, figsize=(10, 10), sharex=True)
    rows = document["timeline"]
    workers = sorted({w for row in rows for w in row["counts"]}, key=_worker_order)
    seconds = [row["t"] for row in rows]
    for worker in workers:
        top.step(
            seconds, [row["counts"].get(worker, 0) for row in rows], where="post", label=worker
        )
    for join in document["joins"]:
        for axis in (top, middle, bottom):
            axis.axvline(join["t"], color="grey", linestyle="--", linewidth=0.8)
        if join["balanced_after_s"] is not None:
            top.axvline(join["t"] + join["balanced_after_s"], color="green", linestyle=":")
    top.set_ylabel("leases")
    top.set_title(
        f"fraudstream scale-out: {len(document['shards'])} shards, {document['rate']:.0f} "
        "records/s; joins dashed, balanced dotted"
    )
    top.legend(loc="upper right")
    series = document["records_per_s_series"]
    for worker in workers:
        middle.plot(
            [p["t"] for p in series], [p["rates"].get(worker, 0.0) for p in series], label=worker
        )
    middle.plot(
        [p["t"] for p in series],
        [sum(p["rates"].values()) for p in series],
        "k:",
        label="all workers",
    )
    middle.set_ylabel(f"records/s checkpointed ({document['rate_window_s']:.0f} s)")
    middle.legend(loc="upper right")
    cpu_panel(bottom, document["processes"]["timeline"])
    bottom.set_xlabel("seconds since the start")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def _worker_order(name: str) -> tuple[int, str]:
    tail = name.rsplit("-", 1)[-1]
    return (int(tail), name) if tail.isdigit() else (1 << 30, name)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    options = StackOptions(state_dir=Path(args.state_dir))
    try:
        env = read_env_file(options)
    except FileNotFoundError:
        print(f"no local stack in {args.state_dir}: `fraudstream local up` first", file=sys.stderr)
        return EXIT_NO_STACK
    alive = running_pids(options)
    if "supervisor" in alive:
        print(
            "the stack runs a supervisor, which restarts workers by its own rules: "
            "`fraudstream local down`, then `local up --no-supervise`",
            file=sys.stderr,
        )
        return EXIT_SUPERVISED
    first = sorted((n for n in alive if n.startswith("worker-")), key=_worker_order)
    if not first:
        print("no worker runs in the stack: `fraudstream local up` starts one", file=sys.stderr)
        return EXIT_NO_STACK
    if args.workers <= len(first):
        parser.error(f"{len(first)} worker(s) run already: --workers must be more")
    next_index = max(_worker_order(n)[0] for n in first) + 1
    joining = [f"worker-{next_index + i}" for i in range(args.workers - len(first))]
    duration = (len(joining) + 1) * args.join_every

    kinesis = stack_client(env, "kinesis", client_config(args.concurrency))
    dynamodb = stack_client(env, "dynamodb")
    sqs = stack_client(env, "sqs")
    table = env["FRAUD_APP_NAME"]
    shards = open_shards(kinesis, env["FRAUD_STREAM"])
    # The alerts by HTTP for the run, as load_test.run takes them (alert_tap.detach_tap: moto's
    # SQS tap slows with its length, and SNS's deliveries into it with it).
    tap = HttpAlertTap(
        stack_client(env, "sns"), sqs, env["FRAUD_TOPIC_ARN"], env["FRAUD_ALERTS_QUEUE_URL"]
    )
    tap.start()

    generator = TransactionGenerator(
        accounts=args.accounts,
        fraud_ratio=args.fraud_ratio,
        invalid_ratio=args.invalid_ratio,
        seed=args.seed,
    )
    lock = threading.Lock()
    sequences: dict[str, list[int]] = {}
    newest = NewestPerShard()

    def landed(receipt: Landed) -> None:
        if receipt.sequence_number.isdigit():
            with lock:
                bisect.insort(
                    sequences.setdefault(receipt.shard_id, []), int(receipt.sequence_number)
                )
                newest(receipt)

    producer = Producer(
        kinesis,
        env["FRAUD_STREAM"],
        put_api=args.put_api,
        concurrency=args.concurrency,
        on_landed=landed,
    )
    outcome: dict[str, Summary] = {}

    def produce() -> None:
        try:
            run_generate(
                producer,
                lambda: generator.next_record().to_entry(),
                rate=args.rate,
                duration_s=duration,
            )
            outcome["summary"] = producer.flush()
        finally:
            producer.close()

    def worker_pids() -> dict[str, int]:
        return {n: p for n, p in running_pids(options).items() if n.startswith("worker-")}

    memory = MemorySampler(worker_pids)
    processes = ProcessSampler(lambda: stack_groups(options))  # its `t` counts from here too
    started = time.time()
    memory.start()
    processes.start()
    producing = threading.Thread(target=produce, name="producer", daemon=True)
    producing.start()
    print(
        f"{len(shards)} shards, workers {first} running; {args.rate:.0f} records/s for "
        f"{duration:.0f} s; joining {joining} every {args.join_every:.0f} s",
        file=sys.stderr,
    )

    workers = list(first)
    joins: list[dict[str, Any]] = [{"t": 0.0, "worker": None, "workers": list(workers)}]
    timeline: list[dict[str, Any]] = []
    produced_at: float | None = None
    caught_up = False
    last_report = 0.0
    while True:
        now = time.time() - started
        if joining and now >= args.join_every * len(joins):
            name = joining.pop(0)
            start_worker(options, _worker_order(name)[0], env)
            workers.append(name)
            joins.append({"t": round(now, 2), "worker": name, "workers": list(workers)})
            print(f"{now:6.0f} s: {name} started ({len(workers)} workers)", file=sys.stderr)
        leases = read_leases(dynamodb, table)
        with lock:
            done = {
                s: position(sequences.get(s, []), leases.get(s, {}).get("checkpoint"))
                for s in shards
            }
            put = {s: len(sequences.get(s, [])) for s in shards}
            targets = newest.checkpoints()
        owners = {s: leases.get(s, {}).get("owner", "") for s in shards}
        timeline.append(
            {
                "t": round(now, 2),
                "workers": list(workers),
                "owners": owners,
                "counts": lease_counts(owners, workers),
                "handoffs": sorted(s for s in shards if leases.get(s, {}).get("handoff")),
                "kbps": {s: leases.get(s, {}).get("kbps") for s in shards},
                "done": done,
                "put": put,
            }
        )
        if now - last_report >= 10:
            last_report = now
            print(
                f"{now:6.0f} s: leases {timeline[-1]['counts']}, checkpointed "
                f"{sum(done.values())} of {sum(put.values())} put",
                file=sys.stderr,
            )
        if produced_at is None and not producing.is_alive():
            produced_at = now
        if produced_at is not None:
            reached = {s: lease["checkpoint"] for s, lease in leases.items()}
            if not nothing_lost(targets, reached):
                caught_up = True
                break
            if now - produced_at > args.catch_up_timeout:
                break
        time.sleep(max(0.0, 1.0 - (time.time() - started - now)))
    memory.stop()
    processes.stop()
    alerts = len(tap.stop())
    end = timeline[-1]["t"]
    summary = outcome.get("summary", Summary())

    intervals = attribute(timeline)
    windows = [*[j["t"] for j in joins[1:]], end]
    join_summaries = [
        summarize_join(timeline, intervals, join, window_end, shards, args.settle, args.target)
        for join, window_end in zip(joins, windows, strict=True)
    ]
    with lock:
        targets = newest.checkpoints()
    final = read_leases(dynamodb, table)
    missing = nothing_lost(targets, {s: lease["checkpoint"] for s, lease in final.items()})
    counters = worker_log_counters(options, started)
    document = {
        "rate": args.rate,
        "shards": shards,
        "join_every_s": args.join_every,
        "settle_s": args.settle,
        "target_s": args.target,
        "rate_window_s": args.rate_window,
        "produced": summary.sent,
        "failed_puts": summary.failed,
        "produce_seconds": None if produced_at is None else round(produced_at, 2),
        "caught_up": caught_up,
        "caught_up_after_s": round(end - produced_at, 2) if caught_up and produced_at else None,
        "not_checkpointed_shards": missing,
        "checkpoints": {
            s: {"put": targets.get(s), "checkpointed": final.get(s, {}).get("checkpoint")}
            for s in shards
        },
        "initial": join_summaries[0],
        "joins": join_summaries[1:],
        "records_per_s_series": rate_series(intervals, args.rate_window, end),
        "log_counters": counters,
        "alerts": alerts,
        "peak_rss_mb": {k: round(v, 1) for k, v in memory.peak.items()},
        "processes": {"summary": processes.summary(), "timeline": processes.rows},
        "timeline": timeline,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
    }
    report_path, chart = write_report(
        Path(args.out), "scaleout", started, document, lambda path: plot(document, path)
    )

    print(
        f"start: {len(first)} worker(s), leases {join_summaries[0]['leases_at_end']}, "
        f"records/s {join_summaries[0]['records_per_s']}"
    )
    for join in document["joins"]:
        print(
            f"join {join['worker']} at {join['t']:.0f} s ({join['workers']} workers): balanced "
            f"after {join['balanced_after_s']} s (target {args.target:.0f} s: "
            f"{'met' if join['within_target'] else 'MISSED'}), {join['lease_moves']} lease "
            f"move(s), leases {join['leases_at_end']}, records/s {join['records_per_s']} "
            f"(balanced: {join['records_per_s_balanced']})"
        )
    processed = {
        w: c.get("records.judged", 0) + c.get("records.invalid", 0) for w, c in counters.items()
    }
    print(
        f"produced {summary.sent} ({summary.failed} failed) in {produced_at or 0:.0f} s; "
        f"caught up: {caught_up}"
        + (f" {document['caught_up_after_s']} s after the last put" if caught_up else "")
        + f"; processed per worker (their metrics lines): {processed}"
    )
    print(render_processes(processes.summary()))
    for name, mb in sorted(memory.peak.items()):
        print(f"peak RSS        {name}: {mb:.0f} MB")
    print(report_line(report_path, chart))

    problems = [
        f"{j['worker']}'s join not balanced within {args.target:.0f} s"
        for j in document["joins"]
        if not j["within_target"]
    ]
    if missing:
        problems.append(f"shards not checkpointed at their last record: {missing}")
    if summary.failed:
        problems.append(f"{summary.failed} records the producer gave up on")
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return EXIT_FAILED if problems else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
