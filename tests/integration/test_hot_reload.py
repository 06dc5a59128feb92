"""A rule set changed under the running daemon (issue #8): a new version judges from the next batch
on with no restart and nothing lost; a broken version is refused and the one in force keeps
working. Its own stack: the decisions here depend on when the file changed."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumer.infra.readback import read_jsonl_objects
from consumer.local.stack import running_pids
from load_test.producer import Entry, send
from tests.integration.conftest import Stack, stack_started_in_process
from tests.integration.expectations import wait_for_checkpoints

pytestmark = pytest.mark.integration


def publish(rules: Path, text: str) -> None:
    """Replace the rule-set file at once (write, then rename), as an operator's deploy should:
    a processor reading a half-written file would refuse it (and take the whole one later)."""
    staged = rules.with_suffix(".staged")
    staged.write_text(text)
    os.replace(staged, rules)


def ruleset(version: str, threshold: str) -> str:
    return f'version: "{version}"\nrules:\n  high_amount:\n    threshold: "{threshold}"\n'


@pytest.fixture(scope="module")
def reloading(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    state_dir = tmp_path_factory.mktemp("reload") / ".fraudstream"
    state_dir.mkdir(parents=True)
    rules = state_dir / "rules.yaml"
    rules.write_text(ruleset("v1", "10000"))
    worker_env = {
        "FRAUD_FLUSH_MAX_AGE_S": "1",
        "FRAUD_RULESET": str(rules),
        "FRAUD_RULESET_CHECK_S": "1",
    }
    with stack_started_in_process(state_dir, worker_env) as stack:
        yield stack, rules


def burst(stack: Stack, tag: str, count: int = 40, amount: int = 600) -> set[str]:
    """`count` transactions of `amount`, one new account each: only high_amount can judge them."""
    ids, entries = set(), []
    for n in range(count):
        tid = f"{tag}-{n}-{uuid.uuid4().hex[:6]}"
        account = f"acct-{tid}"
        body = (
            f'{{"transaction_id":"{tid}","account_id":"{account}","amount":{amount},'
            f'"timestamp":{int(time.time() * 1000)}}}'
        )
        entries.append(Entry(body.encode(), account))
        ids.add(tid)
    assert send(stack.client("kinesis"), stack.env["FRAUD_STREAM"], entries).failed == 0
    return ids


def caught_up(stack: Stack) -> None:
    wait_for_checkpoints(stack, 120)


def flagged_versions(stack: Stack) -> dict[str, str]:
    lines = read_jsonl_objects(stack.client("s3"), stack.env["FRAUD_BUCKET"], "flagged/")
    return {line["transaction_id"]: line["rules_version"] for _, line in lines}


def worker_events(stack: Stack, event: str) -> list[dict[str, object]]:
    text = (stack.options.logs / "worker-1.log").read_text(errors="replace")
    found = []
    for line in text.splitlines():
        if f'"{event}"' in line:
            entry = json.loads(line)
            if entry.get("event") == event:
                found.append(entry)
    return found


def wait_for_events(stack: Stack, event: str, count: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while len(worker_events(stack, event)) < count and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(worker_events(stack, event)) >= count, f"no {event} in the worker log"


def test_a_new_version_judges_the_next_batches_and_a_broken_one_is_refused(
    reloading: tuple[Stack, Path],
) -> None:
    stack, rules = reloading
    worker_pid = running_pids(stack.options)["worker-1"]

    before = burst(stack, "before")
    caught_up(stack)
    assert not before & set(flagged_versions(stack))  # 600 < 10000: nothing flagged under v1

    publish(rules, ruleset("v2", "500"))
    wait_for_events(stack, "ruleset_loaded", 2)  # one processor per shard
    after = burst(stack, "after")
    caught_up(stack)
    versions = flagged_versions(stack)
    assert {tid: versions.get(tid) for tid in after} == dict.fromkeys(after, "v2")
    assert not before & set(versions)  # decisions already made stay made

    publish(rules, "version: v3\nrules: {high_amount: {threshold: -5}}\n")
    wait_for_events(stack, "ruleset_refused", 2)
    still = burst(stack, "still")
    caught_up(stack)
    versions = flagged_versions(stack)
    assert {tid: versions.get(tid) for tid in still} == dict.fromkeys(still, "v2")

    assert running_pids(stack.options)["worker-1"] == worker_pid  # no restart at any point
    dead = read_jsonl_objects(stack.client("s3"), stack.env["FRAUD_BUCKET"], "dead-letter/")
    assert dead == []
    refused = worker_events(stack, "ruleset_refused")[0]
    assert "threshold" in str(refused["error"]) and refused["in_force"] == "v2"
