"""Faults under load with the real daemon (issue #6): each scenario breaks one thing while the
producer is sending, heals it, and then checks S3, the dead letters, SNS and the lease table
against the oracle's decisions over everything in the stream.

The stack here has two workers whose Redis, S3 and SNS traffic goes through fault proxies
(tests/support/fault_proxy.py), so a test can take one dependency away from the processors while
the KCL keeps its own (DynamoDB, Kinesis). Scenarios run in file order on one stack; each leaves
both workers running for the next.

Set FRAUD_RELIABILITY_REPORT=<file> to append each scenario's measurements as a JSON line (the
numbers in docs/reliability.md come from there).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from consumer.infra.readback import (
    drain_queue,
    lease_checkpoints,
    read_jsonl_objects,
    stream_records,
)
from consumer.local.stack import (
    StackOptions,
    lease_owners,
    running_pids,
    start_redis,
    wait_for_leases,
)
from load_test.producer import send
from load_test.synthetic import generate_records
from tests.integration.conftest import Stack, free_port, stack_started_in_process
from tests.integration.expectations import (
    Expected,
    assert_s3_matches,
    expected_from_stream,
    wait_for_checkpoints,
)
from tests.integration.scenarios import scenario_entries
from tests.support.fault_proxy import FaultProxy

pytestmark = pytest.mark.integration

OUTAGE_S = 30.0


@dataclass
class FaultStack:
    stack: Stack
    redis_proxy: FaultProxy
    aws_proxy: FaultProxy  # the processors' S3 and SNS (moto); the KCL's DynamoDB is direct
    seed: int = 100
    started: dict[str, float] = field(default_factory=dict)

    @property
    def options(self) -> StackOptions:
        return self.stack.options

    def workers(self) -> dict[str, int]:
        return {n: p for n, p in running_pids(self.options).items() if n.startswith("worker-")}

    def log_events(self, worker: str, event: str) -> list[dict[str, Any]]:
        found = []
        path = self.options.logs / f"{worker}.log"
        for line in path.read_text(errors="replace").splitlines():
            if f'"{event}"' not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == event:
                found.append(entry)
        return found

    def produce(self, tag: str, count: int) -> int:
        """A burst of synthetic traffic plus every archetype; returns the records sent."""
        self.seed += 1
        records = generate_records(count, fraud_ratio=0.1, invalid_ratio=0.03, seed=self.seed)
        entries = [r.to_entry() for r in records] + scenario_entries(tag)
        summary = send(self.stack.client("kinesis"), self.stack.env["FRAUD_STREAM"], entries)
        assert summary.failed == 0
        return len(entries)

    def leases_held_only_by(self, worker: str, since: float, timeout_s: float) -> float:
        """Wait until `worker` holds every lease; the seconds since `since` (monotonic)."""
        while (
            set(lease_owners(self.options, self.stack.env).values()) != {worker}
            and time.monotonic() - since < timeout_s
        ):
            time.sleep(1)
        assert set(lease_owners(self.options, self.stack.env).values()) == {worker}
        return time.monotonic() - since

    def restart_missing_workers(self) -> list[str]:
        """What ECS does for a stopped task: start it again (here with the same worker id)."""
        restarted = []
        for index in (1, 2):
            if f"worker-{index}" not in self.workers():
                self.stack.start_worker(index)
                restarted.append(f"worker-{index}")
        return restarted


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    state_dir = tmp_path_factory.mktemp("faults") / ".fraudstream"
    redis_port, moto_port = free_port(), free_port()
    redis_proxy, aws_proxy = FaultProxy(redis_port), FaultProxy(moto_port)
    aws_via_proxy = f"http://127.0.0.1:{aws_proxy.port}"
    worker_env = {
        "FRAUD_FLUSH_MAX_AGE_S": "2",
        "FRAUD_FLUSH_MAX_RECORDS": "50",
        "REDIS_URL": f"redis://127.0.0.1:{redis_proxy.port}/0",
        "AWS_ENDPOINT_URL_S3": aws_via_proxy,
        "AWS_ENDPOINT_URL_SNS": aws_via_proxy,
    }
    try:
        with stack_started_in_process(
            state_dir, worker_env, workers=2, redis_port=redis_port, moto_port=moto_port
        ) as stack:
            yield FaultStack(stack, redis_proxy, aws_proxy)
    finally:
        redis_proxy.close()
        aws_proxy.close()


def report(scenario: str, **numbers: Any) -> None:
    print(json.dumps({"scenario": scenario, **numbers}))
    target = os.environ.get("FRAUD_RELIABILITY_REPORT")
    if target:
        with Path(target).open("a") as out:
            out.write(json.dumps({"scenario": scenario, **numbers}) + "\n")


def caught_up(faulty: FaultStack, timeout_s: float = 240) -> float:
    return wait_for_checkpoints(faulty.stack, timeout_s)


def verify(faulty: FaultStack, earlier: set[str]) -> tuple[Expected, dict[str, int]]:
    """S3 and the dead letters exactly as the oracle says; every new alert delivered."""
    stack = faulty.stack
    expected = expected_from_stream(stack)
    assert_s3_matches(stack, expected)
    alerts = drain_queue(stack.client("sqs"), stack.env["FRAUD_ALERTS_QUEUE_URL"])
    alerted = [json.loads(a["Message"])["sequence_number"] for a in alerts]
    new_alerts = expected.alerted - earlier
    assert set(alerted) == new_alerts
    flagged = read_jsonl_objects(stack.client("s3"), stack.env["FRAUD_BUCKET"], "flagged/")
    counts = {
        "flagged_found": len({line["sequence_number"] for _, line in flagged} - earlier),
        "alerts_expected": len(new_alerts),
        "alerts_delivered": len(alerted),
        "alerts_repeated": len(alerted) - len(set(alerted)),
    }
    return expected, counts


def begin(faulty: FaultStack) -> set[str]:
    """Everything before this scenario: both workers up, caught up, its alerts drained."""
    if faulty.restart_missing_workers():
        wait_for_leases(faulty.options, faulty.stack.env)
    caught_up(faulty)
    stack = faulty.stack
    drain_queue(stack.client("sqs"), stack.env["FRAUD_ALERTS_QUEUE_URL"])
    return {seq for _, seq, _ in stream_records(stack.client("kinesis"), stack.env["FRAUD_STREAM"])}


def summary(expected: Expected, earlier: set[str], produced: int) -> dict[str, int]:
    return {
        "records_produced": produced,
        "flagged_expected": len(set(expected.flagged) - earlier),
        "duplicates_dropped": len(expected.duplicates - earlier),
        "dead_letters": len(expected.invalid - earlier),
    }


def outage(
    faulty: FaultStack,
    tag: str,
    broken: Callable[[], None],
    healed: Callable[[], None],
    outage_s: float = OUTAGE_S,
) -> dict[str, Any]:
    """Traffic before, during and after `outage_s` of a fault; measure the catch-up."""
    earlier = begin(faulty)
    workers_before = faulty.workers()
    produced = faulty.produce(f"{tag}-a", 300)
    time.sleep(0.5)
    broken()
    broke_at = time.monotonic()
    produced += faulty.produce(f"{tag}-b", 300)
    during = lease_checkpoints(faulty.stack.client("dynamodb"), faulty.stack.env["FRAUD_APP_NAME"])
    time.sleep(max(0.0, outage_s - (time.monotonic() - broke_at)))
    healed()
    produced += faulty.produce(f"{tag}-c", 300)
    recovery_s = caught_up(faulty)
    expected, alerts = verify(faulty, earlier)
    return {
        **summary(expected, earlier, produced),
        **alerts,
        "outage_s": outage_s,
        "catch_up_after_heal_s": round(recovery_s, 1),
        "workers_restarted": sorted(
            n for n, p in faulty.workers().items() if workers_before.get(n) != p
        ),
        "checkpoints_during_outage": during,
    }


def test_redis_unreachable_for_30_s_is_ridden_through(faulty: FaultStack) -> None:
    retries_before = sum(len(faulty.log_events(w, "output_retry")) for w in faulty.workers())
    result = outage(
        faulty,
        "redis-down",
        lambda: faulty.redis_proxy.set_mode("refuse"),
        lambda: faulty.redis_proxy.set_mode("pass"),
    )
    retries = sum(len(faulty.log_events(w, "output_retry")) for w in faulty.workers())
    report("redis unreachable 30 s", **result, retries_logged=retries - retries_before)
    assert result["workers_restarted"] == []  # within the retry budget: no restart needed
    assert retries > retries_before


def test_redis_hanging_for_30_s_is_ridden_through(faulty: FaultStack) -> None:
    result = outage(
        faulty,
        "redis-hang",
        lambda: faulty.redis_proxy.set_mode("hang"),
        lambda: faulty.redis_proxy.set_mode("pass"),
    )
    report("redis not answering 30 s", **result)
    assert result["workers_restarted"] == []


def test_s3_and_sns_unreachable_for_30_s_are_ridden_through(faulty: FaultStack) -> None:
    result = outage(
        faulty,
        "aws-down",
        lambda: faulty.aws_proxy.set_mode("refuse"),
        lambda: faulty.aws_proxy.set_mode("pass"),
    )
    report("S3 and SNS unreachable 30 s", **result)
    assert result["workers_restarted"] == []


def test_redis_restarted_keeps_decisions(faulty: FaultStack) -> None:
    def restart() -> None:
        # SHUTDOWN SAVE, as a managed Redis keeps its data across a restart or failover.
        redis.Redis(port=faulty.options.redis_port).shutdown(save=True)
        deadline = time.monotonic() + 10
        while "redis" in running_pids(faulty.options) and time.monotonic() < deadline:
            time.sleep(0.1)

    def back() -> None:
        start_redis(faulty.options)

    result = outage(faulty, "redis-restart", restart, back, outage_s=5.0)
    report("Redis restarted (5 s down)", **result)
    assert result["workers_restarted"] == []


def test_outputs_down_past_the_retry_budget_exit_the_worker_and_resume(
    faulty: FaultStack,
) -> None:
    """S3 and SNS away for longer than the 60 s budget: the processor gives up, the worker exits
    non-zero (the daemon stops when a processor exits), and a restarted worker resumes from the
    last checkpoint with nothing lost and nothing twice."""
    earlier = begin(faulty)
    produced = faulty.produce("give-up-a", 300)
    time.sleep(0.5)
    faulty.aws_proxy.set_mode("refuse")
    broke_at = time.monotonic()
    produced += faulty.produce("give-up-b", 300)
    deadline = time.monotonic() + 150
    while len(faulty.workers()) == 2 and time.monotonic() < deadline:
        time.sleep(1)
    exited_after = time.monotonic() - broke_at
    stopped = {f"worker-{i}" for i in (1, 2)} - set(faulty.workers())
    assert stopped, "no worker exited although its outputs stayed unwritable"
    gave_up = [e for w in stopped for e in faulty.log_events(w, "output_gave_up")]
    # Never before the outage the budget is meant to ride through (attempts or 60 s, first).
    assert gave_up and all(e["seconds"] >= OUTAGE_S for e in gave_up)
    # And promptly after: the 60 s budget, then the daemon's shutdown of the worker's other
    # shards (shutdownGraceMillis 20 s); background retries do not hold the exit (os._exit).
    assert exited_after < 100
    faulty.aws_proxy.set_mode("pass")
    healed_at = time.monotonic()
    time.sleep(5)  # a processor whose budget ran out just as the outage ended exits now too
    stopped |= {f"worker-{i}" for i in (1, 2)} - set(faulty.workers())
    faulty.restart_missing_workers()
    produced += faulty.produce("give-up-c", 300)
    caught_up(faulty)
    recovery_s = time.monotonic() - healed_at
    expected, alerts = verify(faulty, earlier)
    report(
        "S3 and SNS unreachable past the 60 s budget",
        **summary(expected, earlier, produced),
        **alerts,
        worker_exited_after_s=round(exited_after, 1),
        workers_exited=sorted(stopped),
        resumed_and_caught_up_after_heal_s=round(recovery_s, 1),
    )


def owner_with_most_leases(faulty: FaultStack) -> str:
    owners = list(lease_owners(faulty.options, faulty.stack.env).values())
    return max(set(owners), key=owners.count)


def test_sigterm_hands_the_shards_over_without_replaying_flushed_records(
    faulty: FaultStack,
) -> None:
    earlier = begin(faulty)
    leaving = owner_with_most_leases(faulty)
    staying = next(w for w in ("worker-1", "worker-2") if w != leaving)
    produced = faulty.produce("sigterm-a", 600)
    time.sleep(0.5)
    pid = faulty.workers()[leaving]
    os.kill(pid, signal.SIGTERM)  # what ECS sends to the task's PID 1, the JVM
    sent_at = time.monotonic()
    while leaving in faulty.workers() and time.monotonic() - sent_at < 60:
        time.sleep(0.2)
    exit_s = time.monotonic() - sent_at
    assert leaving not in faulty.workers()
    final = lease_checkpoints(faulty.stack.client("dynamodb"), faulty.stack.env["FRAUD_APP_NAME"])
    shards_left = [
        s for s, o in lease_owners(faulty.options, faulty.stack.env).items() if o == leaving
    ]
    flushed = [e for e in faulty.log_events(leaving, "shutdown_flushed")]
    assert flushed, "the leaving worker's processors did not flush on shutdown"

    produced += faulty.produce("sigterm-b", 300)
    takeover_s = faulty.leases_held_only_by(staying, time.monotonic(), timeout_s=240)
    caught_up(faulty)
    expected, alerts = verify(faulty, earlier)
    # The shards resumed exactly where the leaving worker checkpointed its flushed records.
    resumed = {
        e["shard_id"]: e["sequence_number"]
        for e in faulty.log_events(staying, "shard_initialized")
        if e["shard_id"] in shards_left
    }
    for shard in shards_left:
        assert resumed.get(shard) == final[shard], (shard, resumed, final)
    report(
        "SIGTERM to one of two workers",
        **summary(expected, earlier, produced),
        **alerts,
        worker_exit_after_sigterm_s=round(exit_s, 1),
        shards_handed_over=len(shards_left),
        takeover_s=round(takeover_s, 1),
    )
    assert exit_s < 30  # well inside the ECS stop timeout (deploy/ecs: stopTimeout)
    faulty.restart_missing_workers()


@pytest.mark.slow
def test_sigkill_of_a_busy_worker_moves_its_leases_to_the_other(faulty: FaultStack) -> None:
    earlier = begin(faulty)
    victim = owner_with_most_leases(faulty)
    survivor = next(w for w in ("worker-1", "worker-2") if w != victim)
    produced = faulty.produce("sigkill-a", 800)
    time.sleep(0.3)
    os.killpg(faulty.workers()[victim], signal.SIGKILL)
    killed_at = time.monotonic()
    produced += faulty.produce("sigkill-b", 300)
    takeover_s = faulty.leases_held_only_by(survivor, killed_at, timeout_s=300)
    caught_up(faulty, timeout_s=300)
    recovery_s = time.monotonic() - killed_at
    expected, alerts = verify(faulty, earlier)
    report(
        "SIGKILL of a busy worker, two running",
        **summary(expected, earlier, produced),
        **alerts,
        leases_moved_after_s=round(takeover_s, 1),
        caught_up_after_kill_s=round(recovery_s, 1),
    )
    faulty.restart_missing_workers()
