"""`fraudstream serve` over real HTTP: a real server process, a real redis-server, state written
by the workers' own store, and the answers the stream would give."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis

from consumer.api.app import MAX_RECORD_BYTES
from consumer.api.keys import hash_key
from consumer.records import Transaction, parse_transaction
from consumer.settings.config import StateConfig
from consumer.state.store import AccountStateStore

KEY = "fsk_test-key-for-the-api"
SLOW_KEY = "fsk_slow-key-for-the-api"
T0 = 1795910300000  # epoch ms


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        key: str | None = KEY,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        conn.request(method, path, body=body, headers=sent)
        reply = conn.getresponse()
        raw = reply.read()
        conn.close()
        answer = json.loads(raw) if raw else None
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, answer

    def score(self, record: dict[str, Any], path: str = "/v1/score") -> tuple[int, Any]:
        status, _, answer = self.request("POST", path, json.dumps(record).encode())
        return status, answer


def start_server(tmp: Path, env: dict[str, str]) -> Server:
    keys = tmp / "keys.json"
    if not keys.exists():
        keys.write_text(
            json.dumps(
                {
                    "keys": [
                        {"id": "test", "sha256": hash_key(KEY)},
                        {"id": "slow", "sha256": hash_key(SLOW_KEY), "rate_per_s": 0.1, "burst": 2},
                    ]
                }
            )
        )
    port = free_port()
    log = tmp / f"api-{port}.log"
    full_env = {
        **os.environ,
        "FRAUD_API_KEYS_FILE": str(keys),
        "FRAUD_METRICS_ENABLED": "false",
        **env,
    }
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "consumer.cli", "serve", "--port", str(port)],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    server = Server(port, process, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            if server.request("GET", "/healthz", key=None)[0] == 200:
                return server
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the API did not start: {log.read_text()[-3000:]}")
        time.sleep(0.1)


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="module")
def api(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("api"), {"REDIS_URL": redis_url})
    yield server
    stop_server(server)


def txn(
    tid: str, account: str = "acct-1", amount: Any = 25, at_ms: int = T0, **more: Any
) -> dict[str, Any]:
    return {
        "transaction_id": tid,
        "account_id": account,
        "amount": amount,
        "timestamp": at_ms,
        **more,
    }


def stream(
    redis_conn: redis.Redis, records: list[dict[str, Any]], first_sequence: int = 1000
) -> None:
    """Write records to the state as a worker would: the store's load, add, save."""
    store = AccountStateStore(redis_conn, StateConfig(), Decimal(86400))
    items = []
    for offset, record in enumerate(records):
        parsed = parse_transaction(json.dumps(record).encode())
        assert isinstance(parsed, Transaction)
        items.append(((first_sequence + offset, 0), parsed))
    view = store.load(items)
    for position, parsed in items:
        view.add(parsed, position)
    store.save(view)


def everything(redis_conn: redis.Redis) -> dict[bytes, Any]:
    return {key: redis_conn.dump(key) for key in redis_conn.scan_iter()}


def test_clean_and_flagged_with_state_from_the_store_and_nothing_written(
    api: Server, redis_conn: redis.Redis
) -> None:
    # Three earlier transactions of the account within a minute: a fourth is velocity.
    stream(redis_conn, [txn(f"s-{i}", at_ms=T0 + i * 1000) for i in range(3)])
    before = everything(redis_conn)
    assert before
    status, clean = api.score(txn("a-1", account="acct-2"))
    assert status == 200
    assert clean["flagged"] is False and clean["reasons"] == [] and clean["severity"] is None
    assert clean["rules_version"] == "builtin" and clean["latency_ms"] > 0
    status, fast = api.score(txn("a-2", at_ms=T0 + 5000))
    assert status == 200 and fast["flagged"] is True
    assert [r["rule"] for r in fast["reasons"]] == ["velocity"] and fast["severity"] == "medium"
    status, big = api.score(txn("a-3", account="acct-3", amount=20000))
    assert big["flagged"] and big["severity"] == "high"
    assert big["reasons"] == [{"rule": "high_amount", "detail": "amount 20000 USD > 10000"}]
    # The same transaction again is judged the same: nothing of the first call was kept.
    assert api.score(txn("a-2", at_ms=T0 + 5000))[1]["reasons"] == fast["reasons"]
    # An id the stream has seen is a duplicate to it: not judged.
    status, dup = api.score(txn("s-1", at_ms=T0 + 1000, amount=99999))
    assert status == 200 and dup["duplicate"] is True and dup["flagged"] is False
    assert everything(redis_conn) == before


