"""The API's connections and sources, built from the worker's settings as the worker builds its
own (consumer/worker/wiring.py, which the API, a sibling package, may not import): the same
Redis client options, the same rule-set and model sources with the same hot reload.

One difference, on purpose: the API reads the fleet's last good rule set (a start while the
published version is refused judges with it, as a worker would) but never writes it. The
workers keep that record; the API's role needs no write access to it and a reader that wrote
would make the record say a version was accepted by something that judges nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
import redis.cluster

from consumer.infra.aws_clients import aws_client
from consumer.reload.models import ModelSource, model_source
from consumer.reload.rulesets import (
    LastGood,
    LastGoodStore,
    RuleSetSource,
    builtin_ruleset,
    fetcher_for,
    last_good_location,
    last_good_store_for,
)
from consumer.rules import state_horizon_s
from consumer.rules.config import RulesConfig
from consumer.rules.ruleset import RuleSet
from consumer.settings.config import Settings
from consumer.state.redis_packing import LeanCommandPacker

__all__ = ["ReadOnlyLastGood", "model_source_for", "redis_client", "ruleset_source"]


def redis_client(settings: Settings, socket_timeout_s: float = 2.0) -> Any:
    """A client for REDIS_URL / FRAUD_REDIS_CLUSTER with the worker's options, and a shorter
    read timeout: a caller waits on this answer (the worker's is 5 s)."""
    options: dict[str, Any] = {
        "socket_connect_timeout": 2,
        "socket_timeout": socket_timeout_s,
        "health_check_interval": 30,
        "command_packer": LeanCommandPacker(),
    }
    if settings.redis_cluster:
        return redis.cluster.RedisCluster.from_url(settings.redis_url, **options)
    return redis.Redis.from_url(settings.redis_url, max_connections=64, **options)


class ReadOnlyLastGood(LastGoodStore):
    """The fleet's last good rule set, read and never written."""

    def __init__(self, store: LastGoodStore) -> None:
        self._store = store
        self.location = store.location

    def load(self) -> LastGood:
        return self._store.load()

    def remember(self, ruleset: RuleSet, body: bytes, source: str, accepted_by: str) -> bool:
        return False


def s3_client(settings: Settings) -> Callable[[], Any]:
    return lambda: aws_client("s3", settings.region)


def ruleset_source(settings: Settings) -> RuleSetSource:
    """FRAUD_RULESET, hot-reloaded (last good read, never written); else the contract rules
    as configured. Sized like the worker's: at least the default rules' history."""
    envelope = state_horizon_s(RulesConfig())
    if settings.ruleset is None:
        initial = builtin_ruleset(settings.rules)
        return RuleSetSource(None, 0, max(envelope, initial.state_horizon_s), fallback=initial)
    s3 = s3_client(settings)
    store = ReadOnlyLastGood(
        last_good_store_for(last_good_location(settings.ruleset, settings.ruleset_last_good), s3)
    )
    source = RuleSetSource(
        fetcher_for(settings.ruleset, s3),
        settings.ruleset_check_s,
        last_good=store,
        accepted_by="api",
    )
    source.max_horizon_s = max(envelope, source.max_horizon_s)
    return source


def model_source_for(settings: Settings) -> ModelSource | None:
    """FRAUD_MODEL_DIR, hot-reloaded as in the workers; None without one."""
    return model_source(settings, s3_client(settings))
