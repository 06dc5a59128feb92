"""Shared fixtures: fake AWS credentials so no test can reach a real account; a real
redis-server; one labelled file and one model trained on it (the model and load-test tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis


@pytest.fixture(autouse=True)
def _fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for key in list(os.environ):
        if key.startswith("AWS_ENDPOINT_URL"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server (installed by scripts/setup.sh) on a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path_factory.mktemp("redis"),
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                server.kill()
                raise
            time.sleep(0.05)
    yield url
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(autouse=True, scope="session")
def _quiet_json_logs() -> None:
    """Processor logs as in production (JSON on stderr), at warning level to keep output short."""
    from consumer.infra.logs import configure_logging

    configure_logging("warning")


@pytest.fixture(scope="session")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6,000 realistic records: labels independent of the rules, frauds the rules miss."""
    from load_test.labelled import write_labelled

    path = tmp_path_factory.mktemp("labelled") / "labelled.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        write_labelled(handle, 6000, rate=3.0, accounts=300, seed=5, realistic=True)
    return path


@pytest.fixture(scope="session")
def model_dir(labelled: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on `labelled` (LightGBM imported only by the tests that ask for it)."""
    from consumer.model.train import train

    out = tmp_path_factory.mktemp("model") / "model"
    train(labelled, out, holdout_fraction=0.25)
    return out
