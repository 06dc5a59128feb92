"""A bad published rule set never reduces capacity (issue #19, item 5), under the real daemon.

A worker accepts a good rule set from S3 and keeps it beside it as the fleet's last good version;
a broken version is then published and refused by the running processors; the worker is killed
and a new one started, as ECS replaces a task: it starts (no crash loop), judges every record
with the last good version (`rules_version` on the flagged lines, a custom rule of that version
firing), says so in its log and in the metric, and `fraudstream status` shows the published
version refused and the last good one in force. With no version ever accepted, `fraudstream
worker` stops with exit 78 before the JVM. Its own stack: the worker restarts with the rule set.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from consumer.infra.readback import read_jsonl_objects
from consumer.local.stack import running_pids, start_worker, wait_for_processors
from load_test.producer import Entry, send
from tests.integration.conftest import Stack, cli, stack_started_in_process
from tests.integration.expectations import wait_for_checkpoints

pytestmark = pytest.mark.integration

KEY = "rulesets/live.yaml"
RECORD_KEY = KEY + ".last-good.json"
GOOD = (
    'version: "good-1"\n'
    "custom:\n"
    "  - id: lucky_777\n"
    "    description: An amount of exactly 777\n"
    "    severity: high\n"
    "    when: amount == 777\n"
)
BROKEN = "version: bad-2\nrules: {high_amount: {threshold: -5}}\n"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state_dir = tmp_path_factory.mktemp("last-good") / ".fraudstream"
    state_dir.mkdir(parents=True)
    # Started on the contract rules: the rule set's object can only be put once the bucket
    # exists; the worker is restarted with FRAUD_RULESET below.
    worker_env = {
        "FRAUD_FLUSH_MAX_AGE_S": "1",
        "FRAUD_RULESET_CHECK_S": "1",
        "FRAUD_METRICS_INTERVAL_S": "2",
    }
    with stack_started_in_process(state_dir, worker_env) as started:
        yield started


def uri(stack: Stack, key: str = KEY) -> str:
    return f"s3://{stack.env['FRAUD_BUCKET']}/{key}"


def publish(stack: Stack, text: str, key: str = KEY) -> None:
    stack.client("s3").put_object(Bucket=stack.env["FRAUD_BUCKET"], Key=key, Body=text.encode())


def stored_record(stack: Stack) -> dict[str, Any]:
    body = stack.client("s3").get_object(Bucket=stack.env["FRAUD_BUCKET"], Key=RECORD_KEY)["Body"]
    record: dict[str, Any] = json.loads(body.read())
    return record


def restart_worker(stack: Stack) -> None:
    """What ECS does with a replaced task: the old one gone (SIGKILL), a new one started with
    the rule set, and every shard's record processor running again."""
    stack.kill_worker(1)
    since = time.time()
    start_worker(stack.options, 1, {**stack.env, "FRAUD_RULESET": uri(stack)})
    wait_for_processors(stack.options, stack.env, since=since)


def events(stack: Stack, event: str) -> list[dict[str, Any]]:
    found = []
    for line in (stack.options.logs / "worker-1.log").read_text(errors="replace").splitlines():
        if f'"{event}"' in line:
            entry = json.loads(line)
            if entry.get("event") == event:
                found.append(entry)
    return found


