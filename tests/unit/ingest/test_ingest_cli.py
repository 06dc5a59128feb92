"""`fraudstream ingest` against moto (Kinesis and S3): the rejects file, exit codes, the S3
`incoming/` flow (archive to done/ or failed/, archived and rejects keys skipped)."""

from __future__ import annotations

import argparse
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from consumer.cli import common
from consumer.cli import ingest as ingest_cli
from consumer.infra.readback import stream_entries
from consumer.ingest.locations import archive_key, rejects_key, skip_reason

STREAM = "tx"
BUCKET = "drop"
MAPPING = Path(__file__).resolve().parents[3] / "docs" / "ingest-mapping.example.yaml"
HEADER = "txn_ref,card_number,amt,booked_at,balance,merchant,card_country,merchant_country,"
HEADER += "channel,device,opened_ms,store\n"


def row(tid: str, card: str = "4111111111111111", amount: str = "12.50") -> str:
    return f"{tid},{card},{amount},2026-11-28 10:00:00,,m1,FR,DE,online,d1,1700000000000,s1\n"


GOOD = [row(f"t{i}", card=f"acct-{i % 3}") for i in range(7)]
BAD = {3: row("b1", amount="abc"), 6: row("b2", card="")}  # line numbers in the file


def csv_text() -> str:
    lines = list(GOOD)
    for line_no, bad in sorted(BAD.items()):
        lines.insert(line_no - 2, bad)
    return HEADER + "".join(lines)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    monkeypatch.setenv("FRAUD_STREAM", STREAM)
    monkeypatch.delenv("FRAUD_INGEST_MAPPING", raising=False)
    with mock_aws():
        kinesis = boto3.client("kinesis", region_name="us-east-1")
        kinesis.create_stream(StreamName=STREAM, ShardCount=2)
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        yield kinesis, s3


def ingest(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    ingest_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["ingest", *argv])
    code: int = args.run(args)
    return code


def put_records(kinesis: Any) -> list[dict[str, Any]]:
    return [json.loads(data) for _, _, data, _ in stream_entries(kinesis, STREAM)]


