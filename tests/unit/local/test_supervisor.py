"""`fraudstream local up`'s supervisor: a worker process that dies is started again, a bounded
number of times, with a line each time; `down` stops the supervisor before the workers."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from consumer.local import stack
from consumer.local.stack import StackOptions, Supervisor, running_pids

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def fake_worker(options: StackOptions, index: int, env: Mapping[str, str]) -> int:
    """A stand-in for the KCL daemon: a process recorded as worker-N, as start_worker does."""
    return stack._start(options, f"worker-{index}", SLEEPER, os.environ)


def kill(options: StackOptions, name: str) -> None:
    """SIGKILL the worker's process group, as a crash (or the OOM killer) would."""
    pid = running_pids(options)[name]
    os.killpg(pid, signal.SIGKILL)
    # Gone when the name no longer maps to that pid: absent, or already restarted by a
    # supervisor polling faster than this loop (on a loaded machine it can be first).
    deadline = time.monotonic() + 10
    while running_pids(options).get(name) == pid and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running_pids(options).get(name) != pid


@pytest.fixture
def options(tmp_path: Path) -> Iterator[StackOptions]:
    options = StackOptions(state_dir=tmp_path, workers=2, max_restarts=2, restart_window_s=60)
    try:
        yield options
    finally:
        for pid in running_pids(options).values():
            os.killpg(pid, signal.SIGKILL)


def wait_until(condition: object, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.05)
    assert condition(), "timed out"  # type: ignore[operator]


def test_a_killed_worker_is_restarted_with_a_log_line(options: StackOptions) -> None:
    said: list[str] = []
    fake_worker(options, 1, {})
    fake_worker(options, 2, {})
    first = running_pids(options)["worker-1"]
    supervisor = Supervisor(options, {}, start=fake_worker, say=said.append)
    stop = threading.Event()
    thread = threading.Thread(target=supervisor.run, args=(stop, 0.05))
    thread.start()
    try:
        kill(options, "worker-1")
        wait_until(lambda: "worker-1" in running_pids(options))
    finally:
        stop.set()
        thread.join(5)
    restarted = running_pids(options)["worker-1"]
    assert restarted != first
    assert supervisor.restarted == [("worker-1", restarted)]
    assert any(f"worker-1 had exited; restarted it as pid {restarted}" in line for line in said)
    assert "worker-2" in running_pids(options)  # the other one left alone


def test_restarts_are_bounded_per_window(options: StackOptions) -> None:
    now = [0.0]
    said: list[str] = []
    started: list[int] = []

    def start(options: StackOptions, index: int, env: Mapping[str, str]) -> int:
        started.append(index)
        return 1000 + len(started)  # never alive: dies at once, again and again

    supervisor = Supervisor(options, {}, start=start, say=said.append, clock=lambda: now[0])
    for _ in range(12):
        supervisor.check()
        now[0] += 1
    # Two workers, each restarted max_restarts (2) times, then left dead, said once each.
    assert started.count(1) == 2 and started.count(2) == 2
    assert supervisor.given_up == {"worker-1", "worker-2"}
    assert sum("not restarting it again" in line for line in said) == 2
    # After the window, a worker given up on stays so: a person looks at its log first.
    now[0] += 120
    supervisor.check()
    assert len(started) == 4


def test_a_worker_seen_dead_once_is_not_restarted_yet(options: StackOptions) -> None:
    started: list[int] = []

    def start(options: StackOptions, index: int, env: Mapping[str, str]) -> int:
        started.append(index)
        return 1

    supervisor = Supervisor(options, {}, start=start, say=lambda _: None)
    supervisor.check()
    assert started == []  # a person restarting it by hand gets a poll's time first
    supervisor.check()
    assert sorted(started) == [1, 2]


def test_start_worker_returns_the_running_one_instead_of_a_second(
    options: StackOptions,
) -> None:
    pid = fake_worker(options, 1, {})
    assert stack.start_worker(options, 1, {}) == pid
    assert list(running_pids(options)) == ["worker-1"]


def test_down_stops_the_supervisor_before_the_workers(options: StackOptions) -> None:
    stack._start(options, "redis", SLEEPER, os.environ)
    fake_worker(options, 1, {})
    stack._start(options, "supervisor", SLEEPER, os.environ)
    assert stack.down(options) == ["supervisor", "worker-1", "redis"]
    assert running_pids(options) == {}


def test_the_supervisor_process_reads_its_settings_and_stops_on_sigterm(
    options: StackOptions,
) -> None:
    # No worker is ever dead here (the workers are 0), so nothing real is started.
    options = StackOptions(state_dir=options.state_dir, workers=0)
    stack.write_env_file(options, stack.stack_env(options))
    pid = stack.start_supervisor(options)
    log = options.logs / "supervisor.log"
    wait_until(lambda: log.exists() and "supervising 0 worker(s)" in log.read_text())
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: "supervisor" not in running_pids(options))
    assert "supervisor stopped" in log.read_text()
