"""Resharding and a stolen lease, under load, against the local stack and the real daemon.

Two faults of issue #6, each ending with S3 (flagged lines, dead letters), SNS (the SQS tap) and
the lease table checked against everything in the stream:

- the stream split, then two adjacent open shards merged, while a worker processes a steady load:
  every parent ends checkpointed at SHARD_END, no child starts before its parents ended, and each
  account's decisions are the oracle's over parents-before-children order;
- a lease taken from worker-1 while records flow, written to the lease table the way the KCL 3
  leader assigns leases: worker-1 gets lease_lost and checkpoints nothing more on that shard,
  worker-2 resumes it from the last checkpoint, nothing is lost and no line is written twice.

The module starts its own stack (one worker, two shards): resharding changes the stream for
good, so it must not share the session stack of the other integration tests.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from consumer.infra.readback import (
    SHARD_END,
    drain_queue,
    is_open,
    lease_checkpoints,
    leases_by_shard,
    list_shards,
    shard_parents,
    stream_records,
)
from consumer.local.stack import running_pids, start_worker
from load_test.producer import Entry, send
from load_test.synthetic import generate_records
from tests.integration.conftest import Stack, stack_started_by_the_cli
from tests.integration.expectations import (
    Expected,
    assert_s3_matches,
    expected_from_resharded_stream,
    wait_for_lineage_checkpoints,
)
from tests.integration.scenarios import scenario_entries
from tests.integration.worker_logs import of_shard, processor_events

pytestmark = pytest.mark.integration

WORKER_ENV = {"FRAUD_FLUSH_MAX_AGE_S": "2", "FRAUD_FLUSH_MAX_RECORDS": "50"}
# A lease's checkpoint before its shard's first record was processed.
START_POSITIONS = frozenset({"TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"})
# Processor events logged before the SHARD_END checkpoint is requested (after it, nothing but
# `checkpointed_shard_end` and `shard_ended`): none may come after a child's first event.
BEFORE_SHARD_END = (
    "shard_end_reached",
    "s3_object_written",
    "record_dead_lettered",
    "checkpointed",
)


@pytest.fixture(scope="module")
def reshard_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own, started exactly like the session `stack` of conftest.py."""
    state_dir = tmp_path_factory.mktemp("reshard") / ".fraudstream"
    with stack_started_by_the_cli(state_dir, WORKER_ENV) as stack:
        yield stack


# --- load, lease table, waiting ----------------------------------------------------------------


class Load(threading.Thread):
    """A steady load from one thread: small producer calls of synthetic records, with the
    hand-made scenarios mixed in when asked. One sender, each call finished before the next, so
    every account's records enter the stream in the order they were produced."""

    def __init__(
        self, kinesis: Any, stream: str, seed: int, per_call: int = 50, pause_s: float = 0.25
    ) -> None:
        super().__init__(name="load", daemon=True)
        self._kinesis = kinesis
        self._stream = stream
        self._seed = seed
        self._per_call = per_call
        self._pause_s = pause_s
        self._extra: queue.SimpleQueue[list[Entry]] = queue.SimpleQueue()
        self._gate = threading.Lock()
        self._stopping = threading.Event()
        self.sent = 0
        self.failed = 0
        self.error: BaseException | None = None

    def add(self, entries: list[Entry]) -> None:
        self._extra.put(entries)

    @contextmanager
    def held(self) -> Iterator[None]:
        """No put while the stream is UPDATING (kinesis-mock takes about 0.5 s per reshard)."""
        with self._gate:
            yield

    def run(self) -> None:
        seed = self._seed
        try:
            while not self._stopping.is_set():
                records = generate_records(
                    self._per_call, fraud_ratio=0.1, invalid_ratio=0.03, seed=seed
                )
                entries = [r.to_entry() for r in records]
                seed += 1
                while not self._extra.empty():
                    entries += self._extra.get()
                with self._gate:
                    summary = send(self._kinesis, self._stream, entries)
                self.sent += summary.sent
                self.failed += summary.failed
                self._stopping.wait(self._pause_s)
        except BaseException as exc:  # reported by stop(), in the test's thread
            self.error = exc

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=60)
        assert self.error is None, f"the load stopped: {self.error!r}"
        assert self.failed == 0


