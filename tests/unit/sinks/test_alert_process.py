"""Alerts published from a child process (consumer/sinks/alert_process.py): the same answers as in
the worker's own process, and every way the child can fail ends as a visible give-up."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from consumer.infra.metrics import METRICS, Metrics
from consumer.infra.retry import OutputGaveUp
from consumer.records import RecordPosition
from consumer.sinks.alert_process import ANSWER_TIMEOUT_CAP_S, AlertProcess
from consumer.sinks.alerts import Alert
from tests.support.alert_sinks import file_sink

REPO_ROOT = Path(__file__).resolve().parents[3]


def alert(n: int) -> Alert:
    position = RecordPosition("shardId-000000000001", f"{n:056d}", 0, 0)
    body = json.dumps({"transaction_id": f"t-{n}", "severity": "high"})
    return Alert(f"t-{n}", "acct-1234567", "high", ("high_amount",), body, position)


def published(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(autouse=True)
def _fresh_metrics() -> None:
    METRICS.snapshot_and_reset()


@pytest.fixture
def sent(tmp_path: Path) -> Path:
    return tmp_path / "published.jsonl"


def start(sent: Path, **sink: object) -> AlertProcess:
    return AlertProcess(
        partial(file_sink, str(sent), **sink),  # type: ignore[arg-type]
        retry_deadline_s=0.2,
        answer_margin_s=5.0,
    )


@pytest.fixture
def processes() -> Iterator[list[AlertProcess]]:
    started: list[AlertProcess] = []
    yield started
    for process in started:
        process.close()


def test_alerts_are_published_by_the_child_and_refusals_come_back_as_the_parents_alerts(
    sent: Path, processes: list[AlertProcess]
) -> None:
    process = start(sent, refuse=("t-2",))
    processes.append(process)
    batch = [alert(n) for n in range(5)]
    rejected = process.publish(batch)
    assert [r.alert for r in rejected] == [batch[2]]
    assert rejected[0].alert is batch[2]  # the parent's own object, for its dead letters
    assert rejected[0].code == "InvalidParameter"
    lines = published(sent)
    assert [line["ids"] for line in lines] == [["t-0", "t-1", "t-3", "t-4"]]
    assert lines[0]["pid"] == process.pid != os.getpid()
    # The next batch goes to the same child, in order.
    assert process.publish([alert(7)]) == []
    assert [line["ids"] for line in published(sent)][-1] == ["t-7"]
    assert process.publish([]) == []


def test_the_childs_counters_reach_the_parents_metrics(
    sent: Path, processes: list[AlertProcess]
) -> None:
    process = start(sent)
    processes.append(process)
    process.publish([alert(n) for n in range(3)])
    process.publish([alert(n) for n in range(3, 7)])
    assert METRICS.get("alerts.sent") == 7
    assert METRICS.get("sns.publish.count") == 2
    assert METRICS.get("sns.publish.max_ms") == 2.0


def test_a_give_up_in_the_child_is_the_parents_give_up_with_its_metric(
    sent: Path, processes: list[AlertProcess]
) -> None:
    process = start(sent, behaviour="give_up")
    processes.append(process)
    with pytest.raises(OutputGaveUp, match="sns_alerts: gave up after 2 attempts"):
        process.publish([alert(1)])
    assert METRICS.get("gave_up.sns_alerts") == 1
    assert METRICS.get("retries.sns_alerts") == 1
    assert published(sent) == []


def test_a_bug_in_the_child_stops_the_worker_instead_of_losing_alerts(
    sent: Path, processes: list[AlertProcess]
) -> None:
    process = start(sent, behaviour="raise")
    processes.append(process)
    with pytest.raises(OutputGaveUp, match="a bug in the sink"):
        process.publish([alert(1)])
    assert METRICS.get("gave_up.alert_process") == 1  # on the give-ups dashboard too


def test_a_batch_larger_than_the_pipe_goes_through_whole(
    sent: Path, processes: list[AlertProcess]
) -> None:
    """500 alerts of ~1 KiB (a 10,000-record batch at 5% flagged): several times the pipe."""
    process = start(sent)
    processes.append(process)
    body = "x" * 1024
    batch = [
        Alert(f"t-{n}", "acct-1234567", "high", ("r",), body, alert(n).position) for n in range(500)
    ]
    assert process.publish(batch) == []
    assert published(sent)[0]["ids"] == [f"t-{n}" for n in range(500)]


def test_a_child_that_dies_is_a_give_up_and_stays_one(
    sent: Path, processes: list[AlertProcess]
) -> None:
    process = start(sent, behaviour="crash")
    processes.append(process)
    with pytest.raises(OutputGaveUp, match=r"is gone .*exit code 9"):
        process.publish([alert(1)])
    assert METRICS.get("gave_up.alert_process") == 1
    with pytest.raises(OutputGaveUp, match="exit code 9"):
        process.publish([alert(2)])  # no new child behind the worker's back


def test_a_hung_child_is_a_give_up_after_the_retry_budget_and_is_killed(
    sent: Path, processes: list[AlertProcess]
) -> None:
    process = start(sent, behaviour="hang")
    processes.append(process)
    assert process.answer_timeout_s([alert(1)]) == pytest.approx(5.2)
    # Three PublishBatch calls of at most ten...
    assert process.answer_timeout_s([alert(n) for n in range(25)]) == pytest.approx(15.6)
    # ...or fewer when the messages are large (at most 256 KiB a call)...
    big = [
        Alert(f"t-{n}", "acct-1", "high", ("r",), "x" * 100_000, alert(n).position)
        for n in range(4)
    ]
    assert process.answer_timeout_s(big) == pytest.approx(10.4)
    # ...and never past the daemon's timeoutInSeconds.
    capped = AlertProcess(partial(file_sink, str(sent)), retry_deadline_s=60.0)
    processes.append(capped)
    assert capped.answer_timeout_s([alert(n) for n in range(500)]) == ANSWER_TIMEOUT_CAP_S < 600
    started = time.monotonic()
    with pytest.raises(OutputGaveUp, match="gave no answer"):
        process.publish([alert(1)])
    assert 5.0 <= time.monotonic() - started < 15
    assert METRICS.get("gave_up.alert_process") == 1
    assert not Path(f"/proc/{process.pid}").exists()  # killed and reaped


def test_the_child_ignores_sigterm_as_the_worker_does(
    sent: Path, processes: list[AlertProcess]
) -> None:
    process = start(sent)
    processes.append(process)
    process.publish([alert(1)])  # the child is past its set-up
    os.kill(process.pid, signal.SIGTERM)
    assert process.publish([alert(2)]) == []
    assert [line["ids"] for line in published(sent)] == [["t-1"], ["t-2"]]


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("cannot_start", "could not start: RuntimeError\\('no SNS endpoint for the test'\\)"),
        ("dies_at_start", r"is gone before it started .*exit code 7"),
    ],
)
def test_a_child_that_cannot_start_fails_the_shards_start(
    sent: Path, behaviour: str, message: str
) -> None:
    with pytest.raises(OutputGaveUp, match=message):
        start(sent, behaviour=behaviour)
    assert METRICS.get("gave_up.alert_process") == 1


def test_close_ends_and_reaps_the_child(sent: Path) -> None:
    process = start(sent)
    process.publish([alert(1)])
    process.close()
    assert not Path(f"/proc/{process.pid}").exists()  # reaped, not a zombie
    process.close()  # twice is harmless


def test_closing_at_a_give_up_kills_a_publish_under_way(sent: Path) -> None:
    """The processor gives up (os._exit follows): a publish still retrying must not go on."""
    process = start(sent, behaviour="hang")
    worker = threading.Thread(target=_swallow, args=(process, [alert(1)]), daemon=True)
    worker.start()
    time.sleep(0.5)
    started = time.monotonic()
    process.close(timeout_s=0)
    assert time.monotonic() - started < 2
    assert not Path(f"/proc/{process.pid}").exists()


def _swallow(process: AlertProcess, alerts: list[Alert]) -> None:
    with contextlib.suppress(OutputGaveUp):
        process.publish(alerts)


_SCRIPT = """
import os, sys, threading, time
from functools import partial
from consumer.sinks.alert_process import AlertProcess
from consumer.infra.logs import configure_logging
from consumer.records import RecordPosition
from consumer.sinks.alerts import Alert
from tests.support.alert_sinks import file_sink

