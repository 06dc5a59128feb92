"""The scoring API's settings: the worker's, read by the worker's own code, plus a few of its own.

The API judges with the engine the workers use, so it must read the rules, the model, the state
bounds and Redis exactly as they do: `load_settings` does that here too (a typo in a FRAUD_*
variable, a bad value: the same message, naming the variable). What the API never uses (the
bucket and topic the workers write to) is not required of it. Its own settings are FRAUD_API_*.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from consumer.settings.config import ConfigError, RetryConfig, Settings, load_settings

__all__ = ["ApiSettings", "ConfigError", "load_api_settings"]

# The worker's required outputs, which the API never writes: stand-ins so that load_settings
# validates everything else without asking for them.
_UNUSED_OUTPUTS = {"FRAUD_BUCKET": "unused-by-the-api", "FRAUD_TOPIC_ARN": "arn:unused"}

# `?ingest=true` puts the record with a short budget: the caller waits for the answer, and
# retries itself (the stream's duplicate detection makes a second put of one transaction id
# harmless). Well inside a load balancer's idle timeout.
INGEST_RETRY = RetryConfig(max_attempts=4, max_wait_s=0.5, deadline_s=3.0)


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Everything `fraudstream serve` reads from the environment, validated."""

    worker: Settings
    # Where the API keys' document is (docs/api.md, "Keys"): a file, or a Secrets Manager secret.
    keys_file: str | None
    keys_secret: str | None
    keys_refresh_s: float
    # A key's token bucket unless its entry says otherwise: requests per second, and burst.
    rate_per_s: float
    burst: int
    # The stream `?ingest=true` puts onto (FRAUD_STREAM, as the worker's); None: ingest refused.
    stream: str | None
    # When the readiness check gives up on Redis.
    ready_timeout_s: float = 1.0


def _positive(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{key}: must be a positive number, got {raw!r}") from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{key}: must be a positive number, got {raw!r}")
    return value


def load_api_settings(env: Mapping[str, str] | None = None) -> ApiSettings:
    """Read and validate; ConfigError naming the first bad variable."""
    env = dict(os.environ if env is None else env)
    worker = load_settings({**_UNUSED_OUTPUTS, **{k: v for k, v in env.items() if v.strip()}})
    keys_file = env.get("FRAUD_API_KEYS_FILE", "").strip() or None
    keys_secret = env.get("FRAUD_API_KEYS_SECRET", "").strip() or None
    if keys_file is None and keys_secret is None:
        raise ConfigError(
            "FRAUD_API_KEYS_FILE: required (or FRAUD_API_KEYS_SECRET): the API answers only "
            "requests with a key (`fraudstream serve --new-key NAME` makes one)"
        )
    if keys_file is not None and keys_secret is not None:
        raise ConfigError("FRAUD_API_KEYS_FILE: set together with FRAUD_API_KEYS_SECRET; set one")
    burst = _positive(env, "FRAUD_API_BURST", 200)
    if burst != int(burst):
        raise ConfigError(f"FRAUD_API_BURST: must be a whole number, got {burst!r}")
    return ApiSettings(
        worker=worker,
        keys_file=keys_file,
        keys_secret=keys_secret,
        keys_refresh_s=_positive(env, "FRAUD_API_KEYS_REFRESH_S", 60.0),
        rate_per_s=_positive(env, "FRAUD_API_RATE", 100.0),
        burst=int(burst),
        stream=env.get("FRAUD_STREAM", "").strip() or None,
    )
