"""The steps of `fraudstream demo`: the whole product on the local stack, in about two minutes.

Brings the stack up (the real MultiLangDaemon included), produces a minute of synthetic card
traffic through the load-test producer (thousands of accounts, about 1 % fraud from the
generator's archetypes, a few broken records), waits until the workers have checkpointed the last
record, then says what came out and why: counts by rule with what each rule means, how the flags
compare with the generator's own labels, a few flagged lines from S3, the dead letters, the
alerts that reached SNS, and where each output lives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

from consumer.infra.readback import drain_queue, read_jsonl_objects, wait_for_checkpoints
from consumer.local import stack as local_stack
from consumer.local.stack import stack_client
from consumer.sinks.alerts import mask_account

# What each rule means, for the summary (the defaults of README.md's table).
RULE_MEANING = {
    "high_amount": "an amount above 10,000",
    "velocity": "more than 3 transactions of the account within 60 s",
    "cross_border": "the merchant's country differs from the card's",
    "low_balance_high_amount": "1,000 or more and above 90 % of the balance",
    "impossible_travel": "two located transactions too far apart for the time between them",
    "card_testing": "5 or more charges of 5.00 or less within 10 minutes",
    "new_device_high_amount": "1,000 or more from a device the account never used",
}


@dataclass(frozen=True)
class Traffic:
    """What the demo's producer sends (load_test/synthetic.py's generator)."""

    duration_s: float = 60.0
    rate: float = 50.0
    accounts: int = 5000
    fraud_ratio: float = 0.01
    invalid_ratio: float = 0.005
    seed: int | None = None


def _title(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 70 - len(text)))


def _produce(env: dict[str, str], traffic: Traffic) -> dict[str, Any]:
    """Run the load-test producer as a person would, progress on the terminal."""
    command = [
        sys.executable,
        "-m",
        "load_test.producer",
        "generate",
        "--rate",
        str(traffic.rate),
        "--duration",
        str(traffic.duration_s),
        "--accounts",
        str(traffic.accounts),
        "--fraud-ratio",
        str(traffic.fraud_ratio),
        "--invalid-ratio",
        str(traffic.invalid_ratio),
        "--json",
    ]
    if traffic.seed is not None:
        command += ["--seed", str(traffic.seed)]
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


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "n/a"


def summary_lines(
    produced: dict[str, Any],
    traffic: Traffic,
    flagged: list[tuple[str, dict[str, Any]]],
    dead: int,
    alerts: int,
    env: dict[str, str],
    state_dir: str,
) -> list[str]:
    """The newcomer's summary: what was sent, what was flagged and why, where it all is."""
    sent = int(produced.get("sent") or 0)
    fraud, invalid = int(produced.get("fraud") or 0), int(produced.get("invalid") or 0)
    rules = Counter(r["rule"] for _, line in flagged for r in line["reasons"])
    exact = sum(
        sorted(line["transaction"].get("expected_rules") or [])
        == sorted(r["rule"] for r in line["reasons"])
        for _, line in flagged
    )
    bucket = env["FRAUD_BUCKET"]
    lines = [
        f"Sent: {sent:,} synthetic card transactions to the Kinesis stream "
        f"{env['FRAUD_STREAM']} over {produced.get('elapsed_s')} s ({produced.get('rate')}/s), "
        f"ordinary ones from {traffic.accounts:,} accounts; {fraud:,} fraud "
        f"({_percent(fraud, sent)}: the generator's archetypes: large amounts, card testing, "
        f"account takeover, impossible travel, bursts) and {invalid:,} deliberately broken "
        "records.",
    ]
    lines.append(
        f"Flagged: {len(flagged):,} transactions ({_percent(len(flagged), sent)}), each with "
        "its reasons; by rule:"
    )
    for rule, count in rules.most_common():
        lines.append(f"  {rule:<24} {count:>6,}  {RULE_MEANING.get(rule, '')}")
    lines.append(
        f"Checked: the generator labels each transaction with the rules that must fire "
        f"(field expected_rules, passed through): {exact:,} of {len(flagged):,} flagged lines "
        "carry exactly their label's rules."
    )
    lines.append(
        f"Dead letters: {dead:,} records that are not transactions (the broken ones), each with "
        "the reason."
    )
    lines.append(
        f"Alerts: {alerts:,} of the flagged (severity medium or more, once per transaction) "
        "published to SNS."
    )
    lines += [
        "Where the outputs are:",
        f"  flagged      s3://{bucket}/flagged/dt=YYYY-MM-DD/hour=HH/<shard>-<seq>.jsonl.gz",
        f"  dead letters s3://{bucket}/dead-letter/dt=YYYY-MM-DD/<shard>-<seq>.jsonl.gz",
        f"  alerts       SNS topic {env['FRAUD_TOPIC_ARN']}, read here from the SQS queue "
        f"{env['FRAUD_ALERTS_QUEUE_URL']}",
        f"  checkpoints  DynamoDB table {env['FRAUD_APP_NAME']} (the KCL's leases)",
        f"  logs         {state_dir}/logs/worker-*.log (JSON lines), servers' logs beside them",
    ]
    return lines


