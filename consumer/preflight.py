"""Start-up checks of `fraudstream worker`: every resource reached once, before the JVM starts.

Without them a missing bucket or an unreachable Redis shows only once records flow: the daemon
starts, leases shards, and each processor retries its outputs for half a minute before exiting,
over and over. Here each resource is asked once, side by side, with short timeouts, and every
problem is reported in one message that names the setting to fix, within seconds.

The task role is least-privilege (deploy/ecs): it may not hold s3:ListBucket (HeadBucket) or
sns:GetTopicAttributes. "Access denied" on those two therefore cannot tell a missing resource
from a forbidden look: it is a warning, not a failure. "Does not exist" always fails.

Settings are checked too: an unknown FRAUD_* variable that is one typo away from a known one
(FRAUD_ALERT_SEVERTY) stops start-up, since the setting it meant would silently keep its default;
any other unknown FRAUD_* variable is reported as a warning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import boto3
import redis
import redis.cluster
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from consumer.config import ConfigError, Settings

__all__ = ["KNOWN_KEYS", "PreflightError", "Report", "check_environment", "run_preflight"]

# Every FRAUD_* variable something in this project reads (FRAUD_RULE_* are checked by
# consumer.rules_settings). tests/unit/test_startup_config.py keeps this list complete.
KNOWN_KEYS: frozenset[str] = frozenset(
    {
        # consumer.config
        "FRAUD_BUCKET",
        "FRAUD_TOPIC_ARN",
        "FRAUD_REDIS_CLUSTER",
        "FRAUD_PREFIX",
        "FRAUD_ALERT_SEVERITY",
        "FRAUD_RULES_FILE",
        "FRAUD_FLUSH_MAX_RECORDS",
        "FRAUD_FLUSH_MAX_BYTES",
        "FRAUD_FLUSH_MAX_AGE_S",
        "FRAUD_RETRY_MAX_ATTEMPTS",
        "FRAUD_RETRY_MAX_WAIT_S",
        "FRAUD_RETRY_DEADLINE_S",
        "FRAUD_STATE_LATENESS_S",
        "FRAUD_DEDUP_TTL_S",
        "FRAUD_STATE_MEMORY_TTL_S",
        "FRAUD_STATE_MAX_ENTRIES",
        "FRAUD_STATE_CACHE_ACCOUNTS",
        "FRAUD_LOG_LEVEL",
        "FRAUD_TIMESTAMP_MAX_AHEAD_S",
        # the daemon and the worker command
        "FRAUD_STREAM",
        "FRAUD_APP_NAME",
        "FRAUD_KCL_PROFILE",
        "FRAUD_WORKER_ID",
        "FRAUD_PROPERTIES_OUT",
        "FRAUD_PROPERTIES_DIR",
        "FRAUD_JAVA",
        "FRAUD_JVM_OPTIONS",
        # the local stack (its workers inherit its environment)
        "FRAUD_STATE_DIR",
        "FRAUD_KINESIS_PORT",
        "FRAUD_KINESIS_TLS_PORT",
        "FRAUD_MOTO_PORT",
        "FRAUD_REDIS_PORT",
        "FRAUD_KINESIS_MOCK_JS",
        "FRAUD_ALERTS_QUEUE_URL",
    }
)

CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 3.0
_AWS_CONFIG = Config(
    retries={"total_max_attempts": 2, "mode": "standard"},
    connect_timeout=CONNECT_TIMEOUT_S,
    read_timeout=READ_TIMEOUT_S,
)


class PreflightError(RuntimeError):
    """A resource the worker needs is missing or unreachable; the message names the setting."""


@dataclass
class Report:
    """What the checks found: problems stop start-up, warnings are printed and tolerated."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_environment(env: Mapping[str, str]) -> list[str]:
    """Warnings for unknown FRAUD_* variables; ConfigError for one that looks like a typo."""
    warnings: list[str] = []
    for key in sorted(env):
        if not key.startswith("FRAUD_") or key in KNOWN_KEYS or key.startswith("FRAUD_RULE_"):
            continue
        close = sorted(known for known in KNOWN_KEYS if _one_typo_apart(key, known))
        if close:
            raise ConfigError(f"{key}: unknown setting; did you mean {close[0]}?")
        warnings.append(f"{key}: unknown setting, ignored")
    return warnings


def _one_typo_apart(a: str, b: str) -> bool:
    """One letter inserted, deleted, replaced, or two neighbours swapped."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    if len(a) == len(b):
        if a[start + 1 :] == b[start + 1 :]:
            return True  # replaced
        return (
            a[start : start + 2] == b[start : start + 2][::-1] and a[start + 2 :] == b[start + 2 :]
        )
    longer, shorter = (a, b) if len(a) > len(b) else (b, a)
    return longer[start + 1 :] == shorter[start:]


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


def _client(service: str, region: str) -> Any:
    """A client with short timeouts; endpoints follow AWS_ENDPOINT_URL_<SERVICE>."""
    session: Any = boto3.session.Session()
    return session.client(service, region_name=region, config=_AWS_CONFIG)


def run_preflight(
    settings: Settings,
    stream: str,
    client: Callable[[str, str], Any] = _client,
) -> Report:
    """Check Redis, the bucket, the topic and the stream side by side; raise PreflightError
    naming every problem, or return the warnings."""
    report = Report()
    checks: dict[str, Callable[[], None]] = {
        "REDIS_URL": lambda: _check_redis(settings, report),
        "FRAUD_BUCKET": lambda: _check_bucket(client("s3", settings.region), settings, report),
        "FRAUD_TOPIC_ARN": lambda: _check_topic(client("sns", settings.region), settings, report),
        "FRAUD_STREAM": lambda: _check_stream(client("kinesis", settings.region), stream, report),
    }
    with ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="preflight") as pool:
        futures = {key: pool.submit(check) for key, check in checks.items()}
        for key, future in futures.items():
            error = future.exception()
            if error is not None:  # e.g. a malformed AWS_ENDPOINT_URL_*: still named, still fatal
                report.problems.append(f"{key}: cannot be checked: {error!r}")
    if report.problems:
        raise PreflightError("; ".join(sorted(report.problems)))
    return report
