"""The API's metrics: in-process counters (consumer/infra/metrics.py METRICS, as the workers'),
shipped by the workers' CloudWatchPublisher (PutMetricData or EMF lines, FRAUD_METRICS_MODE)
with the API's own data points:

| metric | unit | dimensions |
| --- | --- | --- |
| `ApiRequests` | Count | Application, Route, StatusClass (`2xx`, `4xx`, `5xx`) |
| `ApiLatency` | Milliseconds (count, sum, min, max) | Application, Route |
| `ApiFlagged` | Count | Application |
| `ApiRateLimited` | Count | Application |

Routes are the route templates (`/v1/score`), never a raw path: an unknown path is `unmatched`,
so a scanner cannot mint dimensions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from consumer.infra.metrics import METRICS

__all__ = ["api_datums", "record_request"]

REQUESTS = "api.requests."  # api.requests.<route>|<status class>
LATENCY = "api.latency."  # api.latency.<route>.{count,total_ms,min_ms,max_ms}
COUNTS = {"api.flagged": "ApiFlagged", "api.rate_limited": "ApiRateLimited"}


def record_request(route: str, status: int, millis: float) -> None:
    """One answered request: its count by route and status class, and its latency."""
    METRICS.incr(f"{REQUESTS}{route}|{status // 100}xx")
    METRICS.observe_ms(f"{LATENCY}{route}", millis)


def api_datums(
    aggregate: Mapping[str, float], application: str, timestamp: datetime
) -> list[dict[str, Any]]:
    """The data points of one interval (CloudWatchPublisher's `datums_of`)."""
    app = {"Name": "Application", "Value": application}
    datums: list[dict[str, Any]] = []

    def point(metric: str, value: float, *dimensions: dict[str, str]) -> None:
        datums.append(
            {
                "MetricName": metric,
                "Dimensions": [app, *dimensions],
                "Timestamp": timestamp,
                "Value": float(value),
                "Unit": "Count",
            }
        )

    for name, metric in COUNTS.items():
        point(metric, aggregate.get(name, 0))  # zeros too: an alarm sees "none", not "missing"
    latencies: dict[str, dict[str, float]] = {}
    for name, value in sorted(aggregate.items()):
        if name.startswith(REQUESTS):
            route, _, status_class = name[len(REQUESTS) :].rpartition("|")
            point(
                "ApiRequests",
                value,
                {"Name": "Route", "Value": route},
                {"Name": "StatusClass", "Value": status_class},
            )
        elif name.startswith(LATENCY):
            route, _, stat = name[len(LATENCY) :].rpartition(".")
            latencies.setdefault(route, {})[stat] = value
    for route, stats in sorted(latencies.items()):
        if stats.get("count", 0) <= 0:
            continue
        datums.append(
            {
                "MetricName": "ApiLatency",
                "Dimensions": [app, {"Name": "Route", "Value": route}],
                "Timestamp": timestamp,
                "StatisticValues": {
                    "SampleCount": float(stats["count"]),
                    "Sum": float(stats.get("total_ms", 0.0)),
                    "Minimum": float(stats.get("min_ms", 0.0)),
                    "Maximum": float(stats.get("max_ms", 0.0)),
                },
                "Unit": "Milliseconds",
            }
        )
    return datums
