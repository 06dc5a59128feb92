"""Start-up checks of `fraudstream worker`: every resource reached once, before the JVM starts.

Without them a missing bucket or an unreachable Redis shows only once records flow: the daemon
starts, leases shards, and each processor retries its outputs for half a minute before exiting,
over and over. Here each resource is asked once, side by side, with short timeouts, and every
problem is reported in one message that names the setting to fix, within seconds.

The task role is least-privilege (deploy/ecs): it may not hold s3:ListBucket (HeadBucket) or
sns:GetTopicAttributes. "Access denied" on those two therefore cannot tell a missing resource
from a forbidden look: it is a warning, not a failure. "Does not exist" always fails.

The rule set (FRAUD_RULESET) is read and loaded as a processor would at start: a refused or
unreadable published version with a valid last good version is a warning (the processors start
with the last good one, consumer/reload/rulesets.py); with none, start-up stops with a
configuration problem (exit 78: no restart fixes it), or, when the storage did not answer, an
unavailable one (exit 69).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import boto3
import redis
import redis.cluster
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from consumer.errors import FraudstreamError
from consumer.reload.rulesets import (
    NoUsableRuleSet,
    fetcher_for,
    last_good_location,
    last_good_store_for,
    starting_ruleset,
)
from consumer.settings.config import Settings

__all__ = [
    "PreflightConfigError",
    "PreflightError",
    "Report",
    "redis_location",
    "run_preflight",
]

CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 3.0
_AWS_CONFIG = Config(
    retries={"total_max_attempts": 2, "mode": "standard"},
    connect_timeout=CONNECT_TIMEOUT_S,
    read_timeout=READ_TIMEOUT_S,
)


class PreflightError(FraudstreamError, RuntimeError):
    """A resource the worker needs is missing or unreachable; the message names the setting."""


class PreflightConfigError(PreflightError):
    """What a setting points to can never work as it is (a rule set refused, with no version
    ever accepted): no restart fixes it, so `fraudstream worker` exits 78 (EX_CONFIG)."""


@dataclass
class Report:
    """What the checks found: problems stop start-up, warnings are printed and tolerated.
    `config_problems` stop it too, as a configuration error."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    config_problems: list[str] = field(default_factory=list)


def _aws_error(exc: Exception) -> tuple[str, int]:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return str(error.get("Code", "")), status
    return "", 0


def _check_bucket(s3: Any, settings: Settings, report: Report) -> None:
    try:
        s3.head_bucket(Bucket=settings.bucket)
    except (ClientError, BotoCoreError) as exc:
        code, status = _aws_error(exc)
        if status == 404 or code in ("404", "NoSuchBucket", "NotFound"):
            report.problems.append(f"FRAUD_BUCKET: bucket {settings.bucket!r} does not exist")
        elif status == 301 or code in ("301", "PermanentRedirect"):
            report.warnings.append(
                f"FRAUD_BUCKET: bucket {settings.bucket!r} is in another region than "
                f"{settings.region}; going on"
            )
        elif status == 403 or code in ("403", "AccessDenied", "Forbidden"):
            report.warnings.append(
                f"FRAUD_BUCKET: cannot check bucket {settings.bucket!r} (access denied to "
                "HeadBucket, i.e. s3:ListBucket); going on"
            )
        else:
            report.problems.append(f"FRAUD_BUCKET: cannot reach S3 for {settings.bucket!r}: {exc}")


def _check_topic(sns: Any, settings: Settings, report: Report) -> None:
    try:
        sns.get_topic_attributes(TopicArn=settings.topic_arn)
    except (ClientError, BotoCoreError) as exc:
        code, status = _aws_error(exc)
        if code in ("NotFound", "NotFoundException") or status == 404:
            report.problems.append(f"FRAUD_TOPIC_ARN: topic {settings.topic_arn} does not exist")
        elif code in ("AuthorizationError", "AccessDenied", "AccessDeniedException"):
            report.warnings.append(
                f"FRAUD_TOPIC_ARN: cannot check topic {settings.topic_arn} (access denied to "
                "sns:GetTopicAttributes); going on"
            )
        elif code in ("InvalidParameter", "InvalidParameterException"):
            report.problems.append(f"FRAUD_TOPIC_ARN: {settings.topic_arn} is not a topic: {exc}")
        else:
            report.problems.append(f"FRAUD_TOPIC_ARN: cannot reach SNS: {exc}")


