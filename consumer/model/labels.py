"""Where offline work (training, evaluation) takes its labels from, and when each became known.

A `LabelSource` gives a transaction's label and the time (epoch seconds) from which it is known:
the record's own field known a delay after it (`RecordLabels`), or a label file (`FileLabels`,
the format of docs/contract.md, "Label records", which the worker's pickup reads too). The time
matters: a fraud label reaches the merchant profiles from then on, as in the stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from consumer.model.dataset import label_of
from consumer.records import Transaction

__all__ = ["FileLabels", "LabelSource", "RecordLabels"]


class LabelSource(Protocol):
    """Where the labels come from: per transaction its label and the event time (epoch
    seconds) from which it is known, or None when it has no label."""

    def label(self, txn: Transaction) -> tuple[bool, float] | None: ...


@dataclass(frozen=True)
class RecordLabels:
    """The record's own `fraud` field (else `expected_rules`: consumer.model.dataset.label_of),
    known `delay_s` after the transaction."""

    delay_s: float

    def label(self, txn: Transaction) -> tuple[bool, float] | None:
        value = label_of(txn)
        return None if value is None else (value, float(txn.event_time) + self.delay_s)


class FileLabels:
    """Labels from a label file (docs/contract.md, "Label records"): per transaction the label
    kept as the stream keeps it (the latest `labelled_at`; on a tie, fraud), known from its
    `labelled_at`. A transaction the file does not name is legitimate, never known: label
    files list what was reported, and most transactions never are. Bad lines are counted in
    `bad` (the first few kept in `bad_examples`), never fatal."""

    def __init__(self, path: Path) -> None:
        from consumer.labels.records import BadLabel, read_labels
        from consumer.rules.profile import LabelMark, newer_label

        self.bad = 0
        self.bad_examples: list[str] = []
        kept: dict[str, LabelMark] = {}
        with path.open("rb") as handle:
            for item in read_labels(handle, str(path)):
                if isinstance(item, BadLabel):
                    self.bad += 1
                    if len(self.bad_examples) < 5:
                        self.bad_examples.append(f"{item.where}: {item.reason}")
                    continue
                mark = LabelMark(0, item.labelled_at, item.is_fraud)
                if newer_label(kept.get(item.transaction_id), mark):
                    kept[item.transaction_id] = mark
        self._labels = {tid: (m.is_fraud, float(m.labelled_at)) for tid, m in kept.items()}

    def __len__(self) -> int:
        return len(self._labels)

    def label(self, txn: Transaction) -> tuple[bool, float] | None:
        return self._labels.get(txn.transaction_id, (False, math.inf))