def test_a_local_csv_puts_the_good_rows_and_lists_the_bad_ones(
    aws: tuple[Any, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kinesis, _ = aws
    path = tmp_path / "export.csv"
    path.write_text(csv_text())
    assert ingest(str(path), "--mapping", str(MAPPING), "--json", "--no-progress") == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["rows_read"], summary["put"], summary["rejected"], summary["failed"]) == (
        9,
        7,
        2,
        0,
    )
    records = put_records(kinesis)
    assert sorted(r["transaction_id"] for r in records) == sorted(f"t{i}" for i in range(7))
    # Per account, in file order (the producer's per-key rule; one key -> one shard).
    for account in ("acct-0", "acct-1", "acct-2"):
        mine = [r["transaction_id"] for r in records if r["account_id"] == account]
        assert mine == sorted(mine, key=lambda t: int(t[1:]))
    rejects = [json.loads(line) for line in (tmp_path / "export.csv.rejects.jsonl").open()]
    assert rejects == [
        {"row": 3, "reason": "amount: not a decimal number"},
        {"row": 6, "reason": "account_id: missing"},
    ]
    assert summary["rejects"] == f"{path}.rejects.jsonl"


def test_a_gzipped_jsonl_from_s3_with_archive_moves_it_to_done(
    aws: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    kinesis, s3 = aws
    lines = [
        json.dumps(
            {
                "transaction_id": f"j{i}",
                "account_id": "a",
                "amount": 5,
                "timestamp": "2026-11-28T10:00:00Z",
            }
        )
        for i in range(3)
    ] + ["{broken"]
    key = "team/incoming/partner/day.jsonl.gz"
    s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress("\n".join(lines).encode()))
    assert ingest(f"s3://{BUCKET}/{key}", "--archive", "--json", "--no-progress") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["put"] == 3 and summary["rejected"] == 1
    assert summary["archived"] == f"s3://{BUCKET}/team/incoming/done/partner/day.jsonl.gz"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys == {
        "team/incoming/done/partner/day.jsonl.gz",
        "team/ingest-rejects/partner/day.jsonl.gz.rejects.jsonl",
    }
    body = s3.get_object(
        Bucket=BUCKET, Key="team/ingest-rejects/partner/day.jsonl.gz.rejects.jsonl"
    )
    [reject] = [json.loads(line) for line in body["Body"].read().splitlines()]
    assert reject["row"] == 4 and reject["reason"].startswith("not valid JSON")
    assert len(put_records(kinesis)) == 3


def test_a_bad_mapping_is_exit_2_and_archives_to_failed(
    aws: tuple[Any, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kinesis, s3 = aws
    bad = tmp_path / "m.yaml"
    bad.write_text("fields: {amount: {column: a, type: string}}")
    key = "incoming/x.csv"
    s3.put_object(Bucket=BUCKET, Key=key, Body=csv_text().encode())
    code = ingest(f"s3://{BUCKET}/{key}", "--mapping", str(bad), "--archive", "--no-progress")
    assert code == 2
    assert "fields.amount.type" in capsys.readouterr().err
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys == {"incoming/failed/x.csv"}
    assert put_records(kinesis) == []


def test_archived_and_rejects_keys_are_skipped(
    aws: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    kinesis, s3 = aws
    for key in (
        "incoming/done/x.csv",
        "incoming/failed/x.csv",
        "ingest-rejects/x.csv.rejects.jsonl",
        "p/incoming/done/sub/y.jsonl",
    ):
        s3.put_object(Bucket=BUCKET, Key=key, Body=csv_text().encode())
        assert ingest(f"s3://{BUCKET}/{key}", "--archive", "--mapping", str(MAPPING)) == 0
        assert '"event": "skipped"' in capsys.readouterr().err
        assert s3.get_object(Bucket=BUCKET, Key=key)  # left where it was
    assert put_records(kinesis) == []


def test_the_key_rules() -> None:
    assert skip_reason("incoming/x.csv") is None
    assert skip_reason("incoming/sub/done/x.csv") is None  # done/ only right under incoming/
    assert skip_reason("a/b/x.csv.rejects.jsonl") == "a rejects file"
    assert rejects_key("a/b/x.csv") == "a/b/x.csv.rejects.jsonl"
    assert rejects_key("p/incoming/x.csv") == "p/ingest-rejects/x.csv.rejects.jsonl"
    assert not rejects_key("p/incoming/x.csv").startswith("p/incoming/")
    assert archive_key("p/incoming/x.csv", True) == "p/incoming/done/x.csv"
    assert archive_key("p/incoming/x.csv", False) == "p/incoming/failed/x.csv"
    assert archive_key("p/elsewhere/x.csv", True) is None
    # Whatever the run wrote or moved is skipped when its event comes back.
    for key in ("incoming/x.csv", "p/incoming/s/x.csv"):
        for written in (rejects_key(key), archive_key(key, True), archive_key(key, False)):
            assert written is not None and skip_reason(written) is not None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["missing.csv"], "cannot read missing.csv"),
        (["x.csv", "--archive"], "--archive needs an s3:// source"),
        (["s3://drop/incoming/none.csv"], "NoSuchKey"),
        (["s3://"], "no bucket"),
    ],
)
def test_unusable_sources_and_options_are_exit_2(
    aws: tuple[Any, Any], argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ingest(*argv, "--no-progress") == 2
    assert message in capsys.readouterr().err


def test_a_csv_without_a_mapping_is_exit_2(
    aws: tuple[Any, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "e.csv"
    path.write_text(csv_text())
    assert ingest(str(path), "--no-progress") == 2
    assert "needs a mapping" in capsys.readouterr().err


def test_a_missing_stream_is_exit_1(
    aws: tuple[Any, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "e.csv"
    path.write_text(csv_text())
    code = ingest(str(path), "--mapping", str(MAPPING), "--stream", "nope", "--no-progress")
    assert code == 1
    assert "ResourceNotFoundException" in capsys.readouterr().err


def test_progress_lines_off_a_terminal(
    aws: tuple[Any, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(common, "PROGRESS_EVERY_S", 0.0)
    path = tmp_path / "e.csv"
    path.write_text(csv_text())
    assert ingest(str(path), "--mapping", str(MAPPING)) == 0
    captured = capsys.readouterr()
    progress = [json.loads(line) for line in captured.err.splitlines()]
    assert progress and all(p["event"] == "ingest_progress" for p in progress)
    assert "rows read  9" in captured.out and "put        7" in captured.out


def test_help_shows_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        ingest("--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "exit codes: 0 every valid row put" in text and "2 the source unreadable" in text


def test_the_mapping_from_s3_and_from_the_environment(
    aws: tuple[Any, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kinesis, s3 = aws
    s3.put_object(Bucket=BUCKET, Key="config/mapping.yaml", Body=MAPPING.read_bytes())
    monkeypatch.setenv("FRAUD_INGEST_MAPPING", f"s3://{BUCKET}/config/mapping.yaml")
    path = tmp_path / "e.csv"
    path.write_text(csv_text())
    assert ingest(str(path), "--no-progress", "--json") == 0
    assert json.loads(capsys.readouterr().out)["put"] == 7
    assert len(put_records(kinesis)) == 7
