"""`fraudstream labels import`: a file or an S3 object into the worker's Redis, a summary, the
exit codes, progress on stderr."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import redis
from moto import mock_aws

from consumer.cli import common, main
from consumer.state.labels import merchant_labels_key

HEADER = "transaction_id,is_fraud,labelled_at,account_id,merchant_id,event_time\n"
ROWS = "".join(
    f"t{i},{i % 2},2025-12-01T10:00:00Z,acct-{i:08d},m{i % 3},2025-11-30T10:00:00Z\n"
    for i in range(1200)
)


@pytest.fixture
def redis_env(redis_conn: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.delenv("FRAUD_REDIS_CLUSTER", raising=False)


@pytest.fixture
def s3() -> Iterator[object]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="lab")
        yield client


def test_imports_a_csv_file_with_a_summary(
    tmp_path: Path, redis_env: None, redis_conn: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "chargebacks.csv"
    path.write_text(HEADER + ROWS + "bad,maybe,x,a,m,y\n")
    assert main(["labels", "import", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "applied           1,200" in out
    assert "bad lines         1" in out
    assert "chargebacks.csv:1202: is_fraud" in out
    assert sum(redis_conn.hlen(merchant_labels_key(f"m{m}")) for m in range(3)) == 1200
    # Again: nothing changes, still exit 0.
    assert main(["labels", "import", str(path), "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["applied"], summary["unchanged"], summary["bad_lines"]) == (0, 1200, 1)
    assert summary["first_bad"][0]["where"] == "chargebacks.csv:1202"


def test_imports_from_s3_gzipped_jsonl(
    s3: object, redis_env: None, redis_conn: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    line = {
        "transaction_id": "t1",
        "is_fraud": True,
        "labelled_at": 1764583200000,
        "account_id": "a",
        "event_time": 1764540000000,
        "merchant_id": "m9",
    }
    body = gzip.compress((json.dumps(line) + "\n").encode())
    s3.put_object(Bucket="lab", Key="in/x.jsonl.gz", Body=body)  # type: ignore[attr-defined]
    assert main(["labels", "import", "s3://lab/in/x.jsonl.gz", "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["applied"] == 1
    assert redis_conn.hexists(merchant_labels_key("m9"), "t1")


@pytest.mark.parametrize("source", ["s3://", "s3://lab/", "s3://lab/missing.csv", "s3://nob/k"])
def test_a_bad_s3_location_is_exit_2(
    s3: object, redis_env: None, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["labels", "import", source]) == 2
    assert f"cannot read {source}" in capsys.readouterr().err


def test_an_unreadable_file_is_exit_2(
    tmp_path: Path, redis_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["labels", "import", str(tmp_path / "nope.csv")]) == 2
    assert main(["labels", "import", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("cannot read") == 2


def test_redis_down_is_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    path = tmp_path / "l.csv"
    path.write_text(HEADER + ROWS[:200])
    assert main(["labels", "import", str(path), "--no-progress"]) == 1
    assert "Redis" in capsys.readouterr().err


def test_a_bad_redis_url_is_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", "http://x")
    assert main(["labels", "import", str(tmp_path / "l.csv")]) == 2
    assert "REDIS_URL" in capsys.readouterr().err


def test_progress_lines_when_stderr_is_not_a_terminal(
    tmp_path: Path,
    redis_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(common, "PROGRESS_EVERY_S", 0.0)
    path = tmp_path / "l.csv"
    path.write_text(HEADER + ROWS)
    assert main(["labels", "import", str(path)]) == 0
    progress = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert progress and all(p["event"] == "labels_import_progress" for p in progress)
    assert progress[-1]["labels"] == 1200
    assert progress[-1]["total_bytes"] == path.stat().st_size


def test_a_bar_on_a_terminal(
    tmp_path: Path,
    redis_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    path = tmp_path / "l.csv"
    path.write_text(HEADER + ROWS)
    assert main(["labels", "import", str(path)]) == 0
    err = capsys.readouterr().err
    assert "labels" in err and "1,200 labels" in err
