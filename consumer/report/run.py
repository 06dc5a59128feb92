"""One report: list the range's objects, read them into DuckDB, compute the figures."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from consumer.infra.logs import get_logger
from consumer.report import figures, tables

log = get_logger(__name__)


@dataclass(frozen=True)
class ReportRequest:
    start: date
    end: date
    source: str  # s3://bucket/prefix/ or a directory
    labels: str | None = None  # s3://bucket/prefix/labels/ or a directory; None: <source>labels/
    alert_severity: str = "medium"
    memory_limit: str | None = None
    threads: int | None = None


def labels_location(request: ReportRequest) -> str:
    """--labels, else the source's labels folder (FRAUD_LABELS_PREFIX, as the worker's pickup)."""
    if request.labels:
        return request.labels
    folder = os.environ.get("FRAUD_LABELS_PREFIX", "").strip("/") or "labels"
    if request.source.startswith("s3://"):
        return request.source.rstrip("/") + f"/{folder}/"
    return str(Path(request.source) / folder)


def build(
    request: ReportRequest,
    progress: Callable[[int, int], None] = lambda done, total: None,
    s3: Any = None,
) -> dict[str, Any]:
    """The figures of `request`. `progress(bytes done, bytes total)` while reading. Raises
    tables.UnreadableSource when the source or the labels cannot be listed or read."""
    source = tables.Location(request.source, s3)
    planned = tables.plan(source, request.start, request.end)
    label_text = labels_location(request)
    label_source: tables.Location | None
    try:
        label_source = tables.Location(label_text, s3)
    except tables.UnreadableSource:
        if request.labels:
            raise
        label_source = None  # the default location, absent: no labels
    label_objs = label_source.list("") if label_source else []
    total = sum(obj.size for objs in planned.values() for obj in objs)
    total += sum(obj.size for obj in label_objs)
    done = 0

    def step(size: int) -> None:
        nonlocal done
        done += size
        progress(done, total)

    progress(0, total)
    with tables.workdir() as tmp:
        workdir = Path(tmp)
        con = tables.connect(workdir, request.memory_limit, request.threads)
        try:
            if source.is_s3:
                tables.enable_s3(con)
            tables.create_tables(con)
            loaded = tables.load(con, planned, step)
            if label_source is not None:
                tables.load_labels(con, label_source, workdir, loaded, step)
            result = figures.compute(
                con,
                request.start,
                request.end,
                alert_severity=request.alert_severity,
                loaded_files=loaded.files,
                label_rows=loaded.rows.get("labels", 0),
            )
        finally:
            con.close()
    result["source"] = request.source
    result["labels_source"] = label_text if label_source is not None else None
    if loaded.bad_labels:
        result["notes"].append(
            f"{loaded.bad_labels} bad label lines skipped, e.g. "
            + "; ".join(loaded.bad_label_examples)
        )
    log.info("report_built", rows=loaded.rows)
    return result