def _check_stream(kinesis: Any, stream: str, report: Report) -> None:
    try:
        summary = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    except (ClientError, BotoCoreError) as exc:
        code, _ = _aws_error(exc)
        if code == "ResourceNotFoundException":
            report.problems.append(f"FRAUD_STREAM: stream {stream!r} does not exist")
        elif code in ("AccessDeniedException", "AccessDenied"):
            report.problems.append(
                f"FRAUD_STREAM: access denied to kinesis:DescribeStreamSummary on {stream!r},"
                " which the KCL needs"
            )
        else:
            report.problems.append(f"FRAUD_STREAM: cannot reach Kinesis for {stream!r}: {exc}")
        return
    status = summary.get("StreamStatus")
    if status == "DELETING":
        report.problems.append(f"FRAUD_STREAM: stream {stream!r} is being deleted")


def redis_location(url: str) -> str:
    """Where a Redis URL points, without its credentials (they must never reach a log)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    try:
        port = parts.port or 6379
    except ValueError:
        port = 6379
    return f"{parts.scheme}://{parts.hostname or '?'}:{port}"


def _check_redis(settings: Settings, report: Report) -> None:
    options: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "socket_timeout": READ_TIMEOUT_S,
    }
    where = redis_location(settings.redis_url)
    client: Any = None
    try:
        if settings.redis_cluster:
            client = redis.cluster.RedisCluster.from_url(settings.redis_url, **options)
        else:
            client = redis.Redis.from_url(settings.redis_url, **options)
        client.ping()
    except redis.AuthenticationError:
        report.problems.append(f"REDIS_URL: Redis at {where} refused the credentials")
    except Exception as exc:  # any client error: what matters is that start-up stops here
        kind = type(exc).__name__
        report.problems.append(f"REDIS_URL: cannot reach Redis at {where} ({kind}: {exc})")
    finally:
        if client is not None:
            client.close()


def _check_ruleset(settings: Settings, s3: Callable[[], Any], report: Report) -> None:
    """The rule set a processor starting now would judge with (consumer/reload/rulesets.py)."""
    if settings.ruleset is None:
        return
    location = last_good_location(settings.ruleset, settings.ruleset_last_good)
    try:
        start = starting_ruleset(
            fetcher_for(settings.ruleset, s3), last_good_store_for(location, s3)
        )
    except NoUsableRuleSet as exc:
        (report.problems if exc.transient else report.config_problems).append(
            f"FRAUD_RULESET: {exc}; publish a version that loads"
        )
        return
    good = start.last_good
    if good is not None:
        report.warnings.append(
            f"FRAUD_RULESET: {settings.ruleset} {start.refused}; the processors start with the "
            f"last good version {good.version!r} (sha256 {good.sha256[:12]}, accepted "
            f"{good.accepted_at or '?'} by {good.accepted_by or '?'}) from {good.location}"
        )


def _client(service: str, region: str) -> Any:
    """A client with short timeouts; endpoints follow AWS_ENDPOINT_URL_<SERVICE>."""
    session: Any = boto3.session.Session()
    return session.client(service, region_name=region, config=_AWS_CONFIG)


def run_preflight(
    settings: Settings,
    stream: str,
    client: Callable[[str, str], Any] = _client,
) -> Report:
    """Check Redis, the bucket, the topic, the stream and the rule set side by side; raise
    PreflightError naming every problem (PreflightConfigError when one of them is a
    configuration problem), or return the warnings."""
    report = Report()
    checks: dict[str, Callable[[], None]] = {
        "REDIS_URL": lambda: _check_redis(settings, report),
        "FRAUD_BUCKET": lambda: _check_bucket(client("s3", settings.region), settings, report),
        "FRAUD_TOPIC_ARN": lambda: _check_topic(client("sns", settings.region), settings, report),
        "FRAUD_STREAM": lambda: _check_stream(client("kinesis", settings.region), stream, report),
        "FRAUD_RULESET": lambda: _check_ruleset(
            settings, lambda: client("s3", settings.region), report
        ),
    }
    with ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="preflight") as pool:
        futures = {key: pool.submit(check) for key, check in checks.items()}
        for key, future in futures.items():
            error = future.exception()
            if error is not None:  # e.g. a malformed AWS_ENDPOINT_URL_*: still named, still fatal
                report.problems.append(f"{key}: cannot be checked: {error!r}")
    if report.config_problems:
        raise PreflightConfigError("; ".join(sorted(report.config_problems + report.problems)))
    if report.problems:
        raise PreflightError("; ".join(sorted(report.problems)))
    report.warnings.sort()
    return report
