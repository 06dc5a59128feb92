"""Every setting of the worker, its default and its environment variable, validated at start-up.

The record processor is started by the MultiLangDaemon and inherits its environment, so the
environment is the one configuration channel that reaches every process the same way, on a laptop
and in an ECS task. A bad value stops start-up with a message naming the variable, before a single
record is read: a worker that guesses would judge a whole stream with the wrong thresholds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import InvalidOperation
from typing import TypeVar

from consumer.errors import FraudstreamError
from consumer.rules.config import SEVERITIES, RulesConfig
from consumer.settings.rules import RulesConfigError, load_rules_config
from consumer.settings.s3_uri import S3Location, is_s3, parse_s3

T = TypeVar("T")


class ConfigError(FraudstreamError, ValueError):
    """A setting is missing or invalid; the message names the environment variable."""


@dataclass(frozen=True, slots=True)
class FlushConfig:
    """When a buffered S3 object is written: whichever limit is reached first."""

    max_records: int = 500
    max_bytes: int = 4 * 1024 * 1024
    max_age_s: float = 10.0


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """Bounded retries for every output; past the budget the worker exits on purpose."""

    # The budget is time: a dependency away for up to about a minute (an ElastiCache failover,
    # an S3 or SNS blip) is ridden through without a restart, which would cost the leases.
    max_attempts: int = 30
    max_wait_s: float = 5.0
    # Per output call, retries included. Worst batch: Redis load + Redis save + two S3 PUTs in
    # the call, each up to deadline_s plus one last attempt: under timeoutInSeconds (600).
    deadline_s: float = 60.0


@dataclass(frozen=True, slots=True)
class StateConfig:
    """How long account state lives in Redis (see consumer/state/store.py for why)."""

    # Event-time disorder tolerated within an account beyond the longest rule window.
    lateness_s: int = 3600
    # Producer-retry duplicates are recognised for this long (docs/contract.md: 24 h).
    dedup_ttl_s: int = 86400
    # How long an account remembers its devices and that it has history.
    memory_ttl_s: int = 90 * 86400
    # At most this many recent transactions of one account are kept.
    max_entries: int = 2000
    # Accounts whose state each processor keeps in memory between batches (0: none).
    cache_accounts: int = 20_000
    # History entries those cached accounts may hold in all (0: none): the bound on the cache's
    # memory (an entry's size: docs/benchmarks.md#state-store), whatever the traffic's shape;
    # least recently used leave first.
    cache_entries: int = 100_000
    # Keep the long-horizon profiles (account day totals, merchants' counts and labels:
    # docs/profiles.md). FRAUD_PROFILES=auto (the default) keeps them when a model is configured,
    # the only reader of their features; `on` keeps them ahead of a model (its merchant and
    # 30-day features need that long to fill), `off` never.
    profiles: bool = True
    # A merchant's labels are read again at most this often (the label pickup itself runs
    # every FRAUD_LABELS_POLL_S); its day counts, which only other shards' records change, for
    # the days the features read, once per day.
    merchant_labels_refresh_s: float = 60.0


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """CloudWatch metrics (consumer/infra/cloudwatch.py): on by default, everywhere.

    On AWS this is what the dashboard and alarms read. The local stack points the CloudWatch
    client at its moto server (AWS_ENDPOINT_URL_CLOUDWATCH), so the same code path runs locally
    at the cost of one small request a minute per shard; FRAUD_METRICS_ENABLED=false turns it off.
    """

    enabled: bool = True
    # FRAUD_METRICS_MODE: "api" sends PutMetricData from the process; "emf" writes each interval
    # as CloudWatch Embedded Metric Format log lines on stderr, which CloudWatch Logs turns into
    # the same metrics when the awslogs driver ships them (the ECS template's mode).
    mode: str = "api"
    namespace: str = "Fraudstream"
    interval_s: float = 60.0
    # The `Application` dimension: the KCL application name (FRAUD_APP_NAME, as in the properties).
    application: str = "fraudstream"


@dataclass(frozen=True, slots=True)
class Settings:
    """The worker's whole configuration."""

    bucket: str
    topic_arn: str
    redis_url: str
    redis_cluster: bool = False
    prefix: str = ""
    region: str = "us-east-1"
    alert_severity: str = "medium"
    # Alerts published from a child process per shard (consumer/sinks/alert_process.py): botocore's
    # CPU off the judging thread's GIL, for the memory of a second, smaller process.
    alert_process: bool = True
    rules: RulesConfig = field(default_factory=RulesConfig)
    flush: FlushConfig = FlushConfig()
    retry: RetryConfig = RetryConfig()
    state: StateConfig = StateConfig()
    log_level: str = "info"
    metrics: MetricsConfig = MetricsConfig()
    # A record whose timestamp lies further than this after its arrival in the stream is
    # dead-lettered: it is a producer's bug (epoch microseconds, a wrong clock), not a payment.
    timestamp_max_ahead_s: int = 86400
    # A rule-set file or s3://bucket/key (docs/rules-as-data.md), checked for a new version every
    # ruleset_check_s seconds; None: the seven contract rules as FRAUD_RULES_FILE/FRAUD_RULE_* say.
    ruleset: str | None = None
    ruleset_check_s: float = 30.0
    # Where the fleet's last good rule set is kept (consumer/reload/rulesets.py): a file or
    # s3://bucket/key; None: beside the rule set, `<FRAUD_RULESET>.last-good.json`.
    ruleset_last_good: str | None = None
    # The audit trail: every judged transaction's decision under <prefix>decisions/ (off: cost).
    decisions: bool = False
    # The model score (docs/model.md): a directory written by `fraudstream train`; its score
    # flags at model_threshold (default: the one chosen in training) with model_severity.
    model_dir: str | None = None
    model_threshold: float | None = None
    model_severity: str = "high"
    model_shadow: bool = False
    # How often each processor checks FRAUD_MODEL_DIR for a new model (0: at every batch).
    model_check_s: float = 60.0
    # Labels in (docs/labels.md): label files dropped under <prefix><labels_prefix> are applied by
    # the fleet; each processor lists the prefix every labels_poll_s seconds (0: no pickup).
    labels_poll_s: float = 30.0
    labels_prefix: str = "labels/"


