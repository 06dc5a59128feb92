"""The steps of `fraudstream demo`: the whole product on the local stack, in about two minutes.

Brings the stack up (the real MultiLangDaemon included), produces a minute of synthetic card
traffic with fraud and some broken records in it through the load-test producer, waits until
the workers have checkpointed the last record, then shows what came out: counts, a few flagged
lines from S3, the dead letters and the alerts that reached SNS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from typing import Any

from consumer.infra.readback import drain_queue, read_jsonl_objects, wait_for_checkpoints
from consumer.local import stack as local_stack
from consumer.local.stack import stack_client
from consumer.sinks.alerts import mask_account


def _title(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 70 - len(text)))


def _produce(env: dict[str, str], duration_s: float, rate: float) -> dict[str, Any]:
    """Run the load-test producer as a person would, progress on the terminal."""
    command = [
        sys.executable,
        "-m",
        "load_test.producer",
        "generate",
        "--rate",
        str(rate),
        "--duration",
        str(duration_s),
        "--accounts",
        "200",
        "--fraud-ratio",
        "0.05",
        "--invalid-ratio",
        "0.02",
        "--json",
    ]
    result = subprocess.run(
        command, env={**os.environ, **env}, stdout=subprocess.PIPE, text=True, check=False
    )
    if result.returncode != 0:
        raise local_stack.StackError(f"the producer failed (exit {result.returncode})")
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return summary


def _wait_for_checkpoints(env: dict[str, str], timeout_s: float = 120.0) -> float:
    waited = wait_for_checkpoints(
        stack_client(env, "kinesis"),
        stack_client(env, "dynamodb"),
        env["FRAUD_STREAM"],
        env["FRAUD_APP_NAME"],
        timeout_s,
    )
    if waited is None:
        raise local_stack.StackError("the workers did not checkpoint the last records in time")
    return waited


def _show(env: dict[str, str], produced: dict[str, Any]) -> None:
    s3 = stack_client(env, "s3")
    flagged = read_jsonl_objects(s3, env["FRAUD_BUCKET"], "flagged/")
    dead = read_jsonl_objects(s3, env["FRAUD_BUCKET"], "dead-letter/")
    alerts = drain_queue(stack_client(env, "sqs"), env["FRAUD_ALERTS_QUEUE_URL"])

    _title("What happened")
    print(f"records produced : {produced.get('sent')}  ({produced.get('rate')} records/s)")
    print(f"flagged          : {len(flagged)} lines in {len({k for k, _ in flagged})} S3 objects")
    rules = Counter(r["rule"] for _, line in flagged for r in line["reasons"])
    print(f"  by rule        : {dict(rules)}")
    print(f"  by severity    : {dict(Counter(line['severity'] for _, line in flagged))}")
    print(f"dead letters     : {len(dead)} invalid records")
    print(f"alerts via SNS   : {len(alerts)}")

    _title(f"S3 objects (s3://{env['FRAUD_BUCKET']}/)")
    for key in sorted({k for k, _ in flagged} | {k for k, _ in dead})[:8]:
        print(key)

    _title("A few flagged transactions (account masked here; S3 keeps it whole)")
    for _, line in flagged[:3]:
        shown = {**line, "account_id": mask_account(line["account_id"])}
        shown["transaction"] = {
            k: v for k, v in line["transaction"].items() if k not in ("account_id",)
        }
        print(json.dumps(shown, indent=None)[:400])

    _title("A few dead letters")
    for _, line in dead[:3]:
        print(f"{line['sequence_number'][-12:]}: {line['error']}")

    _title("A few alerts as SNS delivered them")
    for alert in alerts[:3]:
        attributes = {k: v["Value"] for k, v in alert.get("MessageAttributes", {}).items()}
        print(f"subject: {alert.get('Subject')}\n  attributes: {attributes}")


def run(options: local_stack.StackOptions, duration_s: float, rate: float, keep: bool) -> int:
    try:
        _title("Starting the local stack (kinesis-mock, moto, redis, the KCL daemon)")
        env = local_stack.up(options)
        _title(f"Producing {duration_s:.0f} s of traffic at {rate:.0f} records/s")
        produced = _produce(env, duration_s, rate)
        _title("Waiting for the workers to write and checkpoint everything")
        waited = _wait_for_checkpoints(env)
        print(f"all shards checkpointed at their last record {waited:.1f} s after the producer")
        _show(env, produced)
    except local_stack.StackError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if not keep:
            _title("Tearing down")
            local_stack.down(options)
    if keep:
        print(f"\nthe stack is still up: `source {options.env_file}`; `fraudstream local down`")
    return 0
