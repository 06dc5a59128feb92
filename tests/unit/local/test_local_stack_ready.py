"""`fraudstream local up` returns once a record processor runs on every shard: the log scan."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from consumer.local.stack import StackOptions, initialized_shards


def _line(event: str, shard: str, at: datetime) -> str:
    stamp = at.isoformat().replace("+00:00", "Z")
    return json.dumps({"shard_id": shard, "event": event, "timestamp": stamp}) + "\n"


def test_only_processors_started_since_the_workers_count(tmp_path: Path) -> None:
    options = StackOptions(state_dir=tmp_path)
    options.logs.mkdir(parents=True)
    old = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    new = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    (options.logs / "worker-1.log").write_text(
        _line("shard_initialized", "shardId-0", old)  # a previous `local up` in the same dir
        + "not json at all, a KCL line mentioning shard_initialized\n"
        + _line("shard_initialized", "shardId-1", new)
        + _line("shard_ended", "shardId-2", new)
    )
    (options.logs / "worker-2.log").write_text(_line("shard_initialized", "shardId-3", new))
    since = datetime(2026, 11, 28, 8, 30, tzinfo=UTC).timestamp()
    assert initialized_shards(options, since) == {"shardId-1", "shardId-3"}
    assert initialized_shards(options, old.timestamp()) == {"shardId-0", "shardId-1", "shardId-3"}