class LeaseWatch(threading.Thread):
    """Scans the lease table a few times a second, keeping every snapshot with its time."""

    def __init__(self, dynamodb: Any, table: str, interval_s: float = 0.25) -> None:
        super().__init__(name="lease-watch", daemon=True)
        self._dynamodb = dynamodb
        self._table = table
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self.snapshots: list[tuple[float, dict[str, dict[str, Any]]]] = []

    def run(self) -> None:
        while not self._stopping.is_set():
            # A scan that failed is a snapshot missed, nothing more.
            with contextlib.suppress(Exception):
                self.snapshots.append((time.time(), leases_by_shard(self._dynamodb, self._table)))
            self._stopping.wait(self._interval_s)

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=10)

    def children_ahead_of_parents(self) -> list[str]:
        """Every snapshot where a child lease had moved past its start while a parent lease
        still existed without SHARD_END (the KCL must never let that happen)."""
        seen: list[str] = []
        for at, leases in self.snapshots:
            for key, lease in leases.items():
                if lease.get("checkpoint") in START_POSITIONS:
                    continue
                for parent in lease.get("parentShardId", []):
                    parent_lease = leases.get(parent)
                    if parent_lease is not None and parent_lease.get("checkpoint") != SHARD_END:
                        seen.append(
                            f"{at:.2f}: {key} at {lease.get('checkpoint')}, {parent} not ended"
                        )
        return seen

    def first_time(self, shard_id: str, test: Callable[[dict[str, Any]], bool]) -> float | None:
        for at, leases in self.snapshots:
            if shard_id in leases and test(leases[shard_id]):
                return at
        return None


def assign_lease(
    dynamodb: Any,
    table: str,
    lease: dict[str, Any],
    new_owner: str,
    *,
    at_checkpoint: str | None = None,
) -> dict[str, Any]:
    """Give `lease` to `new_owner` as the KCL 3.1.3 leader does (LeaseAssignmentManager ->
    DynamoDBLeaseRefresher.assignLease): one conditional UpdateItem that PUTs leaseOwner,
    DELETEs checkpointOwner, ADDs 1 to leaseCounter and (owner changed) to
    ownerSwitchesSinceCheckpoint, expecting the owner and checkpoint owner it read and the lease
    to exist. The bumped counter makes the old owner's next renewal or checkpoint fail: that is
    how it learns the lease is gone. (The leader then renews the lease once more itself; the new
    owner's renewals do the same here.) With `at_checkpoint`, the update also expects the
    lease's checkpoint to be that one still (a test's condition, not the leader's), so a
    checkpoint written in between makes it fail rather than change what is being tested.
    Returns the item as written."""
    key = lease["leaseKey"]

    def expect(value: str | None) -> dict[str, Any]:
        return {"Value": {"S": value}} if value else {"Exists": False}

    updates: dict[str, Any] = {
        "leaseOwner": {"Action": "PUT", "Value": {"S": new_owner}},
        "checkpointOwner": {"Action": "DELETE"},
        "leaseCounter": {"Action": "ADD", "Value": {"N": "1"}},
    }
    if lease.get("leaseOwner") != new_owner:
        updates["ownerSwitchesSinceCheckpoint"] = {"Action": "ADD", "Value": {"N": "1"}}
    written = dynamodb.update_item(
        TableName=table,
        Key={"leaseKey": {"S": key}},
        Expected={
            "leaseKey": {"Value": {"S": key}},
            "leaseOwner": expect(lease.get("leaseOwner")),
            "checkpointOwner": expect(lease.get("checkpointOwner")),
            **({"checkpoint": expect(at_checkpoint)} if at_checkpoint else {}),
        },
        AttributeUpdates=updates,
        ReturnValues="ALL_NEW",
    )["Attributes"]
    return {name: next(iter(value.values())) for name, value in written.items()}


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def wait_active(kinesis: Any, stream: str) -> None:
    wait_until(
        lambda: (
            kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"][
                "StreamStatus"
            ]
            == "ACTIVE"
        ),
        30,
        "the stream to be ACTIVE again",
    )


