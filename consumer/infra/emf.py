"""One interval's metrics as CloudWatch Embedded Metric Format (EMF) log lines.

The same data points as PutMetricData (consumer/infra/cloudwatch.py `to_datums`), written as JSON
lines on stderr instead: the awslogs driver ships them to CloudWatch Logs, which extracts the
metrics (what Powertools Metrics does). No API call, no `cloudwatch:PutMetricData` permission for
our namespace, no retry thread: the log line is the delivery.

One document per dimension set (`Application`; `Application`+`Rule` for one rule id; ...): a
dimension's value is a top-level key, so two values of `Rule` need two documents. Each document
holds at most MAX_METRICS metrics and each metric at most MAX_VALUES values (EMF's limits).

Values:
- a count: the number (`"RecordsJudged": 90.0`);
- a duration's statistics (PutMetricData's StatisticValues): a Values/Counts distribution with
  exactly the same SampleCount, Sum, Minimum and Maximum (`min` once, `max` once, the rest of the
  samples at their mean);
- the ModelScore histogram: its Values/Counts as PutMetricData sends them (a histogram of more
  than MAX_VALUES distinct scores is split over two documents; CloudWatch adds them up).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

MAX_METRICS = 100  # metrics per document
MAX_DIMENSIONS = 30  # dimensions per dimension set
MAX_VALUES = 100  # values of one metric in one document
EVENT = "metrics_emf"  # the `event` of every EMF line (the runbook's queries use it)

Dimensions = tuple[tuple[str, str], ...]


def statistic_distribution(stats: Mapping[str, float]) -> tuple[list[float], list[float]]:
    """Values and Counts with the statistics' SampleCount, Sum, Minimum and Maximum."""
    samples = float(stats["SampleCount"])
    total, low, high = float(stats["Sum"]), float(stats["Minimum"]), float(stats["Maximum"])
    if samples <= 1:
        return [low], [samples]
    if samples < 3 or low == high:
        # Two samples are the minimum and the maximum; equal bounds: every sample is that value.
        if low == high:
            return [low], [samples]
        return [low, high], [1.0, 1.0]
    rest = samples - 2
    middle = (total - low - high) / rest
    values, counts = [low, high], [1.0, 1.0]
    if middle in (low, high):
        counts[values.index(middle)] += rest
    else:
        values.append(middle)
        counts.append(rest)
    return values, counts


def _value(datum: Mapping[str, Any]) -> list[Any]:
    """The EMF value(s) of one data point: several when its values exceed MAX_VALUES."""
    if "Value" in datum:
        return [float(datum["Value"])]
    if "StatisticValues" in datum:
        values, counts = statistic_distribution(datum["StatisticValues"])
    else:
        values = [float(v) for v in datum["Values"]]
        counts = [float(c) for c in datum.get("Counts", [1.0] * len(values))]
    return [
        {"Values": values[start : start + MAX_VALUES], "Counts": counts[start : start + MAX_VALUES]}
        for start in range(0, len(values), MAX_VALUES)
    ]


def documents(
    datums: list[dict[str, Any]], namespace: str, timestamp: datetime
) -> list[dict[str, Any]]:
    """The EMF documents (without the log line's own keys) for PutMetricData's data points."""
    millis = int(timestamp.timestamp() * 1000)
    # dimension set -> one list of (metric, unit, value) per document
    groups: dict[Dimensions, list[list[tuple[str, str, Any]]]] = {}
    for datum in datums:
        dims: Dimensions = tuple((d["Name"], d["Value"]) for d in datum["Dimensions"])
        if len(dims) > MAX_DIMENSIONS:
            raise ValueError(f"{datum['MetricName']}: more than {MAX_DIMENSIONS} dimensions")
        pages = groups.setdefault(dims, [[]])
        for index, value in enumerate(_value(datum)):
            # The first value of a metric goes in the first document with room and without it;
            # a histogram's second part in the next one.
            page = next(
                (
                    p
                    for p in pages[index:]
                    if len(p) < MAX_METRICS and all(m != datum["MetricName"] for m, _, _ in p)
                ),
                None,
            )
            if page is None:
                page = []
                pages.append(page)
            page.append((datum["MetricName"], datum["Unit"], value))
    found: list[dict[str, Any]] = []
    for dims, pages in groups.items():
        for page in pages:
            if not page:
                continue
            document: dict[str, Any] = {
                "_aws": {
                    "Timestamp": millis,
                    "CloudWatchMetrics": [
                        {
                            "Namespace": namespace,
                            "Dimensions": [[name for name, _ in dims]],
                            "Metrics": [{"Name": name, "Unit": unit} for name, unit, _ in page],
                        }
                    ],
                }
            }
            document.update(dims)
            document.update((name, value) for name, _, value in page)
            found.append(document)
    return found


def write(datums: list[dict[str, Any]], namespace: str, timestamp: datetime) -> int:
    """Write the documents as log lines (whatever FRAUD_LOG_LEVEL); the number of lines."""
    from consumer.infra.logs import emit

    written = documents(datums, namespace, timestamp)
    for document in written:
        emit(EVENT, __name__, **document)
    return len(written)
