"""The load-test report: what the consumer produced, read back from S3 and SNS, against labels.

Latency is measured from the moment the producer stamped the transaction (its `timestamp`,
taken when the record was generated, within the producer's 0.1 s send tick) to:
- the SNS publish time of its alert (the `Timestamp` of the SNS envelope the tap queue got);
- the `LastModified` time of the S3 object holding its flagged line.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from load_test.charts import memory_panel


@dataclass
class Report:
    produced: int = 0
    produce_seconds: float = 0.0
    judged: int = 0
    invalid: int = 0
    duplicates: int = 0
    flagged: int = 0
    alerts: int = 0
    flagged_by_rule: dict[str, int] = field(default_factory=dict)
    recall_by_rule: dict[str, float | None] = field(default_factory=dict)
    precision_by_rule: dict[str, float | None] = field(default_factory=dict)
    recall: float | None = None
    precision: float | None = None
    alert_latency_s: dict[str, float] = field(default_factory=dict)
    s3_latency_s: dict[str, float] = field(default_factory=dict)
    # The producer's own delay: the transaction's timestamp -> its put acknowledged. The two
    # latencies above start at the acknowledgement, so a producer (or a stand-in) that falls
    # behind shows here, not as the consumer's latency.
    put_lag_s: dict[str, float] = field(default_factory=dict)
    catch_up_seconds: float = 0.0
    # Per shard: the newest sequence number the producer put, and the consumers' checkpoint when
    # the wait ended (it ends once every checkpoint is at or past what was put).
    checkpoints: dict[str, dict[str, str | None]] = field(default_factory=dict)
    throughput_per_s: float = 0.0
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    timeline: list[dict[str, float]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)

    return {
        "count": len(ordered),
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": round(ordered[-1], 4),
        "mean": round(statistics.fmean(ordered), 4),
    }


def score_labels(
    expected: dict[str, frozenset[str]], found: dict[str, frozenset[str]], report: Report
) -> None:
    """Recall and precision per rule and overall (flagged at all vs labelled fraud)."""
    rules = sorted(
        {r for rs in expected.values() for r in rs} | {r for rs in found.values() for r in rs}
    )
    for rule in rules:
        labelled = {t for t, rs in expected.items() if rule in rs}
        hit = {t for t, rs in found.items() if rule in rs}
        report.recall_by_rule[rule] = (
            round(len(labelled & hit) / len(labelled), 4) if labelled else None
        )
        report.precision_by_rule[rule] = round(len(labelled & hit) / len(hit), 4) if hit else None
    fraud = {t for t, rs in expected.items() if rs}
    flagged = set(found)
    report.recall = round(len(fraud & flagged) / len(fraud), 4) if fraud else None
    report.precision = round(len(fraud & flagged) / len(flagged), 4) if flagged else None


def rule_counts(found: dict[str, frozenset[str]]) -> dict[str, int]:
    return dict(Counter(rule for rules in found.values() for rule in rules))


def plot(
    report: Report,
    path: Path,
    process_rows: Sequence[Mapping[str, float]] = (),
    sampler_offset_s: float = 0.0,
) -> bool:
    """Latency and throughput over time as a PNG, with the stack's resident memory by role
    below when `process_rows` (load_test.run's sampler, `t` from its start, which is
    `sampler_offset_s` after the run's) are given; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    seconds = [point["t"] for point in report.timeline]
    panels = 3 if process_rows else 2
    figure, axes = plt.subplots(panels, 1, figsize=(10, 3.5 * panels), sharex=True)
    top, bottom = axes[0], axes[1]
    top.plot(seconds, [p.get("alert_p50", float("nan")) for p in report.timeline], label="p50")
    top.plot(seconds, [p.get("alert_p99", float("nan")) for p in report.timeline], label="p99")
    top.plot(seconds, [p.get("alert_max", float("nan")) for p in report.timeline], label="max")
    top.axhline(1.0, color="red", linestyle="--", linewidth=0.8, label="1 s target")
    top.set_ylabel("put -> alert (s)")
    top.legend(loc="upper right")
    top.set_title("fraudstream load test")
    bottom.plot(seconds, [p["produced_per_s"] for p in report.timeline], label="produced/s")
    bottom.plot(seconds, [p["alerts_per_s"] for p in report.timeline], label="alerts/s")
    bottom.set_ylabel("records/s")
    bottom.legend(loc="upper right")
    if process_rows:
        memory_panel(axes[2], process_rows, sampler_offset_s)
    axes[-1].set_xlabel("seconds since start")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def timeline(
    start: float, put_times: list[float], alert_pairs: list[tuple[float, float]]
) -> list[dict[str, float]]:
    """Per-second buckets: produced/s, alerts/s and alert latency percentiles."""
    buckets: dict[int, dict[str, Any]] = {}
    for put in put_times:
        buckets.setdefault(int(put - start), {"produced": 0, "alerts": []})["produced"] += 1
    for put, published in alert_pairs:
        buckets.setdefault(int(published - start), {"produced": 0, "alerts": []})["alerts"].append(
            published - put
        )
    points = []
    for second in sorted(buckets):
        bucket = buckets[second]
        point: dict[str, float] = {
            "t": float(second),
            "produced_per_s": float(bucket["produced"]),
            "alerts_per_s": float(len(bucket["alerts"])),
        }
        if bucket["alerts"]:
            latency = percentiles(bucket["alerts"])
            point.update(
                alert_p50=latency["p50"], alert_p99=latency["p99"], alert_max=latency["max"]
            )
        points.append(point)
    return points


def render_text(report: Report) -> str:
    lines = [
        f"produced        {report.produced} in {report.produce_seconds:.1f} s "
        f"({report.throughput_per_s:.0f} records/s)",
        f"judged          {report.judged} "
        f"(invalid {report.invalid}, duplicates {report.duplicates})",
        f"flagged         {report.flagged}   alerts {report.alerts}",
        f"caught up       {report.catch_up_seconds:.1f} s after the producer stopped",
        f"recall          {report.recall}   precision {report.precision}",
    ]
    for rule, count in sorted(report.flagged_by_rule.items()):
        lines.append(
            f"  {rule:<24} {count:>7}  recall {report.recall_by_rule.get(rule)}  "
            f"precision {report.precision_by_rule.get(rule)}"
        )
    for name, values in (
        ("put -> alert", report.alert_latency_s),
        ("put -> S3", report.s3_latency_s),
        ("txn -> put", report.put_lag_s),
    ):
        if values:
            lines.append(
                f"{name:<15} p50 {values['p50']:.3f} s  p95 {values['p95']:.3f} s  "
                f"p99 {values['p99']:.3f} s  max {values['max']:.3f} s  (n={values['count']})"
            )
    for name, mb in sorted(report.peak_rss_mb.items()):
        lines.append(f"peak RSS        {name}: {mb:.0f} MB")
    return "\n".join(lines)