def open_shards(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    shards = [s for s in list_shards(kinesis, stream) if is_open(s)]
    return sorted(shards, key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))


def progressed(dynamodb: Any, table: str, shard_ids: list[str]) -> bool:
    """Every one of these shards has a checkpoint past its start."""
    checkpoints = lease_checkpoints(dynamodb, table)
    return all(checkpoints.get(s, "TRIM_HORIZON") not in START_POSITIONS for s in shard_ids)


def check_alerts(stack: Stack, expected: Expected, earlier: set[str]) -> int:
    """Every expected alert of this test's records delivered at least once, nothing else;
    returns how many were repeats."""
    alerts = drain_queue(stack.client("sqs"), stack.env["FRAUD_ALERTS_QUEUE_URL"])
    alerted = [json.loads(a["Message"])["sequence_number"] for a in alerts]
    assert set(alerted) == expected.alerted - earlier
    return len(alerted) - len(set(alerted))


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def arrivals_after(kinesis: Any, stream: str, shard_id: str, checkpoint: str) -> list[datetime]:
    """Arrival times of the shard's records after `checkpoint` (a sequence number or a start)."""
    start: dict[str, str] = {"ShardIteratorType": "TRIM_HORIZON"}
    if checkpoint not in START_POSITIONS:
        start = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": checkpoint}
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard_id, **start)
    iterator = iterator["ShardIterator"]
    arrivals: list[datetime] = []
    while iterator:
        page = kinesis.get_records(ShardIterator=iterator, Limit=10000)
        arrivals += [r["ApproximateArrivalTimestamp"] for r in page["Records"]]
        if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
            break
        iterator = page.get("NextShardIterator")
    return arrivals


def summary(expected: Expected, earlier: set[str], produced: int) -> str:
    """This test's share of what the oracle expects (the module's stack outlives one test)."""
    return (
        f"{produced} records produced, {len(set(expected.flagged) - earlier)} flagged expected "
        f"and found, {len(expected.invalid - earlier)} dead letters, "
        f"{len(expected.duplicates - earlier)} producer duplicates (none in S3), "
        f"{len(expected.alerted - earlier)} alerts"
    )


# --- 1. split, then merge, while running -------------------------------------------------------


