"""`local up --api`: the supervisor restarts the API like a worker; `down` stops it after the
supervisor and before the workers; the dev key and port rules."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sys
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from consumer.local import stack
from consumer.local.stack import StackError, StackOptions, Supervisor, running_pids

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


@pytest.fixture
def options(tmp_path: Path) -> Iterator[StackOptions]:
    options = StackOptions(state_dir=tmp_path, workers=1, api=True, max_restarts=2)
    try:
        yield options
    finally:
        for pid in running_pids(options).values():
            os.killpg(pid, signal.SIGKILL)


def test_a_dead_api_is_restarted_and_workers_are_left_alone(options: StackOptions) -> None:
    started: list[str] = []

    def fake_api(options: StackOptions, env: Mapping[str, str]) -> int:
        started.append("api")
        return stack._start(options, "api", SLEEPER, os.environ)

    stack._start(options, "worker-1", SLEEPER, os.environ)
    said: list[str] = []
    supervisor = Supervisor(options, {}, start=lambda *_: 0, start_api=fake_api, say=said.append)
    supervisor.check()
    assert started == []  # seen dead once: a poll's grace
    supervisor.check()
    assert started == ["api"] and "api" in running_pids(options)
    assert supervisor.restarted[0][0] == "api"
    assert any("api had exited; restarted it" in line for line in said)
    supervisor.check()
    assert started == ["api"]  # alive now: left alone


def test_without_api_the_supervisor_never_starts_one(options: StackOptions) -> None:
    started: list[str] = []
    supervisor = Supervisor(
        replace(options, api=False),
        {},
        start=lambda *_: 0,
        start_api=lambda *_: started.append("api") or 0,
        say=lambda _: None,
    )
    supervisor.check()
    supervisor.check()
    assert started == []


def test_down_stops_the_api_before_the_workers(options: StackOptions) -> None:
    for name in ("redis", "worker-1", "api", "supervisor"):
        stack._start(options, name, SLEEPER, os.environ)
    assert stack.down(options) == ["supervisor", "api", "worker-1", "redis"]
    assert running_pids(options) == {}


def test_the_dev_key_is_stored_hashed_beside_the_key(options: StackOptions) -> None:
    key = stack.mint_api_key(options)
    assert key.startswith("fsk_") and len(key) > 40
    document = json.loads(options.api_keys_document.read_text())
    assert document == {
        "keys": [{"id": "local-dev", "sha256": hashlib.sha256(key.encode()).hexdigest()}]
    }
    assert options.api_key_file.read_text().strip() == key
    assert options.api_key_file.stat().st_mode & 0o077 == 0
    assert stack.mint_api_key(options) != key  # a new one at every start


def test_api_port_default_when_free_else_free_and_an_explicit_one_must_be_free(
    options: StackOptions,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StackError, match="--api-port"):
            stack.choose_api_port(replace(options, api_port=port))
    chosen = stack.choose_api_port(options)
    assert chosen == stack.DEFAULT_API_PORT or chosen > 0
