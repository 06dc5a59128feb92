"""`fraudstream ops scale`: as many ECS tasks as the stream's open shards need, within bounds.

A KCL worker can hold many leases, but a task's CPU and memory are sized for a number of shards
(`--shards-per-task`, see docs/performance.md). Only open shards count: a parent closed by a
split or merge has no new records, and its lease ends once it is read to its end. The service is
updated only when the count changes, so running this on a schedule is cheap and quiet.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from consumer.errors import FraudstreamError
from consumer.infra.readback import is_open, list_shards


class ScaleError(FraudstreamError, RuntimeError):
    """The service cannot be scaled as asked; the message says why."""


@dataclass(frozen=True)
class ScaleResult:
    stream: str
    open_shards: int
    shards_per_task: int
    minimum: int
    maximum: int
    current: int
    desired: int
    changed: bool
    dry_run: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def desired_tasks(open_shards: int, shards_per_task: int, minimum: int, maximum: int) -> int:
    """ceil(open shards / shards per task), clamped to [minimum, maximum]."""
    return max(minimum, min(maximum, math.ceil(open_shards / shards_per_task)))


def check_bounds(shards_per_task: int, minimum: int, maximum: int) -> None:
    if shards_per_task < 1:
        raise ScaleError(f"--shards-per-task must be at least 1, got {shards_per_task}")
    if minimum < 0:
        raise ScaleError(f"--min must be at least 0, got {minimum}")
    if maximum < max(minimum, 1):
        raise ScaleError(f"--max must be at least 1 and at least --min, got {maximum}")


def current_desired_count(ecs: Any, cluster: str, service: str) -> int:
    response = ecs.describe_services(cluster=cluster, services=[service])
    active = [s for s in response.get("services", []) if s.get("status") != "INACTIVE"]
    if not active:
        reasons = ", ".join(f.get("reason", "?") for f in response.get("failures", []))
        raise ScaleError(f"service {service} not found in cluster {cluster} ({reasons or 'none'})")
    return int(active[0]["desiredCount"])


def scale(
    kinesis: Any,
    ecs: Any,
    *,
    stream: str,
    cluster: str,
    service: str,
    shards_per_task: int,
    minimum: int,
    maximum: int,
    dry_run: bool,
    page_size: int = 1000,
) -> ScaleResult:
    """Read the open shards and the service, and update its desired count if it differs."""
    check_bounds(shards_per_task, minimum, maximum)
    open_shards = sum(1 for shard in list_shards(kinesis, stream, page_size) if is_open(shard))
    desired = desired_tasks(open_shards, shards_per_task, minimum, maximum)
    current = current_desired_count(ecs, cluster, service)
    changed = desired != current
    if changed and not dry_run:
        ecs.update_service(cluster=cluster, service=service, desiredCount=desired)
    return ScaleResult(
        stream=stream,
        open_shards=open_shards,
        shards_per_task=shards_per_task,
        minimum=minimum,
        maximum=maximum,
        current=current,
        desired=desired,
        changed=changed,
        dry_run=dry_run,
    )