def test_a_split_then_a_merge_under_load_ends_parents_first_and_keeps_every_decision(
    reshard_stack: Stack,
) -> None:
    stack = reshard_stack
    kinesis, dynamodb = stack.client("kinesis"), stack.client("dynamodb")
    stream, table = stack.env["FRAUD_STREAM"], stack.env["FRAUD_APP_NAME"]
    drain_queue(stack.client("sqs"), stack.env["FRAUD_ALERTS_QUEUE_URL"])
    earlier = {seq for _, seq, _ in stream_records(kinesis, stream)}
    started = time.monotonic()

    watch = LeaseWatch(stack.client("dynamodb"), table)
    watch.start()
    load = Load(stack.client("kinesis"), stream, seed=1000)
    load.add(scenario_entries("split-a"))
    load.start()
    try:
        before = open_shards(kinesis, stream)
        wait_until(
            lambda: progressed(dynamodb, table, [s["ShardId"] for s in before]),
            60,
            "the worker to checkpoint the load on every shard",
        )
        # Split the lowest shard at the middle of its hash range.
        parent = before[0]
        low = int(parent["HashKeyRange"]["StartingHashKey"])
        high = int(parent["HashKeyRange"]["EndingHashKey"])
        middle = (low + high) // 2
        with load.held():
            split_at = time.time()
            kinesis.split_shard(
                StreamName=stream, ShardToSplit=parent["ShardId"], NewStartingHashKey=str(middle)
            )
            wait_active(kinesis, stream)
        load.add(scenario_entries("split-b"))
        children = [
            s for s in open_shards(kinesis, stream) if s.get("ParentShardId") == parent["ShardId"]
        ]
        assert len(children) == 2
        wait_until(
            lambda: progressed(dynamodb, table, [c["ShardId"] for c in children]),
            90,
            "both children of the split to be processed",
        )
        # Merge the upper child with the next shard up: adjacent, open, different parents.
        upper = next(c for c in children if int(c["HashKeyRange"]["StartingHashKey"]) == middle)
        after_upper = int(upper["HashKeyRange"]["EndingHashKey"]) + 1
        neighbour = next(
            s
            for s in open_shards(kinesis, stream)
            if int(s["HashKeyRange"]["StartingHashKey"]) == after_upper
        )
        with load.held():
            merge_at = time.time()
            kinesis.merge_shards(
                StreamName=stream,
                ShardToMerge=upper["ShardId"],
                AdjacentShardToMerge=neighbour["ShardId"],
            )
            wait_active(kinesis, stream)
        load.add(scenario_entries("merge-c"))
        merged = next(
            s
            for s in open_shards(kinesis, stream)
            if set(shard_parents(s)) == {upper["ShardId"], neighbour["ShardId"]}
        )
        wait_until(
            lambda: progressed(dynamodb, table, [merged["ShardId"]]),
            90,
            "the merged shard to be processed",
        )
        time.sleep(2)  # a little more load into the merged shard
    finally:
        load.stop()
    caught_up_s = wait_for_lineage_checkpoints(stack, timeout_s=120)
    watch.stop()

    # The lease table: parents at SHARD_END, a lease per child naming its parents, and the
    # parents naming their children (what KCL 3.1.3 writes at shard end).
    shards = list_shards(kinesis, stream)
    closed = {s["ShardId"] for s in shards if not is_open(s)}
    assert closed == {parent["ShardId"], upper["ShardId"], neighbour["ShardId"]}
    leases = leases_by_shard(dynamodb, table)
    assert {s: leases[s]["checkpoint"] for s in closed} == {s: SHARD_END for s in closed}
    descendants = [s for s in shards if shard_parents(s)]
    assert len(descendants) == 3
    for child in descendants:
        child_id = child["ShardId"]
        assert sorted(leases[child_id]["parentShardId"]) == sorted(shard_parents(child))
        for parent_id in shard_parents(child):
            assert child_id in leases[parent_id]["childShardIds"]

    # Children after parents, two ways. (a) The lease table as it changed: no child checkpoint
    # while a parent lease was not yet at SHARD_END. (b) The processors' own logs: everything a
    # parent's processor logged before it asked for the SHARD_END checkpoint (its last outputs
    # written, its last checkpoint, `shard_end_reached`) precedes the child processor's first
    # line, which it can only write after the KCL saw SHARD_END (BlockOnParentShardTask) and
    # started it. Same machine, same clock.
    assert watch.children_ahead_of_parents() == []
    events = processor_events(stack.options, 1)
    handoffs: dict[str, float] = {}
    for child in descendants:
        child_id = child["ShardId"]
        child_first = min(e["at"] for e in of_shard(events, child_id))
        for parent_id in shard_parents(child):
            parent_last = max(e["at"] for e in of_shard(events, parent_id, *BEFORE_SHARD_END))
            assert parent_last < child_first, f"{child_id} started before {parent_id} ended"
            [end] = [e["at"] for e in of_shard(events, parent_id, "shard_end_reached")]
            handoffs[f"{parent_id[-3:]}->{child_id[-3:]}"] = (child_first - end).total_seconds()

    # Decisions: the oracle over parents-before-children order, per account.
    expected = expected_from_resharded_stream(stack)
    assert_s3_matches(stack, expected)
    repeats = check_alerts(stack, expected, earlier)

    split_end = watch.first_time(parent["ShardId"], lambda lease: lease["checkpoint"] == SHARD_END)
    merge_end = watch.first_time(upper["ShardId"], lambda lease: lease["checkpoint"] == SHARD_END)
    assert split_end is not None and merge_end is not None
    print(
        f"\nresharding: {summary(expected, earlier, load.sent)} ({repeats} repeated); "
        f"parent SHARD_END {split_end - split_at:.1f} s after the split, "
        f"{merge_end - merge_at:.1f} s after the merge; parent end -> child start "
        f"{ {k: round(v, 1) for k, v in handoffs.items()} }; caught up {caught_up_s:.1f} s after "
        f"the load stopped; {time.monotonic() - started:.0f} s in all"
    )