def _show(env: dict[str, str], produced: dict[str, Any], traffic: Traffic, state_dir: str) -> None:
    s3 = stack_client(env, "s3")
    flagged = read_jsonl_objects(s3, env["FRAUD_BUCKET"], "flagged/")
    dead = read_jsonl_objects(s3, env["FRAUD_BUCKET"], "dead-letter/")
    alerts = drain_queue(stack_client(env, "sqs"), env["FRAUD_ALERTS_QUEUE_URL"])

    _title("What you are looking at")
    for text in summary_lines(produced, traffic, flagged, len(dead), len(alerts), env, state_dir):
        print(text)
    print(f"  by severity: {dict(Counter(line['severity'] for _, line in flagged))}")

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


def _report(env: dict[str, str], state_dir: str) -> None:
    """`fraudstream report` over today's (and yesterday's, past midnight) outputs in the stack's
    bucket, as an analyst would run it; says where the HTML and the JSON are."""
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).date()
    html = os.path.join(state_dir, "report.html")
    figures = os.path.join(state_dir, "report.json")
    _title("The analysts' report (fraudstream report, docs/analytics.md)")
    command = [
        sys.executable,
        "-m",
        "consumer.cli",
        "report",
        "--from",
        (today - timedelta(days=1)).isoformat(),
        "--to",
        today.isoformat(),
        "--source",
        f"s3://{env['FRAUD_BUCKET']}/",
        "--out",
        html,
        "--json",
        figures,
        "--no-progress",
    ]
    done = subprocess.run(command, env={**os.environ, **env}, check=False)
    if done.returncode != 0:
        print(f"the report failed (exit {done.returncode}); see the lines above")
        return
    print(f"report: {os.path.abspath(html)} (open it in a browser; no network needed)")
    print(f"figures: {os.path.abspath(figures)}")


def run(options: local_stack.StackOptions, traffic: Traffic, keep: bool) -> int:
    try:
        _title("Starting the local stack (kinesis-mock, moto, redis, the KCL daemon)")
        env = local_stack.up(options)
        _title(
            f"Producing {traffic.duration_s:.0f} s of traffic at {traffic.rate:.0f} records/s "
            f"({traffic.accounts:,} accounts, {traffic.fraud_ratio:.1%} fraud)"
        )
        produced = _produce(env, traffic)
        _title("Waiting for the workers to write and checkpoint everything")
        waited = _wait_for_checkpoints(env)
        print(
            f"all shards checkpointed at their last record {waited:.1f} s after the producer "
            "(a shard's objects are written, and it is checkpointed, at least every "
            "FRAUD_FLUSH_MAX_AGE_S, 10 s by default)"
        )
        _show(env, produced, traffic, str(options.state_dir))
        _report(env, str(options.state_dir))
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
