"""One label file into Redis: read, apply the good lines in chunks, hand each bad line to the
caller. Shared by `fraudstream labels import` and the worker's S3 pickup so both apply a file
the same way.

Streamed: a file of any size holds one chunk of labels in memory at a time. Applying is
idempotent (consumer/state/labels.py), so a file cut short by an I/O error is applied again
whole later, and its first part changes nothing the second time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from consumer.labels.records import BadLabel, Label, read_labels
from consumer.rules.profile import DAY_S
from consumer.state.labels import CHUNK, ApplyResult, LabelStore

# A verdict dated more than a day after now is refused: a clock far ahead would otherwise
# win over every later verdict on the transaction.
FUTURE_ALLOWANCE_S = DAY_S


@dataclass
class FileResult:
    """What a file did: the store's counts, and its bad lines (the first few kept)."""

    applied: ApplyResult = field(default_factory=ApplyResult)
    bad_lines: int = 0
    first_bad: list[BadLabel] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.applied.as_dict(),
            "bad_lines": self.bad_lines,
            "first_bad": [{"where": b.where, "reason": b.reason} for b in self.first_bad],
        }


def not_after(now: float | None = None) -> Decimal:
    """The latest `labelled_at` accepted now."""
    return Decimal(int(time.time() if now is None else now) + FUTURE_ALLOWANCE_S)


def apply_file(
    stream: Any,
    name: str,
    store: LabelStore,
    *,
    on_bad: Callable[[BadLabel], None] | None = None,
    on_chunk: Callable[[FileResult], None] | None = None,
    keep_bad: int = 5,
    chunk: int = CHUNK,
    now: float | None = None,
) -> FileResult:
    """Apply every good line of `stream` (named `name` in `file:line`); bad lines go to
    `on_bad` and are counted; `on_chunk` sees the running result after each chunk.
    Raises only what the stream's I/O or Redis raise."""
    result = FileResult()
    pending: list[Label] = []

    def flush() -> None:
        if pending:
            result.applied.add(store.apply_chunk(pending))
            pending.clear()
        if on_chunk is not None:
            on_chunk(result)

    for item in read_labels(stream, name, not_after=not_after(now)):
        if isinstance(item, BadLabel):
            result.bad_lines += 1
            if len(result.first_bad) < keep_bad:
                result.first_bad.append(item)
            if on_bad is not None:
                on_bad(item)
            continue
        pending.append(item)
        if len(pending) >= chunk:
            flush()
    flush()
    return result