# --- 2. lease lost mid-batch ---------------------------------------------------------------------


def test_a_lease_taken_mid_batch_is_given_up_by_the_loser_and_resumed_from_its_checkpoint(
    reshard_stack: Stack,
) -> None:
    stack = reshard_stack
    kinesis, dynamodb = stack.client("kinesis"), stack.client("dynamodb")
    stream, table = stack.env["FRAUD_STREAM"], stack.env["FRAUD_APP_NAME"]
    drain_queue(stack.client("sqs"), stack.env["FRAUD_ALERTS_QUEUE_URL"])
    earlier = {seq for _, seq, _ in stream_records(kinesis, stream)}
    started = time.monotonic()

    load = Load(stack.client("kinesis"), stream, seed=2000)
    load.add(scenario_entries("steal-a"))
    load.start()
    try:
        if "worker-2" not in running_pids(stack.options):
            start_worker(stack.options, 2, stack.env)
        worker2_log = stack.options.logs / "worker-2.log"
        wait_until(
            lambda: worker2_log.exists() and "Initialization complete" in worker2_log.read_text(),
            120,
            "worker-2 to join",
        )

        def victim() -> dict[str, Any] | None:
            """A busy open shard that worker-1 holds outright (no graceful handoff under way)."""
            open_ids = {s["ShardId"] for s in open_shards(kinesis, stream)}
            for lease in leases_by_shard(dynamodb, table).values():
                if (
                    lease["leaseKey"] in open_ids
                    and lease.get("leaseOwner") == "worker-1"
                    and "checkpointOwner" not in lease
                    and lease.get("checkpoint") not in START_POSITIONS
                ):
                    return lease
            return None

        shard_id = wait_until(victim, 60, "a busy lease held by worker-1")["leaseKey"]
        load.add(scenario_entries("steal-b"))

        def steal_mid_batch() -> tuple[float, dict[str, Any]] | None:
            """Take the lease while records sit on the shard past its checkpoint (read by
            worker-1, not yet confirmed). The steal expects that checkpoint still, so a
            checkpoint landing between the look and the steal makes it fail, and we look
            again: the scenario is set up, not left to timing."""
            lease = leases_by_shard(dynamodb, table)[shard_id]
            checkpoint = lease.get("checkpoint")
            if (
                lease.get("leaseOwner") != "worker-1"
                or "checkpointOwner" in lease
                or checkpoint is None
                or checkpoint in START_POSITIONS
                or not arrivals_after(kinesis, stream, shard_id, checkpoint)
            ):
                return None
            steal_at = time.time()
            try:
                taken = assign_lease(dynamodb, table, lease, "worker-2", at_checkpoint=checkpoint)
            except dynamodb.exceptions.ConditionalCheckFailedException:
                return None
            return steal_at, taken

        steal_at, taken = wait_until(steal_mid_batch, 60, "a moment to steal the lease mid-batch")
        resumed_from = taken["checkpoint"]
        load.add(scenario_entries("steal-c"))

        def logged(worker: int, name: str) -> list[dict[str, Any]]:
            events = of_shard(processor_events(stack.options, worker), shard_id, name)
            return [e for e in events if e["at"] > at(steal_at)]

        lost = wait_until(lambda: logged(1, "lease_lost"), 60, "worker-1's lease_lost")[0]
        resumed = wait_until(
            lambda: logged(2, "shard_initialized"), 90, "worker-2 to start the shard"
        )[0]
        wait_until(lambda: logged(2, "checkpointed"), 60, "worker-2 to checkpoint on the shard")
        time.sleep(2)  # a little more load after the handoff
    finally:
        load.stop()
    caught_up_s = wait_for_lineage_checkpoints(stack, timeout_s=120)

    # The loser: told, and no checkpoint of its own past the one in the table when the lease
    # went (the KCL's checkpoint is conditional on the lease counter we bumped), none at all
    # after lease_lost until it might be given the shard again.
    worker1 = of_shard(processor_events(stack.options, 1), shard_id)
    again = [e["at"] for e in worker1 if e["event"] == "shard_initialized" and e["at"] > lost["at"]]
    until = min(again, default=datetime.max.replace(tzinfo=UTC))
    after_lost = [
        e for e in worker1 if e["event"] == "checkpointed" and lost["at"] < e["at"] < until
    ]
    assert after_lost == []
    if resumed_from not in START_POSITIONS:
        beyond = [
            e["sequence_number"]
            for e in worker1
            if e["event"] == "checkpointed"
            and e["at"] > at(steal_at)
            and e["at"] < until
            and int(e["sequence_number"]) > int(resumed_from)
        ]
        assert beyond == [], "worker-1 checkpointed past the lease table after losing the lease"
    refused = [
        e for e in worker1 if e["event"] == "lease_gone_on_checkpoint" and e["at"] > at(steal_at)
    ]
    late_writes = [
        e for e in worker1 if e["event"] == "s3_object_written" and at(steal_at) < e["at"] < until
    ]
    # The winner: started the shard at the checkpoint the lease table held, and rewrote every
    # object the loser wrote after the steal under the same key (derived from its first record),
    # later than the loser: a late loser write would replace the winner's object.
    assert resumed["sequence_number"] == resumed_from
    winner_writes = {
        e["key"]: e["at"]
        for e in of_shard(processor_events(stack.options, 2), shard_id, "s3_object_written")
        if e["at"] > at(steal_at)
    }
    for write in late_writes:
        assert write["key"] in winner_writes, f"{write['key']} not rewritten by the replay"
        assert winner_writes[write["key"]] > write["at"]
    # Mid-batch: records had arrived past that checkpoint when the lease went (read by worker-1,
    # judged or buffered, not confirmed), so worker-2 had work to redo.
    unconfirmed = [
        a for a in arrivals_after(kinesis, stream, shard_id, resumed_from) if a < at(steal_at)
    ]
    assert unconfirmed, "the lease went with nothing past the checkpoint: not mid-batch"

    expected = expected_from_resharded_stream(stack)
    assert_s3_matches(stack, expected)
    repeats = check_alerts(stack, expected, earlier)
    print(
        f"\nlease lost: {summary(expected, earlier, load.sent)} ({repeats} repeated); "
        f"{len(unconfirmed)} records past the checkpoint when the lease went; "
        f"{shard_id}: lease_lost {(lost['at'] - at(steal_at)).total_seconds():.1f} s and worker-2 "
        f"resumed {(resumed['at'] - at(steal_at)).total_seconds():.1f} s after the steal; worker-1 "
        f"after the steal: {len(refused)} checkpoints refused, {len(late_writes)} objects written "
        f"(rewritten by worker-2's replay under the same keys); caught up {caught_up_s:.1f} s "
        f"after the load stopped; {time.monotonic() - started:.0f} s in all"
    )