def test_errors_are_json_with_the_dead_letters_reason(api: Server) -> None:
    status, headers, answer = api.request("POST", "/v1/score", b'{"transaction_id": "x"}')
    assert status == 400 and answer["reason"] == "account_id: missing"
    assert answer["request_id"] == headers["x-request-id"]
    assert (
        api.request("POST", "/v1/score", b"[1]")[2]["reason"] == "not a JSON object: got an array"
    )
    future = txn("f-1", at_ms=int(time.time() * 1000) + 3 * 86400 * 1000)
    status, answer = api.score(future)
    assert status == 400 and "lies more than 86400 s after" in answer["reason"]
    status, _, answer = api.request("POST", "/v1/score", b"x" * (MAX_RECORD_BYTES + 1))
    assert status == 413 and answer["error"] == "too_large"
    assert api.request("POST", "/v1/nothing", b"{}")[0] == 404
    assert api.request("GET", "/v1/score")[0] == 405
    status, headers, answer = api.request("POST", "/v1/score", b"{}", key=None)
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    assert api.request("POST", "/v1/score", b"{}", key="fsk_wrong")[0] == 401
    assert "Traceback" not in json.dumps(answer)


def test_rate_limit_answers_429_with_retry_after(api: Server) -> None:
    statuses = [api.request("POST", "/v1/score", json.dumps(txn(f"r-{i}")).encode(), key=SLOW_KEY)
                for i in range(3)]  # fmt: skip
    assert [s[0] for s in statuses] == [200, 200, 429]
    assert int(statuses[2][1]["retry-after"]) >= 1


def test_request_id_is_echoed_and_in_the_log_line(api: Server) -> None:
    status, headers, _ = api.request(
        "GET", "/healthz", key=None, headers={"X-Request-Id": "req-abc-123"}
    )
    assert status == 200 and headers["x-request-id"] == "req-abc-123"
    time.sleep(0.2)
    lines = [json.loads(line) for line in api.log.read_text().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("request_id") == "req-abc-123"]
    assert mine and mine[-1]["event"] == "api_request" and mine[-1]["status"] == 200


def test_batch_judges_the_good_and_reports_the_bad(api: Server, redis_conn: redis.Redis) -> None:
    good = json.dumps(txn("b-1", account="acct-9", amount=20000)).encode()
    clean = json.dumps(txn("b-3", account="acct-9")).encode()
    body = b'{"transactions": [' + good + b', {"transaction_id": "b-2"}, ' + clean + b"]}"
    status, _, answer = api.request("POST", "/v1/score:batch", body)
    assert status == 200
    results = answer["results"]
    assert [r["status"] for r in results] == [200, 400, 200]
    assert results[0]["decision"]["reasons"][0]["rule"] == "high_amount"
    assert results[1]["error"] == "account_id: missing"
    assert results[2]["decision"]["flagged"] is False
    too_many = json.dumps({"transactions": [txn(f"m-{i}") for i in range(501)]}).encode()
    assert api.request("POST", "/v1/score:batch", too_many)[0] == 413
    assert redis_conn.dbsize() == 0


def test_openapi_is_served_without_a_key_and_is_the_docs_file(api: Server) -> None:
    status, _, answer = api.request("GET", "/openapi.json", key=None)
    repo = Path(__file__).resolve().parents[2]
    assert status == 200 and answer == json.loads((repo / "docs/openapi.json").read_text())


