"""A labelled file as the model sees it: feature rows, labels and event times in stream order.

Input: JSON Lines, gzip when the name ends in .gz; each line either the producer's replay format
(`{"data": "<record>"}` or `{"data_b64": "..."}`) or the record object itself. Records the
contract calls invalid are skipped and counted, duplicates too (as the stream does). The label
is the record's `fraud` field when it has one (the generator's realistic mode), else whether
its `expected_rules` is non-empty; a record with neither is unlabelled and refused.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING

from consumer.backtest.history import ReplayHistory
from consumer.errors import FraudstreamError
from consumer.model.features import MODEL_HORIZON_S, FeatureRow, features_for
from consumer.records import InvalidRecord, Transaction, parse_transaction
from consumer.rules.history import AccountHistory
from consumer.rules.profile import DAY_S, DEFAULT_LABEL_DELAY_DAYS

if TYPE_CHECKING:
    from consumer.model.labels import LabelSource


class DatasetError(FraudstreamError, ValueError):
    """The input cannot be used; the message names the file and line."""


@dataclass
class Dataset:
    rows: list[FeatureRow] = field(default_factory=list)
    labels: list[bool] = field(default_factory=list)
    event_times: list[float] = field(default_factory=list)
    invalid: int = 0
    duplicates: int = 0


def open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def record_bytes(line: str, where: str) -> bytes | None:
    """The record's bytes from one input line; None for a blank line."""
    text = line.strip()
    if not text:
        return None
    try:
        outer = json.loads(text)
    except ValueError as exc:
        raise DatasetError(f"{where}: not JSON ({exc})") from exc
    if isinstance(outer, dict) and isinstance(outer.get("data"), str):
        return str(outer["data"]).encode("utf-8")
    if isinstance(outer, dict) and isinstance(outer.get("data_b64"), str):
        try:
            return base64.b64decode(outer["data_b64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DatasetError(f"{where}: data_b64 is not base64 ({exc})") from exc
    return text.encode("utf-8")


def label_of(txn: Transaction) -> bool | None:
    raw = txn.raw
    fraud = raw.get("fraud")
    if isinstance(fraud, bool):
        return fraud
    expected = raw.get("expected_rules")
    if isinstance(expected, list):
        return bool(expected)
    return None


def transactions(path: Path) -> Iterator[tuple[str, Transaction | InvalidRecord]]:
    """(where, parsed record) for every non-blank line, in file order."""
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            where = f"{path}:{number}"
            data = record_bytes(line, where)
            if data is not None:
                yield where, parse_transaction(data)


def stream_history() -> ReplayHistory:
    """The backtest's history builder, as the worker's state store keeps history for a model:
    the features' 24 h horizon (plus the store's lateness allowance), countries and profiles
    included."""
    return ReplayHistory(Decimal(MODEL_HORIZON_S), countries=True, profiles=True)


def judged(
    path: Path, history: ReplayHistory | None = None, label_delay_days: int | None = None
) -> Iterator[tuple[str, Transaction, AccountHistory]]:
    """Each valid, non-duplicate transaction with the history the stream would give it. With
    `label_delay_days`, each record's own label (label_of) reaches the merchant profiles that
    long after it, as in training (`load_dataset`), so a model's rows read what it learned on."""
    history = history if history is not None else stream_history()
    delay = None if label_delay_days is None else Decimal(label_delay_days * DAY_S)
    for where, parsed in transactions(path):
        if isinstance(parsed, InvalidRecord):
            continue
        seen = history.observe(parsed)
        if seen is not None:
            if delay is not None:
                label = label_of(parsed)
                if label:
                    history.apply_fraud(parsed, parsed.event_time + delay)
            yield where, parsed, seen


def _known(at: float) -> Decimal | None:
    """A label source's time as the profiles keep it; None for never."""
    return None if math.isinf(at) else Decimal(repr(at))


def load_dataset(
    path: Path,
    label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS,
    labels: LabelSource | None = None,
) -> Dataset:
    """Every valid, non-duplicate record's feature row and label. Each record's own label
    reaches the merchant profiles `label_delay_days` after it (as a chargeback would), so a
    row sees the labels the stream would have had. With `labels` (a label file:
    consumer/model/labels.py), the labels and when each became known come from there instead."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    data = Dataset()
    history = stream_history()
    delay = Decimal(label_delay_days * DAY_S)
    for where, parsed in transactions(path):
        if isinstance(parsed, InvalidRecord):
            data.invalid += 1
            continue
        seen = history.observe(parsed)
        if seen is None:
            continue
        known: Decimal | None
        if labels is None:
            label = label_of(parsed)
            if label is None:
                raise DatasetError(f"{where}: no label (want a `fraud` or `expected_rules` field)")
            known = parsed.event_time + delay
        else:
            given = labels.label(parsed)
            label, known = (False, None) if given is None else (given[0], _known(given[1]))
        data.rows.append(features_for(parsed, seen, label_delay_days))
        data.labels.append(label)
        if label and known is not None:
            history.apply_fraud(parsed, known)
        data.event_times.append(float(parsed.event_time))
    data.duplicates = history.duplicates
    if not data.rows:
        raise DatasetError(f"{path}: no valid labelled record")
    return data
