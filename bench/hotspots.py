"""Groups a pyinstrument profile of our side into the stages of the hot path.

Every sample is charged to the innermost stage on its stack, so the shares add up to the
process's wall time: waiting for Redis or moto counts where it happens (inside a Pipeline.execute
or a boto3 call), CPU counts where it is spent. Used by `python -m bench --profile`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# (function name, file path fragment) -> stage. The innermost match on a stack wins, except
# that a Redis `Pipeline.execute` is named after the load or save it belongs to.
_RULES: tuple[tuple[str, str, str], ...] = (
    ("KCLProcess.run", "amazon_kclpy", "kclpy: read line, JSON-decode message, write status"),
    ("Checkpointer.checkpoint", "amazon_kclpy", "checkpoint round trip to the daemon"),
    ("BatchPipeline.process", "consumer/batch/pipeline.py", "pipeline: loop and bookkeeping"),
    ("Record.binary_data", "amazon_kclpy", "base64 decode"),
    ("parse_transaction", "consumer/records.py", "decode + validate (parse_transaction)"),
    ("AccountStateStore.load", "consumer/state/store.py", "history load: queue commands"),
    ("_decode_entry", "consumer/state/store.py", "history load: decode entries"),
    ("AccountStateStore.save", "consumer/state/store.py", "history save: queue commands"),
    ("judge", "consumer/rules", "judge (rules)"),
    ("BatchView.history", "consumer/state/store.py", "batch view: history / add / duplicate"),
    ("BatchView.add", "consumer/state/store.py", "batch view: history / add / duplicate"),
    ("BatchView.is_duplicate", "consumer/state/store.py", "batch view: history / add / duplicate"),
    ("flagged_line", "consumer/batch/lines.py", "flagged line to JSON"),
    ("to_json", "consumer/batch/lines.py", "flagged line to JSON"),
    ("AlertPublisher.publish", "consumer/sinks/alerts.py", "SNS PublishBatch"),
    ("S3JsonLinesBatch.flush", "consumer/sinks/s3_batches.py", "S3 flush (gzip + PutObject)"),
    ("S3JsonLinesBatch.add", "consumer/sinks/s3_batches.py", "buffer flagged lines"),
    ("call_with_retries", "consumer/infra/retry.py", "tenacity wrapper"),
    ("BoundLoggerFilteringAtInfo.info", "structlog", "logging"),
)

_EXECUTE = {
    "history load: queue commands": "history load: Redis round trip (pack, wait, parse)",
    "history save: queue commands": "history save: Redis round trip (pack, wait, parse)",
}


def _stage(frame: Any, current: str) -> str:
    function = str(frame.function)
    qualified = f"{frame.class_name}.{function}" if frame.class_name else function
    path = str(frame.file_path or "")
    if function == "execute" and "redis" in path and current in _EXECUTE:
        return _EXECUTE[current]
    for name, fragment, stage in _RULES:
        if (qualified == name or function == name) and fragment in path:
            if stage == "tenacity wrapper" and current != "pipeline: loop and bookkeeping":
                return current  # retries around S3/SNS are charged to those calls
            return stage
    if "structlog" in path and current != "logging":
        return "logging"
    return current


def _walk(frame: Any, stage: str) -> Iterator[tuple[str, float]]:
    stage = _stage(frame, stage)
    own = float(frame.time) - sum(float(child.time) for child in frame.children)
    if own > 0:
        yield stage, own
    for child in frame.children:
        yield from _walk(child, stage)


def stages(root: Any) -> list[tuple[str, float, float]]:
    """(stage, seconds, share of the total) for a pyinstrument root frame, largest first."""
    totals: dict[str, float] = {}
    for stage, seconds in _walk(root, "start-up and other"):
        totals[stage] = totals.get(stage, 0.0) + seconds
    whole = sum(totals.values()) or 1.0
    ranked = sorted(totals.items(), key=lambda item: item[1], reverse=True)
    return [(stage, seconds, seconds / whole) for stage, seconds in ranked]


def render(root: Any) -> str:
    lines = ["hot path stages (share of our process's wall time, profiled):"]
    for stage, seconds, share in stages(root):
        lines.append(f"  {share * 100:5.1f}%  {seconds:7.2f} s  {stage}")
    return "\n".join(lines)
