"""The real MultiLangDaemon end to end on fraudstream's own Kinesis server (`--kinesis-server
fraudstream`, consumer/local/kinesis_server) instead of kinesis-mock.

The same scenario as tests/integration/test_end_to_end.py, run by its own test function against a
stack of this module's; then the server's log shows the KCL called only operations it serves; then
a worker killed and restarted resumes from its checkpoints and judges every record once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumer.infra.readback import drain_queue, lease_checkpoints, stream_records
from consumer.local.stack import StackOptions, down, running_pids, up
from load_test.producer import send
from load_test.run import worker_log_counters
from load_test.synthetic import generate_records
from tests.integration import test_end_to_end as end_to_end
from tests.integration.conftest import Stack, free_port
from tests.integration.expectations import (
    assert_s3_matches,
    expected_from_stream,
    wait_for_checkpoints,
)
from tests.integration.scenarios import scenario_entries
from tests.integration.worker_logs import processor_events

pytestmark = pytest.mark.integration

# What the session `stack` fixture gives its workers: quick flushes and metrics every 2 s.
WORKER_ENV = {
    "FRAUD_FLUSH_MAX_AGE_S": "2",
    "FRAUD_FLUSH_MAX_RECORDS": "50",
    "FRAUD_METRICS_INTERVAL_S": "2",
}
# Every record a processor handles is counted under exactly one of these.
OUTCOMES = ("records.judged", "records.duplicate", "records.invalid", "records.internal_error")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """1 worker, 2 shards on our Kinesis server, free ports, a temporary state directory;
    stopped whatever happens, nothing left running."""
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("kinesis-server-stack") / ".fraudstream",
        kinesis_port=free_port(),
        kinesis_tls_port=free_port(),
        moto_port=free_port(),
        redis_port=free_port(),
        workers=1,
        shards=2,
        worker_env=WORKER_ENV,
        kinesis_server="fraudstream",
    )
    try:
        yield Stack(options, [], up(options))
    finally:
        down(options)
        assert running_pids(options) == {}


def kinesis_log(stack: Stack) -> Path:
    return stack.options.logs / "kinesis.log"


def unserved_calls(stack: Stack) -> list[str]:
    """The server's `unknown_operation` lines (calls it answered UnknownOperationException) and
    any traceback (a call it failed with a 500)."""
    lines = kinesis_log(stack).read_text(encoding="utf-8", errors="replace").splitlines()
    return [line for line in lines if "unknown_operation" in line or "Traceback" in line]


def test_every_rule_invalid_records_alerts_and_checkpoints_on_our_server(stack: Stack) -> None:
    pids = running_pids(stack.options)
    assert pids.keys() >= {"kinesis", "moto", "redis", "worker-1"}
    assert b"consumer.local.kinesis_server" in Path(f"/proc/{pids['kinesis']}/cmdline").read_bytes()
    end_to_end.test_every_rule_invalid_records_alerts_and_checkpoints(stack)


def test_the_kcl_calls_only_operations_the_server_serves(stack: Stack) -> None:
    assert kinesis_log(stack).is_file()
    assert unserved_calls(stack) == []


def test_a_restarted_worker_resumes_from_its_checkpoints(stack: Stack) -> None:
    kinesis, stream = stack.client("kinesis"), stack.env["FRAUD_STREAM"]
    wait_for_checkpoints(stack)  # everything so far judged and checkpointed
    drain_queue(stack.client("sqs"), stack.env["FRAUD_ALERTS_QUEUE_URL"])
    earlier = {seq for _, seq, _ in stream_records(kinesis, stream)}
    assert earlier

    stack.kill_worker()
    assert "worker-1" not in running_pids(stack.options)
    checkpoints = lease_checkpoints(stack.client("dynamodb"), stack.env["FRAUD_APP_NAME"])
    assert len(checkpoints) == 2 and set(checkpoints.values()) <= earlier

    later = [
        r.to_entry() for r in generate_records(300, fraud_ratio=0.1, invalid_ratio=0.03, seed=21)
    ]
    later += scenario_entries("restart")
    assert send(kinesis, stream, later).failed == 0
    restarted = time.time()
    stack.start_worker()
    wait_for_checkpoints(stack)

    # Each shard's processor started at the checkpoint the killed worker left.
    started = [
        e
        for e in processor_events(stack.options, 1)
        if e["event"] == "shard_initialized" and e["at"].timestamp() >= restarted
    ]
    assert {e["shard_id"]: e["sequence_number"] for e in started} == checkpoints

    # Every new record handled once, none from before the checkpoint again.
    counted = wait_for_outcomes(stack, restarted, len(later))
    assert counted == len(later), f"{counted} records handled after the restart, {len(later)} put"

    expected = expected_from_stream(stack)
    assert_s3_matches(stack, expected)  # also: no transaction in two lines
    alerts = drain_queue(stack.client("sqs"), stack.env["FRAUD_ALERTS_QUEUE_URL"])
    alerted = [json.loads(a["Message"])["sequence_number"] for a in alerts]
    assert sorted(alerted) == sorted(expected.alerted - earlier)  # each once, none repeated

    assert unserved_calls(stack) == []  # nor after the restart (iterators at a checkpoint)


def wait_for_outcomes(stack: Stack, since: float, at_least: int, timeout_s: float = 20) -> int:
    """The records the processors counted (judged, duplicate, invalid) in the worker log's
    `metrics` lines after `since`; once `at_least` is reached, one more metrics interval (2 s)
    to catch any extra."""
    deadline = time.monotonic() + timeout_s
    while outcomes_since(stack, since) < at_least and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2.5)
    return outcomes_since(stack, since)


def outcomes_since(stack: Stack, since: float) -> int:
    counters = worker_log_counters(stack.options, since).get("worker-1", {})
    return sum(counters.get(name, 0) for name in OUTCOMES)