def _required(env: Mapping[str, str], key: str) -> str:
    value = env.get(key, "").strip()
    if not value:
        raise ConfigError(f"{key}: required but not set")
    return value


def _parsed(env: Mapping[str, str], key: str, default: T, parse: Callable[[str], T]) -> T:
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw.strip())
    except (ValueError, InvalidOperation) as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(f"must be a positive integer, got {raw!r}")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(f"must be a whole number >= 0, got {raw!r}")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0 or value == float("inf"):
        raise ValueError(f"must be a positive number, got {raw!r}")
    return value


def _severity(raw: str) -> str:
    value = raw.lower()
    if value not in SEVERITIES:
        raise ValueError(f"must be one of {', '.join(SEVERITIES)}, got {raw!r}")
    return value


def _boolean(raw: str) -> bool:
    value = raw.lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"must be true or false, got {raw!r}")
    return value in ("true", "1", "yes")


def _log_level(raw: str) -> str:
    value = raw.lower()
    if value not in ("debug", "info", "warning", "error"):
        raise ValueError(f"must be one of debug, info, warning, error, got {raw!r}")
    return value


def _prefix(raw: str) -> str:
    value = raw.lstrip("/")
    return value if value == "" or value.endswith("/") else value + "/"


def _redis_url(raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(
            f"must start with redis://, rediss:// or unix://, got {raw.split(':')[0]!r}"
        )
    return raw


def _namespace(raw: str) -> str:
    if len(raw) > 255 or not raw.isascii() or not raw.isprintable() or raw.startswith("AWS/"):
        raise ValueError(
            f"must be 1-255 printable ASCII characters, not starting with AWS/, got {raw!r}"
        )
    return raw


def _metrics_mode(raw: str) -> str:
    value = raw.lower()
    if value not in ("api", "emf"):
        raise ValueError(f"must be api or emf, got {raw!r}")
    return value


def _metrics_interval(raw: str) -> float:
    value = _positive_float(raw)
    if value < 1:
        raise ValueError(f"must be at least 1 (seconds), got {raw!r}")
    return value


def _dimension_value(raw: str) -> str:
    if len(raw) > 255 or not raw.isprintable():
        raise ValueError(f"must be 1-255 printable characters, got {raw!r}")
    return raw


def _score(raw: str) -> float | None:
    value = float(raw)
    if not 0 <= value <= 100:
        raise ValueError(f"must be a score from 0 to 100, got {raw!r}")
    return value


def _s3_location(raw: str) -> S3Location | None:
    """The bucket and key of an s3:// value; None when it names no bucket."""
    try:
        return parse_s3(raw)
    except ValueError:
        return None


def _ruleset_source(raw: str) -> str:
    if is_s3(raw):
        location = _s3_location(raw)
        if location is None or not location.key:
            raise ValueError(f"must be s3://<bucket>/<key> or a file path, got {raw!r}")
    elif not raw.lower().endswith((".yaml", ".yml", ".json")):
        raise ValueError(f"must name a .yaml, .yml or .json file, got {raw!r}")
    return raw


def _model_source(raw: str) -> str | None:
    if is_s3(raw) and _s3_location(raw) is None:
        raise ValueError(f"must be s3://<bucket>/<prefix>/ or a directory, got {raw!r}")
    return raw


def _labels_prefix(raw: str) -> str:
    value = _prefix(raw)
    if not value:
        raise ValueError("must name a prefix such as labels/, not the whole bucket")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"must be a number of seconds >= 0, got {raw!r}")
    return value


