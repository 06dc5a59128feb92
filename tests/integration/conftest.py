"""The local stack for integration tests, started by the project's own command.

One stack per test session on free ports, in a temporary state directory, torn down by
`fraudstream local down` whatever happens. The tests talk to the servers over the network, the
way the daemon does.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from consumer.local.stack import (
    StackOptions,
    down,
    read_env_file,
    running_pids,
    stack_client,
    start_worker,
    up,
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "consumer.cli", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Stack:
    options: StackOptions
    port_args: list[str]
    env: dict[str, str]

    def kill_worker(self, index: int = 1) -> None:
        """SIGKILL a worker's daemon and its processors: no flush, no checkpoint, no goodbye."""
        pid = running_pids(self.options)[f"worker-{index}"]
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while f"worker-{index}" in running_pids(self.options) and time.monotonic() < deadline:
            time.sleep(0.1)

    def start_worker(self, index: int = 1) -> None:
        start_worker(self.options, index, self.env)

    def client(self, service: str) -> Any:
        return stack_client(self.env, service)


@contextmanager
def stack_started_by_the_cli(state_dir: Path, worker_env: dict[str, str]) -> Iterator[Stack]:
    """`fraudstream local up` (1 worker, 2 shards) on free ports in `state_dir`, the way a person
    starts it; `local down` afterwards, whatever happens, and nothing left running."""
    ports = {
        "--kinesis-port": free_port(),
        "--kinesis-tls-port": free_port(),
        "--moto-port": free_port(),
        "--redis-port": free_port(),
    }
    port_args = ["--state-dir", str(state_dir)]
    for flag, port in ports.items():
        port_args += [flag, str(port)]
    started = cli("local", "up", "--workers", "1", "--shards", "2", *port_args, env=worker_env)
    options = StackOptions(
        state_dir=state_dir,
        kinesis_port=ports["--kinesis-port"],
        kinesis_tls_port=ports["--kinesis-tls-port"],
        moto_port=ports["--moto-port"],
        redis_port=ports["--redis-port"],
        worker_env=worker_env,
    )
    try:
        assert started.returncode == 0, started.stderr[-4000:] + _worker_log_tail(state_dir)
        yield Stack(options, port_args, read_env_file(options))
    finally:
        stopped = cli("local", "down", *port_args)
        assert stopped.returncode == 0, stopped.stderr
        assert running_pids(options) == {}


@contextmanager
def stack_started_in_process(
    state_dir: Path,
    worker_env: dict[str, str],
    workers: int = 1,
    redis_port: int | None = None,
    moto_port: int | None = None,
) -> Iterator[Stack]:
    """The local stack started by `consumer.local.stack.up` in this process, on free ports
    (or the given ones, when a test puts a proxy in front of them); `down` whatever happens."""
    options = StackOptions(
        state_dir=state_dir,
        kinesis_port=free_port(),
        kinesis_tls_port=free_port(),
        moto_port=moto_port or free_port(),
        redis_port=redis_port or free_port(),
        workers=workers,
        shards=2,
        worker_env=worker_env,
    )
    try:
        yield Stack(options, [], up(options))
    finally:
        down(options)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Flush by age quickly so the test does not wait for the production default.
    # Metrics every 2 s into moto's CloudWatch, so a test sees them without waiting a minute.
    worker_env = {
        "FRAUD_FLUSH_MAX_AGE_S": "2",
        "FRAUD_FLUSH_MAX_RECORDS": "50",
        "FRAUD_METRICS_INTERVAL_S": "2",
    }
    with stack_started_by_the_cli(
        tmp_path_factory.mktemp("stack") / ".fraudstream", worker_env
    ) as s:
        yield s


def _worker_log_tail(state_dir: Path) -> str:
    logs = sorted((state_dir / "logs").glob("worker-*.log"))
    return "".join(log.read_text()[-4000:] for log in logs)
