"""`python -m bench.emf [--json] [--intervals N] [--rules R]`: the CPU of one metrics interval,
PutMetricData against Embedded Metric Format lines.

Both publish the same aggregate (every contract metric, R rules, durations, a full score
histogram) through consumer.infra.cloudwatch.CloudWatchPublisher:
- api: a real botocore CloudWatch client (request serialisation, SigV4 signing, response
  parsing); the HTTP send is answered in-process by a `before-send` hook with a 200, so the
  network's time is left out and only the process's CPU is measured;
- emf: the EMF lines rendered and written to a discarded stream.
Reported: CPU (time.process_time) per interval, best of --repeat runs of --intervals intervals.
The human table goes to stderr; with --json one JSON object is the last line of stdout.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import time
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

from consumer.infra.cloudwatch import CloudWatchPublisher, to_datums
from consumer.infra.logs import configure_logging
from consumer.infra.metrics import Metrics
from consumer.settings.config import MetricsConfig

AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
PUT_OK = (
    b'<PutMetricDataResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/">'
    b"<ResponseMetadata><RequestId>x</RequestId></ResponseMetadata></PutMetricDataResponse>"
)


class _Raw(io.BytesIO):
    def stream(self, **_: Any) -> Any:
        yield self.read()


def aggregate(rules: int) -> dict[str, float]:
    metrics = Metrics()
    metrics.incr_many(
        {
            "records.judged": 60_000,
            "records.flagged": 900,
            "records.alerted": 300,
            "s3_flagged.objects": 12,
            "checkpoints": 60,
            "model.scored": 60_000,
            "alerts.sent": 300,
            "s3_dead_letters.lines": 4,
            "records.invalid": 4,
        }
    )
    metrics.incr_many({f"flagged.rule.rule_{n}": 10 + n for n in range(rules)})
    metrics.incr_many({f"flagged.severity.{s}": 300 for s in ("low", "medium", "high")})
    metrics.incr_many({f"model.score.{point}": 1 + point for point in range(101)})
    for n in range(600):
        metrics.observe_ms("batch.total", 2.0 + n % 40)
        metrics.observe_ms("redis.load", 0.2 + n % 7 / 10)
        metrics.observe_ms("redis.save", 0.3 + n % 5 / 10)
        metrics.observe_ms("kcl.millis_behind_latest", float(n % 3 * 1000))
    metrics.observe_ms("s3.flush", 35.0)
    return metrics.snapshot_and_reset()


def api_client() -> Any:
    client = boto3.session.Session().client(
        "cloudwatch",
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - nothing leaves the process
    )

    def answer(**_: Any) -> AWSResponse:
        headers: Any = {}
        return AWSResponse(
            "https://monitoring.us-east-1.amazonaws.com/", 200, headers, _Raw(PUT_OK)
        )

    hook: Any = answer  # a before-send handler's return value is the response
    client.meta.events.register("before-send.cloudwatch.PutMetricData", hook)
    return client


def cpu_per_interval(mode: str, snapshot: dict[str, float], intervals: int, repeat: int) -> float:
    metrics = Metrics()
    config = MetricsConfig(mode=mode, namespace="Fraudstream", application="app", interval_s=60)
    publisher = CloudWatchPublisher(api_client(), config, metrics, now=lambda: AT)
    publisher.publish(heartbeat=True)  # warm: the client's first call loads its models
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for _ in range(intervals):
            publisher.add(dict(snapshot))
            publisher.publish(heartbeat=True)
        best = min(best, (time.process_time() - started) / intervals)
    # Every interval really went out: one call (api) or its lines (emf), nothing dropped.
    assert metrics.get("metrics.dropped_datums") == 0
    assert (publisher.calls if mode == "api" else publisher.lines) >= repeat * intervals
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.emf", description=__doc__)
    parser.add_argument("--json", action="store_true", help="a JSON summary on stdout")
    parser.add_argument("--intervals", type=int, default=200, help="intervals per run (200)")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best is kept (5)")
    parser.add_argument("--rules", type=int, default=10, help="rule ids that fired (10)")
    args = parser.parse_args(argv)
    # The EMF lines (and the publisher's `metrics` lines) go to a discarded stream.
    discard: Any = _Discard()
    configure_logging("warning", stream=discard)
    snapshot = aggregate(args.rules)
    datums = len(to_datums(snapshot, "app", AT))
    results = {
        mode: cpu_per_interval(mode, snapshot, args.intervals, args.repeat) * 1e3
        for mode in ("api", "emf")
    }
    summary = {
        "data_points": datums,
        "rules": args.rules,
        "cpu_ms_per_interval": {mode: round(ms, 3) for mode, ms in results.items()},
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    sys.stderr.write(
        f"{datums} data points per interval ({args.rules} rules): CPU per interval "
        f"api {results['api']:.3f} ms, emf {results['emf']:.3f} ms "
        f"(best of {args.repeat} x {args.intervals})\n"
    )
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
    return 0


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


if __name__ == "__main__":
    raise SystemExit(main())
