"""Where a load test leaves its result: `<prefix>-<stamp>.json` and `<prefix>-<stamp>.png` in --out.

The three load tests (run, catchup, scaleout) keep one naming, so a directory of results sorts by
test and then by start time, and a report and its chart pair up by name. Each test builds its own
document and draws its own chart; this module only names and writes the files. The stamp is the
run's start in UTC, not the time the report is written, so a run's files are named after when it
began however long it took.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def write_report(
    out: Path,
    prefix: str,
    started: float,
    document: Mapping[str, Any],
    draw: Callable[[Path], bool],
) -> tuple[Path, Path | None]:
    """Write the document as JSON (indented, keys sorted, so two runs' reports diff cleanly) and
    have `draw` put the chart beside it; `out` is created if missing. Returns the report's path
    and the chart's, None when `draw` returned False (matplotlib not installed). Prints nothing:
    each test prints `report_line` after its own summary, so the paths come last."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(started))
    report = out / f"{prefix}-{stamp}.json"
    report.write_text(json.dumps(document, indent=2, sort_keys=True))
    chart = out / f"{prefix}-{stamp}.png"
    return report, chart if draw(chart) else None


def report_line(report: Path, chart: Path | None) -> str:
    """`report: <json>`, and `, chart: <png>` when one was drawn: the line a test ends its summary
    with, so a person (or a script tailing the output) finds the files."""
    return f"report: {report}" + (f", chart: {chart}" if chart is not None else "")
