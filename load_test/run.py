"""A load test against the running local stack, ending in a report (text, JSON and a PNG chart).

    fraudstream local up --workers 1
    python -m load_test.run --rate 1000 --duration 300 --out reports/

It produces labelled synthetic traffic at the given rate, samples the workers' memory (the Java
daemon, its Python processors and their alert processes) while it runs, waits until every shard
is checkpointed at its last record, then reads back what the consumer wrote: the flagged lines
in S3, the alerts that SNS delivered to the tap queue, and the workers' own counters from their
logs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from consumer.infra.readback import (
    drain_queue,
    lease_checkpoints,
    read_jsonl_objects,
    wait_for_checkpoints,
)
from consumer.local.stack import StackOptions, read_env_file, running_pids, stack_client
from load_test.alert_tap import AlertTap
from load_test.entries import Entry
from load_test.memory import MemorySampler
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
from load_test.synthetic import TransactionGenerator


def _worker_counters(options: StackOptions, since: float) -> dict[str, int]:
    """Sum the workers' `metrics` log lines written after `since`."""
    totals: dict[str, int] = {}
    for log in options.logs.glob("worker-*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if '"event": "metrics"' not in line:
                continue
            entry = json.loads(line)
            if parse_time(entry["timestamp"]) < since:
                continue
            for key, value in entry.items():
                if isinstance(value, int):
                    totals[key] = totals.get(key, 0) + value
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load_test.run", description=__doc__)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--fraud-ratio", type=float, default=0.05)
    parser.add_argument("--invalid-ratio", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--state-dir", default=".fraudstream")
    parser.add_argument("--out", default="reports")
    parser.add_argument("--catch-up-timeout", type=float, default=300.0)
    add_put_arguments(parser, put_api="record")
    args = parser.parse_args(argv)

    options = StackOptions(state_dir=Path(args.state_dir))
    env = read_env_file(options)
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

    def next_entry() -> Entry:
        record = generator.next_record()
        if not record.is_invalid:
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
        newest(receipt)

    def workers() -> dict[str, int]:
        return {
            name: pid for name, pid in running_pids(options).items() if name.startswith("worker-")
        }

    sampler = MemorySampler(workers)
    sampler.start()
    tap = AlertTap(sqs, env["FRAUD_ALERTS_QUEUE_URL"])
    tap.start()
    started = time.time()
    progress = ProgressPrinter()
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
    if (
        wait_for_checkpoints(
            kinesis,
            dynamodb,
            env["FRAUD_STREAM"],
            env["FRAUD_APP_NAME"],
            args.catch_up_timeout,
            poll_s=0.5,
            # Read the stream's ends back only if the puts' answers did not name them.
            last=targets or None,
        )
        is None
    ):
        print("the workers did not catch up in time", file=sys.stderr)
    caught_up = time.time() - produced_at
    reached = lease_checkpoints(dynamodb, env["FRAUD_APP_NAME"])
    sampler.stop()

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

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(started))
    (out / f"load-{stamp}.json").write_text(report.to_json())
    charted = plot(report, out / f"load-{stamp}.png")
    print(render_text(report))
    print(
        f"report: {out / f'load-{stamp}.json'}"
        + (f", chart: {out / f'load-{stamp}.png'}" if charted else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
