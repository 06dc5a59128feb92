"""Bounded retries with exponential backoff and jitter for every output call.

A give-up is never silent: it is logged, counted and raised as OutputGaveUp, which the processor
turns into a deliberate exit so that the KCL restarts the worker from the last checkpoint instead
of moving past records whose outputs were never written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from redis.exceptions import RedisError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from consumer.errors import FraudstreamError
from consumer.infra.logs import get_logger
from consumer.infra.metrics import METRICS
from consumer.settings.config import RetryConfig

T = TypeVar("T")
log = get_logger(__name__)

# Errors of the SDK or the network that a later attempt may not see. A ClientError is retried
# only when AWS says so (throttling, 5xx); AccessDenied or NoSuchBucket give up at once.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (BotoCoreError, ClientError, OSError)
_THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "KMSThrottlingException",
    }
)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in _THROTTLING or status >= 500
    return True


# Redis is retried on every error the client raises (connection, timeout, busy, read-only replica).
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, ConnectionError, TimeoutError)


class OutputGaveUp(FraudstreamError, RuntimeError):
    """An output stayed unwritable past the retry budget."""


class PartialFailure(FraudstreamError, RuntimeError):
    """Some entries of a batch call failed; the call is retried with only those entries."""


def call_with_retries(
    what: str,
    fn: Callable[[], T],
    config: RetryConfig,
    retry_on: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, PartialFailure),
) -> T:
    """Call fn until it succeeds, at most `config.max_attempts` times; raise OutputGaveUp after."""

    def _log_retry(state: RetryCallState) -> None:
        METRICS.incr(f"retries.{what}")
        exc = state.outcome.exception() if state.outcome else None
        log.warning("output_retry", output=what, attempt=state.attempt_number, error=repr(exc))

    retrying = Retrying(
        # Attempts and a deadline: the whole budget stays well inside the daemon's
        # timeoutInSeconds, which halts the JVM rather than letting us exit cleanly.
        stop=stop_after_attempt(config.max_attempts) | stop_after_delay(config.deadline_s),
        wait=wait_random_exponential(multiplier=0.1, max=config.max_wait_s),
        retry=retry_if_exception_type(retry_on) & retry_if_exception(is_transient),
        before_sleep=_log_retry,
        reraise=True,
    )
    try:
        return retrying(fn)
    except retry_on as exc:
        METRICS.incr(f"gave_up.{what}")
        attempts = retrying.statistics.get("attempt_number", 1)
        elapsed = retrying.statistics.get("delay_since_first_attempt", 0.0)
        log.error(
            "output_gave_up",
            output=what,
            attempts=attempts,
            seconds=round(elapsed, 1),
            error=repr(exc),
        )
        raise OutputGaveUp(
            f"{what}: gave up after {attempts} attempts in {elapsed:.1f} s: {exc!r}"
        ) from exc
