"""Structured JSON logs on stderr.

stdout belongs to the MultiLangDaemon protocol: one stray line there breaks the shard's processor.
So every log line goes to stderr as one JSON object; the daemon echoes the child's stderr lines
as they are, and CloudWatch Logs receives them as JSON.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def configure_logging(level: str = "info", **context: Any) -> None:
    """Send structlog JSON lines to stderr, with `context` bound to every line."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.ERROR)),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    if context:
        structlog.contextvars.bind_contextvars(**context)
    # Libraries that use the standard logging module (boto3, redis) also go to stderr only.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, force=True)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
