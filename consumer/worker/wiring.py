"""Builds the I/O edges (boto3 clients, Redis, sinks) for one shard's pipeline.

The pipeline (consumer/batch/pipeline.py) sees none of these concretely: it is given them as
the protocols of consumer/batch/ports.py, and of the settings only what it reads
(PipelineSettings, built here). This module is where the concrete pieces meet.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import boto3
import redis
import redis.cluster
from botocore.config import Config

from consumer.batch.pipeline import BatchPipeline
from consumer.batch.ports import PipelineSettings
from consumer.infra.aws_clients import aws_client
from consumer.infra.cloudwatch import CloudWatchPublisher
from consumer.infra.retry import REDIS_ERRORS, call_with_retries
from consumer.model.features import MODEL_HORIZON_S
from consumer.reload.models import model_source
from consumer.reload.rulesets import (
    RuleSetSource,
    builtin_ruleset,
    fetcher_for,
    last_good_location,
    last_good_store_for,
)
from consumer.rules import state_horizon_s
from consumer.rules.config import RulesConfig
from consumer.settings.config import Settings
from consumer.sinks.alert_process import production_alert_process
from consumer.sinks.alerts import AlertPublisher, AlertSink
from consumer.sinks.s3_batches import (
    S3JsonLinesBatch,
    dead_letter_key,
    decisions_key,
    flagged_key,
    shadow_key,
)
from consumer.state.redis_packing import LeanCommandPacker
from consumer.state.store import AccountStateStore, BatchView
from consumer.worker.checkpointing import CheckpointPolicy

# Metrics are best effort (consumer/infra/cloudwatch.py): short timeouts, our own few retries only.
_METRICS_BOTO_CONFIG = Config(
    retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=5
)


def redis_client(settings: Settings) -> Any:
    """A client for REDIS_URL: `rediss://` for TLS, `redis://:token@host` or
    `redis://user:token@host` for AUTH; FRAUD_REDIS_CLUSTER=true for cluster mode."""
    options: dict[str, Any] = {
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
        "health_check_interval": 30,
        "command_packer": LeanCommandPacker(),
    }
    if settings.redis_cluster:
        return redis.cluster.RedisCluster.from_url(settings.redis_url, **options)
    return redis.Redis.from_url(settings.redis_url, **options)


def check_redis(client: Any, settings: Settings) -> None:
    """Fail start-up early (retried, bounded) when Redis is unreachable."""
    call_with_retries("redis_ping", client.ping, settings.retry, retry_on=REDIS_ERRORS)


def pipeline_settings(settings: Settings) -> PipelineSettings:
    """What the pipeline reads of the worker's settings."""
    return PipelineSettings(
        retry=settings.retry,
        alert_severity=settings.alert_severity,
        timestamp_max_ahead_s=settings.timestamp_max_ahead_s,
        rules=settings.rules,
    )


def assemble_pipeline(
    shard_id: str,
    settings: Settings,
    s3: Any,
    sns: Any,
    redis_conn: Any,
    alerts: AlertSink | None = None,
) -> tuple[BatchPipeline[BatchView], CheckpointPolicy]:
    """The pipeline and its checkpoint policy over the given clients (tests pass moto's).
    Alerts go to `alerts`, else to a publisher in this process over `sns`."""
    flagged = S3JsonLinesBatch(
        "flagged", s3, settings.bucket, settings.prefix, flagged_key, settings.flush, settings.retry
    )
    dead_letters = S3JsonLinesBatch(
        "dead_letters",
        s3,
        settings.bucket,
        settings.prefix,
        dead_letter_key,
        settings.flush,
        settings.retry,
    )
    shadow = S3JsonLinesBatch(
        "shadow", s3, settings.bucket, settings.prefix, shadow_key, settings.flush, settings.retry
    )
    if alerts is None:
        alerts = AlertPublisher(sns, settings.topic_arn, settings.retry)
    rulesets = ruleset_source(settings, lambda: s3)
    model = model_source(settings, lambda: s3)  # a directory or S3 prefix, hot-reloaded
    if model is not None:  # its features read up to 24 h back
        rulesets.max_horizon_s = max(rulesets.max_horizon_s, Decimal(MODEL_HORIZON_S))
    # A merchant's cached counts are reused while the model's reads stay on settled days: they
    # end its label delay back (read from the model in force, which may be reloaded).
    read_back: int | Callable[[], int] = (
        0 if model is None else (lambda: model.model.scorer.label_delay_days)
    )
    store = AccountStateStore(
        redis_conn, settings.state, rulesets.max_horizon_s, shard_id, read_back
    )
    decisions = (
        S3JsonLinesBatch(
            "decisions",
            s3,
            settings.bucket,
            settings.prefix,
            decisions_key,
            settings.flush,
            settings.retry,
        )
        if settings.decisions
        else None
    )
    pipeline = BatchPipeline(
        shard_id,
        pipeline_settings(settings),
        flagged,
        dead_letters,
        alerts,
        store,
        rulesets=rulesets,
        shadow=shadow,
        decisions=decisions,
        model=model,
    )
    sinks = [flagged, shadow, dead_letters] + ([decisions] if decisions is not None else [])
    policy = CheckpointPolicy(sinks, settings.flush.max_age_s, in_flight=pipeline)
    return pipeline, policy


def ruleset_source(settings: Settings, s3: Callable[[], Any]) -> RuleSetSource:
    """FRAUD_RULESET (a file or S3 object, hot-reloaded), else the contract rules as configured.

    Every version accepted is kept as the last good one (FRAUD_RULESET_LAST_GOOD, by default
    beside the rule set), and a start while the published version is refused judges with it.
    The state store keeps at least the history the contract rules at their defaults need, so a
    reloaded version within that envelope never waits for a restart."""
    envelope = state_horizon_s(RulesConfig())
    if settings.ruleset is None:
        initial = builtin_ruleset(settings.rules)
        return RuleSetSource(None, 0, max(envelope, initial.state_horizon_s), fallback=initial)
    store = last_good_store_for(
        last_good_location(settings.ruleset, settings.ruleset_last_good), s3
    )
    source = RuleSetSource(
        fetcher_for(settings.ruleset, s3), settings.ruleset_check_s, last_good=store
    )
    source.max_horizon_s = max(envelope, source.max_horizon_s)
    return source


def build_pipeline(
    shard_id: str, settings: Settings
) -> tuple[BatchPipeline[BatchView], CheckpointPolicy]:
    """The production wiring: real clients, and Redis reachable before the first record."""
    redis_conn = redis_client(settings)
    check_redis(redis_conn, settings)
    alerts = production_alert_process(shard_id, settings) if settings.alert_process else None
    return assemble_pipeline(
        shard_id,
        settings,
        aws_client("s3", settings.region),
        # With an alert process, this process never talks to SNS.
        aws_client("sns", settings.region) if alerts is None else None,
        redis_conn,
        alerts,
    )


def build_publisher(settings: Settings) -> CloudWatchPublisher | None:
    """The CloudWatch publisher, or None when FRAUD_METRICS_ENABLED=false. Its endpoint follows
    AWS_ENDPOINT_URL_CLOUDWATCH like every other client (the local stack's moto server)."""
    if not settings.metrics.enabled:
        return None
    session: Any = boto3.session.Session()
    cloudwatch = session.client(
        "cloudwatch", region_name=settings.region, config=_METRICS_BOTO_CONFIG
    )
    return CloudWatchPublisher(cloudwatch, settings.metrics)
