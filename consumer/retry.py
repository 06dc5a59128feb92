"""Bounded retries with exponential backoff and jitter for every output call.

A give-up is never silent: it is logged, counted and raised as OutputGaveUp, which the processor
turns into a deliberate exit so that the KCL restarts the worker from the last checkpoint instead
of moving past records whose outputs were never written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from consumer.config import RetryConfig
from consumer.logs import get_logger
from consumer.metrics import METRICS

T = TypeVar("T")
log = get_logger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    BotoCoreError,
    ClientError,
    ConnectionError,
    TimeoutError,
    OSError,
)


class OutputGaveUp(RuntimeError):
    """An output stayed unwritable past the retry budget."""


class PartialFailure(RuntimeError):
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
        stop=stop_after_attempt(config.max_attempts),
        wait=wait_random_exponential(multiplier=0.1, max=config.max_wait_s),
        retry=retry_if_exception_type(retry_on),
        before_sleep=_log_retry,
        reraise=True,
    )
    try:
        return retrying(fn)
    except retry_on as exc:
        METRICS.incr(f"gave_up.{what}")
        log.error("output_gave_up", output=what, attempts=config.max_attempts, error=repr(exc))
        raise OutputGaveUp(
            f"{what}: gave up after {config.max_attempts} attempts: {exc!r}"
        ) from exc