def _ruleset(env: Mapping[str, str]) -> str | None:
    source = env.get("FRAUD_RULESET", "").strip()
    if not source:
        return None
    # One source of truth for the rules: a rule set file replaces the older settings.
    older = sorted(k for k in env if k == "FRAUD_RULES_FILE" or k.startswith("FRAUD_RULE_"))
    if older:
        raise ConfigError(
            f"FRAUD_RULESET: set together with {', '.join(older)}; put those parameters in the "
            "rule set file instead"
        )
    return _parsed(env, "FRAUD_RULESET", "", _ruleset_source)


def _ruleset_last_good(env: Mapping[str, str], ruleset: str | None) -> str | None:
    raw = env.get("FRAUD_RULESET_LAST_GOOD", "").strip()
    if not raw:
        return None
    if ruleset is None:
        raise ConfigError("FRAUD_RULESET_LAST_GOOD: set without FRAUD_RULESET")
    if raw == ruleset:
        raise ConfigError(
            "FRAUD_RULESET_LAST_GOOD: the rule set itself; name another file or object"
        )
    if is_s3(raw):
        location = _s3_location(raw)
        if location is None or not location.key or location.key.endswith("/"):
            raise ConfigError(
                f"FRAUD_RULESET_LAST_GOOD: must be s3://<bucket>/<key> or a file path, got {raw!r}"
            )
    return raw


def _rules(env: Mapping[str, str]) -> RulesConfig:
    try:
        return load_rules_config(env)
    except RulesConfigError as exc:
        raise ConfigError(str(exc)) from None


def load_state_config(env: Mapping[str, str] | None = None) -> StateConfig:
    """The state store's bounds alone (the backtest builds histories with the same ones)."""
    env = os.environ if env is None else env
    return StateConfig(
        lateness_s=_parsed(env, "FRAUD_STATE_LATENESS_S", 3600, _positive_int),
        dedup_ttl_s=_parsed(env, "FRAUD_DEDUP_TTL_S", 86400, _positive_int),
        memory_ttl_s=_parsed(env, "FRAUD_STATE_MEMORY_TTL_S", 90 * 86400, _positive_int),
        max_entries=_parsed(env, "FRAUD_STATE_MAX_ENTRIES", 2000, _positive_int),
        cache_accounts=_parsed(env, "FRAUD_STATE_CACHE_ACCOUNTS", 20_000, _non_negative_int),
        cache_entries=_parsed(env, "FRAUD_STATE_CACHE_ENTRIES", 100_000, _non_negative_int),
        profiles=_profiles(env),
        merchant_labels_refresh_s=_parsed(
            env, "FRAUD_PROFILE_LABELS_REFRESH_S", 60.0, _non_negative_float
        ),
    )


def _profiles(env: Mapping[str, str]) -> bool:
    """FRAUD_PROFILES: auto (kept when FRAUD_MODEL_DIR is set), on, off."""

    def parse(raw: str) -> str:
        value = raw.lower()
        if value not in ("auto", "on", "off"):
            raise ValueError(f"must be auto, on or off, got {raw!r}")
        return value

    mode = _parsed(env, "FRAUD_PROFILES", "auto", parse)
    if mode == "auto":
        return bool(env.get("FRAUD_MODEL_DIR", "").strip())
    return mode == "on"


