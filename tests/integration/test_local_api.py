"""`fraudstream local up --api`: the scoring API on the local stack, with the dev key it mints
and prints; `local down` stops it with the rest."""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from consumer.local.stack import StackOptions, read_env_file, running_pids
from tests.integration.conftest import cli, free_port

pytestmark = pytest.mark.integration


def _call(url: str, key: str | None = None, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_local_up_api_answers_with_the_printed_key_and_down_stops_it(tmp_path: Path) -> None:
    state = tmp_path / ".fraudstream"
    ports = {
        "--kinesis-port": free_port(),
        "--kinesis-tls-port": free_port(),
        "--moto-port": free_port(),
        "--redis-port": free_port(),
    }
    args = ["--state-dir", str(state)]
    for flag, port in ports.items():
        args += [flag, str(port)]
    api_port = free_port()
    options = StackOptions(state_dir=state)
    started = cli("local", "up", "--api", "--api-port", str(api_port), "--shards", "1", *args)
    try:
        assert started.returncode == 0, started.stderr[-4000:]
        printed = re.search(r"Bearer (fsk_[A-Za-z0-9_-]+)", started.stdout)
        assert printed, started.stdout
        key = printed.group(1)
        url = f"http://127.0.0.1:{api_port}"
        assert f"{url}/v1/score" in started.stdout
        env = read_env_file(options)
        assert env["FRAUD_API_URL"] == url and env["FRAUD_API_KEY"] == key
        assert (state / "api-key").read_text().strip() == key
        assert "api" in running_pids(options)

        status, ready = _call(f"{url}/readyz")
        assert status == 200 and ready["ready"] is True
        record = {"transaction_id": "la-1", "account_id": "acct-la", "amount": 20000,
                  "timestamp": 1795910300000}  # fmt: skip
        status, answer = _call(f"{url}/v1/score", key, json.dumps(record).encode())
        assert status == 200, answer
        assert answer["flagged"] is True and answer["reasons"][0]["rule"] == "high_amount"
        assert _call(f"{url}/v1/score", "fsk_not-the-key", b"{}")[0] == 401
    finally:
        stopped = cli("local", "down", *args)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped api" in stopped.stderr
    assert running_pids(options) == {}
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", api_port)) != 0
