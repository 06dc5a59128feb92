"""Ships the in-process counters to CloudWatch: added up in memory, sent about once a minute.

Two ways, one set of data points (`to_datums`): FRAUD_METRICS_MODE=api (the default) calls
PutMetricData as described below; FRAUD_METRICS_MODE=emf (the ECS template's) writes the same
points as Embedded Metric Format log lines (consumer/infra/emf.py), which CloudWatch Logs turns
into metrics; no API call, no retry, nothing to drop unless the log line itself is lost.

Best effort, on purpose. Metrics tell the person on call how the consumer is doing; they are not
an output of the records. So, unlike S3, SNS and Redis, a metrics failure never stops a shard:
PutMetricData runs on a background thread (never on the record path), is retried a few times
within a short deadline, and past that the interval's numbers are dropped, logged
(`metrics_dropped`) and counted (`metrics.dropped_datums` in the next `metrics` log line). Losing a
minute of metrics is a gap on a dashboard; stopping a shard for it would be an outage. Every
snapshot is also in the `metrics` log lines, so nothing is lost for good.

Cost and limits: one PutMetricData call per interval per process (one process per shard), with
at most 1000 data points per call; durations go as StatisticValues (count, sum, min, max), and
the model's scores as one Values/Counts histogram, never one point per record. The metric names
and dimensions are the contract with the CloudFormation dashboard and alarms (deploy/ecs):
change them together.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from tenacity import (
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from consumer.infra import emf
from consumer.infra.logs import get_logger
from consumer.infra.metrics import METRICS, Metrics, Snapshot
from consumer.infra.retry import is_transient
from consumer.settings.config import MetricsConfig

log = get_logger(__name__)

MAX_DATUMS_PER_CALL = 1000  # the PutMetricData limit

# In-process counter -> contract metric (unit Count, dimension Application only).
COUNTS: dict[str, str] = {
    "records.judged": "RecordsJudged",
    "records.flagged": "RecordsFlagged",
    "records.invalid": "RecordsInvalid",
    "s3_dead_letters.lines": "DeadLetters",
    "records.duplicate": "RecordsDuplicate",
    "alerts.sent": "AlertsSent",
    "alerts.failed_entries": "AlertsFailed",
    "s3_flagged.objects": "S3Flushes",
    "s3_dead_letters.objects": "S3Flushes",
    "records.internal_error": "ProcessingErrors",
    "checkpoints": "Checkpoints",
    "ruleset.refused": "RuleSetRefused",
    "ruleset.last_good_in_use": "RuleSetLastGoodInUse",
    "model.refused": "ModelRefused",
    "state.cache_evicted": "StateCacheEvictions",
    "records.alerted": "RecordsAlerted",
    "model.scored": "ModelScored",
    "labels.applied": "LabelsApplied",
    "labels.files_applied": "LabelFilesApplied",
    "labels.lines_rejected": "LabelLinesRejected",
    "labels.pickup_failures": "LabelPickupFailures",
    "labels.file_failures": "LabelPickupFailures",
}
# Counts sent every interval, zero included: a live worker with nothing to do reports zeros,
# so an alarm on missing data means no worker, not a quiet stream.
ALWAYS_SENT: tuple[str, ...] = (
    "RecordsJudged",
    "RecordsFlagged",
    "RecordsInvalid",
    "DeadLetters",
    "RecordsDuplicate",
    "AlertsSent",
    "AlertsFailed",
    "S3Flushes",
    "ProcessingErrors",
    "Checkpoints",
)
# observe_ms name -> contract metric (unit Milliseconds, as StatisticValues).
DURATIONS: dict[str, str] = {
    "batch.total": "BatchProcessingTime",
    "s3.flush": "S3FlushLatency",
    "redis.load": "RedisLatency",
    "redis.save": "RedisLatency",
    "redis.mark_alerted": "RedisLatency",
    "kcl.millis_behind_latest": "MillisBehindLatest",
}
# `gave_up.<what>` (consumer/infra/retry.py, consumer/worker/checkpointing.py) -> the Output
# dimension.
OUTPUTS: dict[str, str] = {
    "s3_flagged": "s3_flagged",
    "s3_dead_letters": "s3_dead_letters",
    "sns_alerts": "sns",
    "redis_load": "redis",
    "redis_save": "redis",
    "redis_mark_alerted": "redis",
    "redis_ping": "redis",
    "checkpoint": "checkpoint",
}
# Prefixes of the per-rule and per-severity counts the pipeline keeps.
FLAGGED_RULE = "flagged.rule."
FLAGGED_SEVERITY = "flagged.severity."
SHADOW_RULE = "shadow.rule."
RULE_ERRORS = "rule_errors."  # a rule that raised on a record and so did not fire on it
GAVE_UP = "gave_up."
# `model.score.<n>`: records the model scored in [n, n+1), n = 0..100 (100: exactly 100), the
# batch's histogram (consumer/batch/pipeline.py). It becomes ModelScoreBand{Band} (ten bands of
# ten points) and the ModelScore distribution (Values/Counts, so CloudWatch gives percentiles).
MODEL_SCORE = "model.score."
MODEL_SCORED = "model.scored"
SCORE_BANDS: tuple[str, ...] = tuple(f"{low:02d}-{low + 10}" for low in range(0, 100, 10))


def score_band(bucket: int) -> str:
    """The Band of a score histogram bucket: [0, 10) is "00-10", ..., [90, 100] is "90-100"."""
    return SCORE_BANDS[min(max(bucket, 0) // 10, len(SCORE_BANDS) - 1)]


def merge(into: dict[str, float], snapshot: Mapping[str, float]) -> None:
    """Add a snapshot to an aggregate: counts and totals add up, minima and maxima combine."""
    for name, value in snapshot.items():
        if name not in into:
            into[name] = value
        elif name.endswith(".min_ms"):
            into[name] = min(into[name], value)
        elif name.endswith(".max_ms"):
            into[name] = max(into[name], value)
        else:
            into[name] += value


def to_datums(
    aggregate: Mapping[str, float], application: str, timestamp: datetime
) -> list[dict[str, Any]]:
    """The contract's data points for one interval's aggregate of in-process counters."""
    app = {"Name": "Application", "Value": application}
    counts: dict[tuple[str, str, str], float] = {(name, "", ""): 0.0 for name in ALWAYS_SENT}
    # metric -> (samples, sum, minimum, maximum); several sources may feed one metric.
    durations: dict[str, tuple[float, float, float, float]] = {}
    scores: dict[int, float] = {}  # score bucket -> records (MODEL_SCORE)

    def count(metric: str, value: float, dimension: str = "", dimension_value: str = "") -> None:
        key = (metric, dimension, dimension_value)
        counts[key] = counts.get(key, 0.0) + value

    for name, value in aggregate.items():
        if name in COUNTS:
            count(COUNTS[name], value)
        elif name.startswith(FLAGGED_RULE):
            count("FlaggedByRule", value, "Rule", name[len(FLAGGED_RULE) :])
        elif name.startswith(SHADOW_RULE):
            count("ShadowHitsByRule", value, "Rule", name[len(SHADOW_RULE) :])
        elif name.startswith(RULE_ERRORS):
            count("RuleErrors", value, "Rule", name[len(RULE_ERRORS) :])
        elif name.startswith(FLAGGED_SEVERITY):
            count("FlaggedBySeverity", value, "Severity", name[len(FLAGGED_SEVERITY) :])
        elif name.startswith(GAVE_UP):
            what = name[len(GAVE_UP) :]
            count("OutputGiveUps", value, "Output", OUTPUTS.get(what, what))
            count("ProcessingErrors", value)
        elif name.startswith(MODEL_SCORE):
            point = name[len(MODEL_SCORE) :]
            if point.isdigit() and int(point) <= 100 and value > 0:
                scores[int(point)] = scores.get(int(point), 0.0) + value
    if MODEL_SCORED in aggregate or scores:
        # A model was in force: every band is sent, zeros included, so a band that empties
        # shows as 0 on the dashboard (a distribution with gaps would read as a different one).
        for band in SCORE_BANDS:
            count("ModelScoreBand", 0.0, "Band", band)
        for bucket, records in scores.items():
            count("ModelScoreBand", records, "Band", score_band(bucket))
    for source, metric in DURATIONS.items():
        samples = aggregate.get(f"{source}.count", 0)
        if samples <= 0:
            continue
        stats = (
            samples,
            aggregate.get(f"{source}.total_ms", 0.0),
            aggregate.get(f"{source}.min_ms", 0.0),
            aggregate.get(f"{source}.max_ms", 0.0),
        )
        if metric in durations:
            seen = durations[metric]
            stats = (
                seen[0] + stats[0],
                seen[1] + stats[1],
                min(seen[2], stats[2]),
                max(seen[3], stats[3]),
            )
        durations[metric] = stats

    datums: list[dict[str, Any]] = []
    for (metric, dimension, dimension_value), value in sorted(counts.items()):
        dimensions = [app]
        if dimension:
            dimensions.append({"Name": dimension, "Value": dimension_value})
        datums.append(
            {
                "MetricName": metric,
                "Dimensions": dimensions,
                "Timestamp": timestamp,
                "Value": float(value),
                "Unit": "Count",
            }
        )
    if scores:
        # The interval's scores as values and how often each occurred (at most 101 values, within
        # PutMetricData's 150): CloudWatch answers p50/p90/p99 of ModelScore from these.
        buckets = sorted(scores)
        datums.append(
            {
                "MetricName": "ModelScore",
                "Dimensions": [app],
                "Timestamp": timestamp,
                "Values": [float(bucket) for bucket in buckets],
                "Counts": [float(scores[bucket]) for bucket in buckets],
                "Unit": "None",
            }
        )
    for metric, (samples, total, minimum, maximum) in sorted(durations.items()):
        datums.append(
            {
                "MetricName": metric,
                "Dimensions": [app],
                "Timestamp": timestamp,
                "StatisticValues": {
                    "SampleCount": float(samples),
                    "Sum": float(total),
                    "Minimum": float(minimum),
                    "Maximum": float(maximum),
                },
                "Unit": "Milliseconds",
            }
        )
    return datums


def chunks(datums: list[dict[str, Any]], size: int = MAX_DATUMS_PER_CALL) -> Iterator[list[Any]]:
    for start in range(0, len(datums), size):
        yield datums[start : start + size]


class CloudWatchPublisher:
    """Adds up every metrics snapshot of this process and publishes once per interval.

    `start()` subscribes to the in-process counters and starts the background thread; `flush()`
    publishes what is pending now (the processor calls it at shutdown, shard end and lease
    loss); `close()` stops the thread after a last flush. None of them raises.
    """

    def __init__(
        self,
        cloudwatch: Any,
        config: MetricsConfig,
        metrics: Metrics = METRICS,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        attempts: int = 3,
        deadline_s: float = 5.0,
        max_wait_s: float = 1.0,
        datums_of: Callable[[Mapping[str, float], str, datetime], list[dict[str, Any]]] = to_datums,
    ) -> None:
        """`datums_of`: an interval's aggregate into data points; the workers' contract metrics
        by default, the scoring API's own (consumer/api/metrics.py) for `fraudstream serve`."""
        self._datums_of = datums_of
        self._cloudwatch = cloudwatch
        self._config = config
        self._metrics = metrics
        self._now = now
        self._attempts = attempts
        self._deadline_s = deadline_s
        self._max_wait_s = max_wait_s
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.calls = 0  # PutMetricData calls made (retries included)
        self.lines = 0  # EMF lines written

    def add(self, snapshot: Snapshot) -> None:
        """A snapshot of the in-process counters (the Metrics subscriber): add it up."""
        with self._lock:
            merge(self._pending, snapshot)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._metrics.subscribe(self.add)
        self._thread = threading.Thread(
            target=self._run, name="cloudwatch-metrics", daemon=True
        )  # daemon: a stuck call can never keep the process alive
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._config.interval_s):
            self.publish(heartbeat=True)

    def flush(self) -> int:
        """Publish what is pending now, if anything; the number of data points sent."""
        return self.publish(heartbeat=False)

    def close(self) -> None:
        """Stop the background thread and publish what is left (bounded by the deadline)."""
        self._stop.set()
        self.flush()
        self._metrics.unsubscribe(self.add)

    def publish(self, heartbeat: bool) -> int:
        """Take the counters, send everything pending; the number of data points sent.

        With `heartbeat`, an interval without any data still sends the zero counts. Never
        raises: a failure drops this interval's data, logged and counted.
        """
        try:
            snapshot = self._metrics.snapshot_and_reset()  # subscribers get it: see add()
            if snapshot:
                log.info("metrics", **snapshot)
            with self._lock:
                aggregate, self._pending = self._pending, {}
            if not aggregate and not heartbeat:
                return 0
            now = self._now()
            datums = self._datums_of(aggregate, self._config.application, now)
            if self._config.mode == "emf":
                self.lines += emf.write(datums, self._config.namespace, now)
                return len(datums)
            sent = 0
            for chunk in chunks(datums):
                try:
                    self._send(chunk)
                except Exception as exc:
                    dropped = len(datums) - sent
                    self._metrics.incr("metrics.dropped_datums", dropped)
                    log.warning("metrics_dropped", datums=dropped, error=repr(exc))
                    return sent
                sent += len(chunk)
            return sent
        except Exception as exc:  # a bug here must not reach the record path either
            log.exception("metrics_publish_failed", error=repr(exc))
            return 0

    def _send(self, chunk: list[dict[str, Any]]) -> None:
        def put() -> None:
            self.calls += 1
            self._cloudwatch.put_metric_data(Namespace=self._config.namespace, MetricData=chunk)

        retrying = Retrying(
            stop=stop_after_attempt(self._attempts) | stop_after_delay(self._deadline_s),
            wait=wait_random_exponential(multiplier=0.2, max=self._max_wait_s),
            retry=retry_if_exception_type((BotoCoreError, ClientError, OSError))
            & retry_if_exception(is_transient),
            reraise=True,
        )
        retrying(put)
