"""Structured JSON logs on stderr, one vocabulary for every line.

stdout belongs to the MultiLangDaemon protocol: one stray line there breaks the shard's processor.
So every log line goes to stderr as one JSON object; the daemon echoes the child's stderr lines
as they are, and CloudWatch Logs receives them as JSON.

Every line, ours or a library's (botocore, urllib3, redis-py: anything using `logging`, which
goes through structlog's ProcessorFormatter here), has the same keys:

- `timestamp`: ISO 8601, UTC (`2026-12-07T10:00:00.123456Z`);
- `level`: `debug`, `info`, `warning`, `error` or `critical` (the KCL's logback lines use the
  same names: properties/logback.xml);
- `event`: what happened (ours: a snake_case name such as `metrics`; a library's: its message);
- `logger`: the module that logged (`consumer.worker.processor`, `botocore.credentials`);
- `service` and `version`: `fraudstream` and the package version;
- plus whatever the line binds (`component`, `shard_id`, `error`, `exception`, ...).
"""

from __future__ import annotations

import logging
import sys
import threading
from types import TracebackType
from typing import Any, TextIO, cast

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from consumer import __version__

SERVICE = "fraudstream"
VERSION = __version__
# The keys every line has (the runbook's Logs Insights queries use them).
SHARED_KEYS: tuple[str, ...] = ("timestamp", "level", "event", "logger", "service", "version")

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_stream: TextIO = sys.stderr


class _NamedWriteLogger(structlog.WriteLogger):
    """structlog's WriteLogger, knowing the name it was asked for (`get_logger(name)`)."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


class _NamedWriteLoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        return _NamedWriteLogger(self._file, str(args[0]) if args else "")


class _JsonLinesHandler(logging.Handler):
    """The standard library's handler: each formatted line written under the same lock as
    structlog's own lines, so that threads never interleave two lines."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._writer = structlog.WriteLogger(stream)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._writer.msg(self.format(record))
        except Exception:
            self.handleError(record)


def add_logger_name(logger: WrappedLogger, _: str, event_dict: EventDict) -> EventDict:
    """`logger`: the name given to get_logger, or the standard library logger's name."""
    record = event_dict.get("_record")
    if record is not None:
        event_dict.setdefault("logger", record.name)
    else:
        event_dict.setdefault("logger", getattr(logger, "name", "") or "")
    return event_dict


def add_service(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """`service` and `version` on every line (which build wrote it, in a mixed fleet)."""
    event_dict.setdefault("service", SERVICE)
    event_dict.setdefault("version", VERSION)
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_logger_name,
        add_service,
    ]


def stdlib_formatter() -> logging.Formatter:
    """The formatter of the standard-library loggers: the same JSON lines as structlog's."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )


def configure_logging(level: str = "info", stream: TextIO | None = None, **context: Any) -> None:
    """Send JSON lines to stderr (or `stream`), with `context` bound to every line: structlog's
    and the standard library's (at `warning` and above, or `error` when `level` is `error`)."""
    global _stream
    _stream = stream if stream is not None else sys.stderr
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.ERROR)),
        logger_factory=_NamedWriteLoggerFactory(_stream),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    if context:
        structlog.contextvars.bind_contextvars(**context)
    # Libraries that use the standard logging module (botocore, urllib3, redis) go to the same
    # stream, as the same JSON; their debug and info lines are noise at our volumes.
    handler = _JsonLinesHandler(_stream)
    handler.setFormatter(stdlib_formatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(logging.WARNING, _LEVELS.get(level, logging.ERROR)))
    logging.captureWarnings(True)  # `warnings.warn` too, as logger `py.warnings`
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def get_logger(name: str) -> Any:
    """A structlog logger whose lines name `name` as their `logger`."""
    return structlog.get_logger(name)


def emit(event: str, logger: str, **fields: Any) -> None:
    """One `info` line whatever the level (the metrics in Embedded Metric Format: a level that
    hides them would silence the dashboard)."""
    line = structlog.wrap_logger(
        _NamedWriteLogger(_stream, logger), wrapper_class=structlog.BoundLogger
    )
    line.info(event, **fields)


def render(level: str, event: str, logger: str, **fields: Any) -> str:
    """One line as configure_logging's would be, without configuring anything (a command's
    own start-up messages, written before or instead of the daemon)."""
    event_dict: EventDict = {"event": event, **fields}
    named = _NamedWriteLogger(_stream, logger)
    for processor in _shared_processors():
        event_dict = cast(EventDict, processor(named, level, event_dict))
    return str(structlog.processors.JSONRenderer()(named, level, event_dict))


def _log_uncaught(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    structlog.get_logger("uncaught").critical(
        "uncaught_exception", exc_info=(kind, error, traceback)
    )


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or isinstance(args.exc_value, SystemExit):
        return
    structlog.get_logger("uncaught").critical(
        "uncaught_exception",
        thread=args.thread.name if args.thread is not None else None,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
