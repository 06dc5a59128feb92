"""What the record processors of a local worker logged, read back from its log file.

Every processor line is one JSON object (consumer/infra/logs.py) that names its shard, so a worker
log that interleaves several processors can be read per shard and in time order.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from consumer.local.stack import StackOptions


def processor_events(options: StackOptions, worker: int) -> list[dict[str, Any]]:
    """The processors' log lines of `worker-<n>`, each with `at`, its timestamp as a datetime."""
    path = options.logs / f"worker-{worker}.log"
    events: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("component") == "processor":
            event["at"] = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
            events.append(event)
    return events


def of_shard(events: list[dict[str, Any]], shard_id: str, *names: str) -> list[dict[str, Any]]:
    """The events of one shard, optionally only those named `names`."""
    return [
        e
        for e in events
        if e.get("shard_id") == shard_id and (not names or e.get("event") in names)
    ]
