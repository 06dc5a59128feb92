"""The label pickup against a real moto server (S3 over the network, as the worker reaches it
locally) and a real redis-server: a dropped file is applied in one poll, once; a changed file
again; two pickups racing apply it once; bad lines are rejected, reported and written out."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from botocore.config import Config

from consumer.infra.metrics import METRICS
from consumer.labels.pickup import DONE_KEY, LabelPickup, claim_key
from consumer.settings.config import load_settings
from consumer.state.labels import LabelStore, merchant_labels_key
from consumer.worker.labels_pickup import LabelPickupThread, _pickup
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration

BUCKET = "fraud-out"
PREFIX = "env1/"
CREDS: dict[str, Any] = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
HEADER = "transaction_id,is_fraud,labelled_at,account_id,merchant_id,event_time\n"


def rows(start: int, count: int, fraud: int = 1, at: str = "2025-12-01T10:00:00Z") -> str:
    return "".join(
        f"t{i},{fraud},{at},acct-{i:08d},m{i % 4},2025-11-30T10:00:00Z\n"
        for i in range(start, start + count)
    )


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    binary = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    port = free_port()
    server = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=url, **CREDS)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.list_buckets()
            break
        except Exception:
            if time.monotonic() > deadline:
                server.kill()
                raise
            time.sleep(0.1)
    yield url
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def s3(moto_url: str) -> Iterator[Any]:
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=moto_url,
        config=Config(retries={"max_attempts": 1}),
        **CREDS,
    )
    client.create_bucket(Bucket=BUCKET)
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def pickup(s3: Any, conn: redis.Redis, owner: str = "w1") -> LabelPickup:
    return LabelPickup(s3, conn, BUCKET, PREFIX, owner=owner)


def stored_count(conn: redis.Redis) -> int:
    return sum(conn.hlen(merchant_labels_key(f"m{m}")) for m in range(4))


def test_a_dropped_file_is_applied_in_one_poll_and_only_once(
    s3: Any, redis_conn: redis.Redis
) -> None:
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}labels/cb-1.csv", Body=HEADER + rows(0, 1200))
    files_before = METRICS.get("labels.files_applied")
    first = pickup(s3, redis_conn).poll_once()
    assert first.applied == [f"{PREFIX}labels/cb-1.csv"]
    assert first.results[f"{PREFIX}labels/cb-1.csv"].applied.applied == 1200
    assert stored_count(redis_conn) == 1200
    assert METRICS.get("labels.files_applied") - files_before == 1
    assert redis_conn.hget(DONE_KEY, f"{PREFIX}labels/cb-1.csv") is not None
    assert redis_conn.keys("fs:labels:claim:*") == []
    # The same file, unchanged: not read again.
    again = pickup(s3, redis_conn).poll_once()
    assert (again.applied, again.skipped_done) == ([], 1)


def test_a_changed_file_is_applied_again(s3: Any, redis_conn: redis.Redis) -> None:
    key = f"{PREFIX}labels/analyst.jsonl.gz"
    line = {
        "transaction_id": "t1",
        "is_fraud": True,
        "labelled_at": "2025-12-01T10:00:00Z",
        "account_id": "acct-1",
        "merchant_id": "m1",
        "event_time": "2025-11-30T10:00:00Z",
    }
    s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(json.dumps(line).encode()))
    assert pickup(s3, redis_conn).poll_once().applied == [key]
    reversed_line = {**line, "is_fraud": False, "labelled_at": "2025-12-03T10:00:00Z"}
    body = (json.dumps(line) + "\n" + json.dumps(reversed_line) + "\n").encode()
    s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(body))
    result = pickup(s3, redis_conn).poll_once()
    assert result.applied == [key]
    assert (result.results[key].applied.applied, result.results[key].applied.unchanged) == (1, 1)
    mark: Any = redis_conn.hget(merchant_labels_key("m1"), "t1")
    assert mark is not None and mark.endswith(b"|0")


def test_two_pickups_racing_apply_a_file_once(s3: Any, redis_conn: redis.Redis) -> None:
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}labels/big.csv", Body=HEADER + rows(0, 5000))
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}labels/small.csv", Body=HEADER + rows(9000, 10))
    racers = [
        LabelPickup(
            s3,
            redis.Redis.from_url(_url(redis_conn)),
            BUCKET,
            PREFIX,
            owner=f"w{i}",
            store=LabelStore(redis.Redis.from_url(_url(redis_conn))),
        )
        for i in range(4)
    ]
    results: list[Any] = [None] * len(racers)
    barrier = threading.Barrier(len(racers))

    def race(i: int) -> None:
        barrier.wait()
        results[i] = racers[i].poll_once()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(racers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    applied = [key for r in results for key in r.applied]
    assert sorted(applied) == [f"{PREFIX}labels/big.csv", f"{PREFIX}labels/small.csv"]
    assert stored_count(redis_conn) == 5010
    skipped = sum(r.skipped_claimed + r.skipped_done for r in results)
    assert skipped == 2 * len(racers) - 2


def test_a_claim_held_by_another_is_skipped_until_it_expires(
    s3: Any, redis_conn: redis.Redis
) -> None:
    key = f"{PREFIX}labels/held.csv"
    s3.put_object(Bucket=BUCKET, Key=key, Body=HEADER + rows(0, 3))
    redis_conn.set(claim_key(key), "someone-else", ex=60)
    assert pickup(s3, redis_conn).poll_once().skipped_claimed == 1
    redis_conn.delete(claim_key(key))  # the holder died: its claim expired
    assert pickup(s3, redis_conn).poll_once().applied == [key]


def test_bad_lines_are_rejected_and_good_ones_applied(
    s3: Any, redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    logged_lines: list[dict[str, Any]] = []

    class Recorder:
        def _record(self, event: str, **fields: Any) -> None:
            logged_lines.append({"event": event, **fields})

        warning = info = _record

    monkeypatch.setattr("consumer.labels.pickup.log", Recorder())
    key = f"{PREFIX}labels/2025-12/mixed.csv"
    bad = "t-bad,maybe,2025-12-01T10:00:00Z,acct-99999999,m1,2025-11-30T10:00:00Z\n"
    body = HEADER + rows(0, 2) + bad * 30 + "x\n" + rows(2, 2)
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    rejected_before = METRICS.get("labels.lines_rejected")
    result = pickup(s3, redis_conn).poll_once()
    assert result.results[key].applied.applied == 4
    assert result.results[key].bad_lines == 31
    assert METRICS.get("labels.lines_rejected") - rejected_before == 31
    rejects = s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}labels-rejected/2025-12/mixed.csv.jsonl")
    lines = [json.loads(x) for x in rejects["Body"].read().decode().splitlines()]
    assert len(lines) == 31
    assert lines[0] == {"where": "2025-12/mixed.csv:4", "reason": lines[0]["reason"]}
    assert lines[0]["reason"].startswith("is_fraud")
    assert lines[-1]["reason"].startswith("1 columns")
    logged = [x for x in logged_lines if x["event"] == "labels_bad_line"]
    assert len(logged) == 20
    assert all("acct-99999999" not in json.dumps(x) for x in logged_lines)
    events = {x["event"] for x in logged_lines}
    assert {"labels_bad_lines_capped", "labels_file_applied"} <= events


def test_failures_are_counted_and_backed_off_never_raised(redis_conn: redis.Redis) -> None:
    dead_s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    thread = LabelPickupThread(lambda: pickup(dead_s3, redis_conn), 30.0, first_wait_s=0)
    failures_before = METRICS.get("labels.pickup_failures")
    thread.poll()
    thread.poll()
    assert thread.failures == 2
    assert METRICS.get("labels.pickup_failures") - failures_before == 2
    assert thread.next_wait_s() == 120.0
    for _ in range(10):
        thread.poll()
    assert thread.next_wait_s() == 600.0


def test_the_thread_applies_a_file_within_a_poll(
    s3: Any, redis_conn: redis.Redis, redis_url: str, moto_url: str
) -> None:
    settings = load_settings(
        {
            "FRAUD_BUCKET": BUCKET,
            "FRAUD_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:t",
            "FRAUD_PREFIX": PREFIX,
            "REDIS_URL": redis_url,
            "FRAUD_LABELS_POLL_S": "0.2",
        }
    )
    key = f"{PREFIX}labels/live.csv"
    s3.put_object(Bucket=BUCKET, Key=key, Body=HEADER + rows(0, 7))
    thread = LabelPickupThread(
        lambda: _pickup(settings, s3, redis.Redis.from_url(redis_url)), 0.2, first_wait_s=0
    ).start()
    try:
        deadline = time.monotonic() + 10
        while stored_count(redis_conn) < 7 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stored_count(redis_conn) == 7
    finally:
        thread.stop()
    assert thread.failures == 0


def _url(conn: redis.Redis) -> str:
    kwargs = conn.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/0"


def test_one_object_s3_refuses_does_not_hold_up_the_others(
    s3: Any, redis_conn: redis.Redis
) -> None:
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}labels/a.csv", Body=HEADER + rows(0, 3))
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}labels/b.csv", Body=HEADER + rows(3, 3))

    class DeletedAfterListing:
        def __getattr__(self, name: str) -> Any:
            return getattr(s3, name)

        def get_object(self, Bucket: str, Key: str) -> Any:
            if Key.endswith("a.csv"):
                return s3.get_object(Bucket=Bucket, Key=Key + ".gone")
            return s3.get_object(Bucket=Bucket, Key=Key)

    failures_before = METRICS.get("labels.file_failures")
    result = pickup(DeletedAfterListing(), redis_conn).poll_once()
    assert result.failed == [f"{PREFIX}labels/a.csv"]
    assert result.applied == [f"{PREFIX}labels/b.csv"]
    assert METRICS.get("labels.file_failures") - failures_before == 1
    assert redis_conn.keys("fs:labels:claim:*") == []
    # The next poll (S3 answering again) takes it up.
    assert pickup(s3, redis_conn).poll_once().applied == [f"{PREFIX}labels/a.csv"]