def wait_for_events(stack: Stack, event: str, count: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while len(events(stack, event)) < count and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(events(stack, event)) >= count, f"fewer than {count} {event} in the worker log"


def burst(stack: Stack, tag: str, count: int = 30) -> set[str]:
    """`count` transactions of 777, one new account each: only lucky_777 can flag them."""
    ids, entries = set(), []
    for n in range(count):
        tid = f"{tag}-{n}-{uuid.uuid4().hex[:6]}"
        account = f"acct-{tid}"
        body = (
            f'{{"transaction_id":"{tid}","account_id":"{account}","amount":777,'
            f'"timestamp":{int(time.time() * 1000)}}}'
        )
        entries.append(Entry(body.encode(), account))
        ids.add(tid)
    assert send(stack.client("kinesis"), stack.env["FRAUD_STREAM"], entries).failed == 0
    wait_for_checkpoints(stack, 180)
    return ids


def judged(stack: Stack, ids: set[str]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """transaction id -> (rules_version, rules) of its flagged line."""
    lines = read_jsonl_objects(stack.client("s3"), stack.env["FRAUD_BUCKET"], "flagged/")
    return {
        line["transaction_id"]: (line["rules_version"], tuple(r["rule"] for r in line["reasons"]))
        for _, line in lines
        if line["transaction_id"] in ids
    }


def test_a_worker_started_while_the_rule_set_is_refused_judges_with_the_last_good_version(
    stack: Stack,
) -> None:
    publish(stack, GOOD)
    restart_worker(stack)
    wait_for_events(stack, "ruleset_last_good_saved", 1)  # one of the two processors wrote it
    record = stored_record(stack)
    assert (record["version"], record["source"], record["accepted_by"]) == (
        "good-1",
        uri(stack),
        "worker-1",
    )
    assert record["body"] == GOOD
    accepted = burst(stack, "accepted")
    assert judged(stack, accepted) == dict.fromkeys(accepted, ("good-1", ("lucky_777",)))

    publish(stack, BROKEN)
    wait_for_events(stack, "ruleset_refused", 2)  # the running processors keep good-1
    assert stored_record(stack) == record  # a refused version never replaces the record

    restart_worker(stack)  # a crash loop before: every processor failed `initialize`
    wait_for_events(stack, "ruleset_fallback_last_good", 2)  # one processor per shard
    after = burst(stack, "after-restart")
    assert judged(stack, after) == dict.fromkeys(after, ("good-1", ("lucky_777",)))
    assert "worker-1" in running_pids(stack.options)

    for fallback in events(stack, "ruleset_fallback_last_good"):
        assert fallback["component"] == "processor" and fallback["level"] == "warning"
        assert (fallback["version"], fallback["sha256"]) == ("good-1", record["sha256"])
        assert fallback["source"] == uri(stack)
        assert fallback["last_good"] == uri(stack, RECORD_KEY)
        assert fallback["refused"].startswith("refused: ") and "threshold" in fallback["refused"]
    # `fraudstream worker` said it before the JVM started, and started it all the same.
    log = (stack.options.logs / "worker-1.log").read_text(errors="replace")
    assert f"fraudstream: warning: FRAUD_RULESET: {uri(stack)} refused: " in log
    assert "the processors start with the last good version 'good-1'" in log
    dead = read_jsonl_objects(stack.client("s3"), stack.env["FRAUD_BUCKET"], "dead-letter/")
    assert dead == []

    # The metric, published by the processors to the stack's CloudWatch (moto).
    cloudwatch = stack.client("cloudwatch")
    deadline = time.monotonic() + 60
    found: list[Any] = []
    while not found and time.monotonic() < deadline:
        found = cloudwatch.list_metrics(Namespace="Fraudstream", MetricName="RuleSetLastGoodInUse")[
            "Metrics"
        ]
        time.sleep(1)
    assert found, "RuleSetLastGoodInUse never published"

    # What `fraudstream status` tells the person on call.
    status = cli("status", "--json", env={**stack.env, "FRAUD_RULESET": uri(stack)}, timeout=60)
    assert status.returncode == 0, status.stderr
    rules = json.loads(status.stdout)["ruleset"]
    assert (rules["published_state"], rules["last_good_version"]) == ("refused", "good-1")
    assert rules["starting_workers_use"] == "good-1"


def test_with_no_version_ever_accepted_the_worker_stops_with_exit_78(stack: Stack) -> None:
    never = "rulesets/never-good.yaml"
    publish(stack, BROKEN, never)
    with tempfile.TemporaryDirectory() as scratch:
        started = time.monotonic()
        result = cli(
            "worker",
            env={
                **stack.env,
                "FRAUD_RULESET": uri(stack, never),
                "FRAUD_KCL_PROFILE": "local",
                "FRAUD_WORKER_ID": "worker-never",
                "FRAUD_PROPERTIES_OUT": f"{scratch}/kcl.properties",
                "FRAUD_JAVA": "/bin/false",  # were it to get past the check: no daemon
            },
            timeout=60,
        )
    assert result.returncode == 78, result.stderr
    assert time.monotonic() - started < 30
    assert f"fraudstream: configuration error: FRAUD_RULESET: {uri(stack, never)} refused: " in (
        result.stderr
    )
    assert "no version was ever accepted" in result.stderr