def load_redis_location(env: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """REDIS_URL and FRAUD_REDIS_CLUSTER alone, read as the worker reads them: what a command
    that only writes to Redis (`fraudstream labels import`) needs, without the worker's
    required settings."""
    env = os.environ if env is None else env
    return (
        _parsed(env, "REDIS_URL", "redis://127.0.0.1:6379/0", _redis_url),
        _parsed(env, "FRAUD_REDIS_CLUSTER", False, _boolean),
    )


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings; raise ConfigError naming the first bad variable."""
    env = os.environ if env is None else env
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    topic_arn = _required(env, "FRAUD_TOPIC_ARN")
    if not topic_arn.startswith("arn:"):
        raise ConfigError(f"FRAUD_TOPIC_ARN: must be an SNS topic ARN, got {topic_arn!r}")
    return Settings(
        bucket=_required(env, "FRAUD_BUCKET"),
        topic_arn=topic_arn,
        redis_url=_parsed(env, "REDIS_URL", "redis://127.0.0.1:6379/0", _redis_url),
        redis_cluster=_parsed(env, "FRAUD_REDIS_CLUSTER", False, _boolean),
        alert_process=_parsed(env, "FRAUD_ALERT_PROCESS", True, _boolean),
        prefix=_parsed(env, "FRAUD_PREFIX", "", _prefix),
        region=region,
        alert_severity=_parsed(env, "FRAUD_ALERT_SEVERITY", "medium", _severity),
        rules=_rules(env),
        flush=FlushConfig(
            max_records=_parsed(env, "FRAUD_FLUSH_MAX_RECORDS", 500, _positive_int),
            max_bytes=_parsed(env, "FRAUD_FLUSH_MAX_BYTES", 4 * 1024 * 1024, _positive_int),
            max_age_s=_parsed(env, "FRAUD_FLUSH_MAX_AGE_S", 10.0, _positive_float),
        ),
        retry=RetryConfig(
            max_attempts=_parsed(env, "FRAUD_RETRY_MAX_ATTEMPTS", 30, _positive_int),
            max_wait_s=_parsed(env, "FRAUD_RETRY_MAX_WAIT_S", 5.0, _positive_float),
            deadline_s=_parsed(env, "FRAUD_RETRY_DEADLINE_S", 60.0, _positive_float),
        ),
        state=load_state_config(env),
        log_level=_parsed(env, "FRAUD_LOG_LEVEL", "info", _log_level),
        metrics=MetricsConfig(
            enabled=_parsed(env, "FRAUD_METRICS_ENABLED", True, _boolean),
            mode=_parsed(env, "FRAUD_METRICS_MODE", "api", _metrics_mode),
            namespace=_parsed(env, "FRAUD_METRICS_NAMESPACE", "Fraudstream", _namespace),
            interval_s=_parsed(env, "FRAUD_METRICS_INTERVAL_S", 60.0, _metrics_interval),
            application=_parsed(env, "FRAUD_APP_NAME", "fraudstream", _dimension_value),
        ),
        timestamp_max_ahead_s=_parsed(env, "FRAUD_TIMESTAMP_MAX_AHEAD_S", 86400, _positive_int),
        ruleset=_ruleset(env),
        ruleset_last_good=_ruleset_last_good(env, _ruleset(env)),
        ruleset_check_s=_parsed(env, "FRAUD_RULESET_CHECK_S", 30.0, _positive_float),
        decisions=_parsed(env, "FRAUD_DECISIONS", False, _boolean),
        model_dir=_parsed(env, "FRAUD_MODEL_DIR", None, _model_source),
        model_threshold=_parsed(env, "FRAUD_MODEL_THRESHOLD", None, _score),
        model_severity=_parsed(env, "FRAUD_MODEL_SEVERITY", "high", _severity),
        model_shadow=_parsed(env, "FRAUD_MODEL_SHADOW", False, _boolean),
        model_check_s=_parsed(env, "FRAUD_MODEL_CHECK_S", 60.0, _non_negative_float),
        labels_poll_s=_parsed(env, "FRAUD_LABELS_POLL_S", 30.0, _non_negative_float),
        labels_prefix=_parsed(env, "FRAUD_LABELS_PREFIX", "labels/", _labels_prefix),
    )
