"""One run (consumer/ingest/run.py) with a stand-in Kinesis client: rows given up after the
retries are counted and make exit 1; a source that breaks part-way keeps what was put."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

from consumer.ingest.producer import Producer, ProgressCallback
from consumer.ingest.rejects import open_rejects
from consumer.ingest.rows import read_rows
from consumer.ingest.run import run_ingest


def line(i: int, account: str) -> bytes:
    return json.dumps(
        {"transaction_id": f"t{i}", "account_id": account, "amount": 5, "timestamp": 0}
    ).encode()


class Flaky:
    """Refuses every entry of the account `refused` (throttled), accepts the others."""

    def __init__(self, refused: str) -> None:
        self.refused = refused
        self.put: list[bytes] = []

    def put_records(self, Records: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        out: list[dict[str, Any]] = []
        for record in Records:
            if record["PartitionKey"] == self.refused:
                out.append({"ErrorCode": "ProvisionedThroughputExceededException"})
            else:
                self.put.append(record["Data"])
                out.append({"ShardId": "shardId-0", "SequenceNumber": str(len(self.put))})
        return {"Records": out, "FailedRecordCount": sum("ErrorCode" in r for r in out)}


def producer_of(client: Any) -> Any:
    def make(on_progress: ProgressCallback) -> Producer:
        return Producer(client, "s", on_progress=on_progress, max_attempts=3, sleep=lambda _: None)

    return make


def test_rows_given_up_after_the_retries_are_failed_and_exit_1(tmp_path: Path) -> None:
    data = b"\n".join(line(i, "bad" if i % 4 == 0 else f"a{i % 3}") for i in range(40))
    client = Flaky("bad")
    source = str(tmp_path / "f.jsonl")
    result = run_ingest(
        source,
        read_rows(io.BytesIO(data), "f.jsonl", mapping=None),
        producer_of(client),
        open_rejects(source, lambda: None),
    )
    assert (result.rows_read, result.put, result.failed, result.rejected) == (40, 30, 10, 0)
    assert result.retried == 20  # each refused row sent 3 times
    assert result.exit_code == 1
    # The other accounts' rows all landed, each account's in file order.
    ids = [json.loads(d)["transaction_id"] for d in client.put]
    for account in ("a0", "a1", "a2"):
        mine = [t for t, d in zip(ids, client.put, strict=True) if account in d.decode()]
        assert mine == sorted(mine, key=lambda t: int(t[1:]))


def test_a_gzip_broken_part_way_keeps_what_was_put_and_exits_2(tmp_path: Path) -> None:
    data = gzip.compress(b"\n".join(line(i, f"a{i % 50}") for i in range(30000)))
    client = Flaky("none")
    source = str(tmp_path / "f.jsonl")
    result = run_ingest(
        source,
        read_rows(io.BytesIO(data[: len(data) // 2]), "f.jsonl", mapping=None),
        producer_of(client),
        open_rejects(source, lambda: None),
    )
    assert result.exit_code == 2 and "corrupt or truncated" in (result.error or "")
    assert 0 < result.put == len(client.put) == result.rows_read < 30000
    assert Path(source + ".rejects.jsonl").read_text() == ""