def test_readyz_follows_redis(tmp_path: Path) -> None:
    port = free_port()
    redis_server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    server = start_server(tmp_path, {"REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    try:
        deadline = time.monotonic() + 10
        while server.request("GET", "/readyz", key=None)[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        redis_server.terminate()
        redis_server.wait(timeout=10)
        status, _, answer = server.request("GET", "/readyz", key=None)
        assert status == 503 and answer["ready"] is False and answer["redis"] is False
        assert server.request("GET", "/healthz", key=None)[0] == 200
        status, _, answer = server.request("POST", "/v1/score", json.dumps(txn("d-1")).encode())
        assert status == 500 and answer["error"] == "internal" and "Traceback" not in str(answer)
    finally:
        stop_server(server)
        if redis_server.poll() is None:
            redis_server.kill()


def test_the_model_scores_and_names_its_version(
    redis_url: str, model_dir: Path, tmp_path: Path
) -> None:
    server = start_server(tmp_path, {"REDIS_URL": redis_url, "FRAUD_MODEL_DIR": str(model_dir)})
    try:
        status, answer = server.score(
            txn("m-1", account="acct-m", merchant_id="m-1", channel="online")
        )
        assert status == 200
        assert answer["model_version"] and 0 <= answer["model_score"] <= 100
        assert (
            server.request("GET", "/readyz", key=None)[2]["model_version"]
            == answer["model_version"]
        )
    finally:
        stop_server(server)


def test_a_new_rule_set_version_is_picked_up(redis_url: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text('version: "v1"\nrules:\n  high_amount:\n    threshold: "10000"\n')
    env = {"REDIS_URL": redis_url, "FRAUD_RULESET": str(rules), "FRAUD_RULESET_CHECK_S": "0.2"}
    server = start_server(tmp_path, env)
    try:
        status, answer = server.score(txn("h-1", account="acct-h", amount=600))
        assert status == 200 and answer["rules_version"] == "v1" and answer["flagged"] is False
        staged = tmp_path / "rules.staged"
        staged.write_text('version: "v2"\nrules:\n  high_amount:\n    threshold: "500"\n')
        os.replace(staged, rules)
        deadline = time.monotonic() + 10
        while answer["rules_version"] != "v2":
            assert time.monotonic() < deadline
            time.sleep(0.3)
            _, answer = server.score(txn("h-1", account="acct-h", amount=600))
        assert answer["flagged"] is True and answer["reasons"][0]["rule"] == "high_amount"
        assert not (tmp_path / "rules.yaml.last-good.json").exists()  # the API never writes it
    finally:
        stop_server(server)


def test_ingest_puts_the_record_on_the_stream(redis_url: str, tmp_path: Path) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        kinesis = boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1")
        kinesis.create_stream(StreamName="txns", ShardCount=1)
        env = {"REDIS_URL": redis_url, "FRAUD_STREAM": "txns", "AWS_ENDPOINT_URL_KINESIS": endpoint}
        server = start_server(tmp_path, env)
        try:
            # The bytes as sent go onto the stream: 12.50 keeps its two places.
            record = (
                b'{"transaction_id": "i-1", "account_id": "acct-i", "amount": 12.50,'
                b' "timestamp": 1795910300000}'
            )
            status, _, answer = server.request("POST", "/v1/score?ingest=true", record)
            assert status == 200, answer
            ingested = answer["ingested"]
            shard = ingested["shard_id"]
            iterator = kinesis.get_shard_iterator(
                StreamName="txns", ShardId=shard, ShardIteratorType="AT_SEQUENCE_NUMBER",
                StartingSequenceNumber=ingested["sequence_number"],
            )["ShardIterator"]  # fmt: skip
            got = kinesis.get_records(ShardIterator=iterator, Limit=1)["Records"][0]
            assert got["Data"] == record and got["PartitionKey"] == "acct-i"
            status, _, answer = server.request("POST", "/v1/transactions", record)
            assert (
                status == 200
                and answer["ingested"]["sequence_number"] != ingested["sequence_number"]
            )
        finally:
            stop_server(server)
    finally:
        moto.stop()