configure_logging("info")  # as the worker does: its own lines on stderr
sink = partial(file_sink, sys.argv[1], behaviour=sys.argv[2])
process = AlertProcess(sink, retry_deadline_s=0.2, answer_margin_s=5.0)
position = RecordPosition("shardId-0", "1", 0, 0)
alerts = [Alert("t-1", "acct-1234567", "high", ("r",), "{}", position)]
if sys.argv[2] == "hang":  # the child is stuck in a publish when its worker dies
    threading.Thread(target=process.publish, args=(alerts,), daemon=True).start()
    time.sleep(0.5)
else:
    process.publish(alerts)
sys.stderr.write(f"child={process.pid}\\n")
sys.stderr.flush()
os._exit(0)  # the worker killed: no close, no atexit
"""


def _run_parent(sent: Path, behaviour: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SCRIPT), str(sent), behaviour],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=60,
        check=True,
    )


def test_nothing_the_child_writes_reaches_the_protocols_stdout(sent: Path) -> None:
    done = _run_parent(sent, "noisy")
    assert done.stdout == b""  # the daemon would read any byte here as a protocol message
    assert b"noise from print" in done.stderr and b"noise on fd 1" in done.stderr
    assert [line["ids"] for line in published(sent)] == [["t-1"]]


@pytest.mark.parametrize("behaviour", ["ok", "hang"])
def test_the_child_ends_when_its_worker_dies(sent: Path, behaviour: str) -> None:
    """Idle, it reads the end of the pipe; stuck in a publish, its watcher sees the parent go."""
    done = _run_parent(sent, behaviour)
    child = int(done.stderr.decode().rsplit("child=", 1)[1].split()[0])
    _wait_gone(child, timeout_s=5.0)


def _wait_gone(pid: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state == "Z":  # exited, waiting for its parent to reap it
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still running after {timeout_s} s")


def test_merge_adds_counts_and_combines_minimum_and_maximum() -> None:
    metrics = Metrics()
    metrics.incr("alerts.sent", 3)
    metrics.observe_ms("sns.publish", 5.0)
    child = Metrics()
    child.incr("alerts.sent", 4)
    child.observe_ms("sns.publish", 2.0)
    child.observe_ms("sns.publish", 9.0)
    metrics.merge(child.snapshot_and_reset())
    assert metrics.get("alerts.sent") == 7
    assert metrics.get("sns.publish.count") == 3
    assert metrics.get("sns.publish.total_ms") == 16.0
    assert metrics.get("sns.publish.min_ms") == 2.0
    assert metrics.get("sns.publish.max_ms") == 9.0
    fresh = Metrics()
    fresh.merge({"sns.publish.count": 1, "sns.publish.min_ms": 4.0, "sns.publish.max_ms": 4.0})
    assert fresh.get("sns.publish.min_ms") == 4.0  # nothing of its own to compare with
