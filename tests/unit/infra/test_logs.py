"""Every stderr line is one JSON object with the same keys, whoever logged it."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3

from consumer import __version__
from consumer.infra.logs import SHARED_KEYS, configure_logging, emit, get_logger


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging("info", stream=out, component="processor")
    yield out
    configure_logging("warning")  # as tests/conftest.py leaves it


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    text = out.getvalue()
    assert text.endswith("\n")
    parsed = [json.loads(line) for line in text.splitlines()]
    assert all(isinstance(line, dict) for line in parsed)
    return parsed


def assert_shared(line: dict[str, Any], level: str, logger: str) -> None:
    assert set(SHARED_KEYS) <= set(line), line
    assert line["level"] == level
    assert line["logger"] == logger
    assert line["service"] == "fraudstream"
    assert line["version"] == __version__
    assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]
    assert line["component"] == "processor"  # bound context reaches library lines too


def test_our_lines_carry_the_shared_keys(stream: io.StringIO) -> None:
    get_logger("consumer.worker.processor").warning("flush_retry", shard_id="shardId-0")
    [line] = lines(stream)
    assert_shared(line, "warning", "consumer.worker.processor")
    assert line["event"] == "flush_retry" and line["shard_id"] == "shardId-0"


@pytest.mark.parametrize(
    "name", ["botocore.credentials", "urllib3.connectionpool", "redis.connection", "redis.cluster"]
)
def test_a_library_record_is_one_json_line_with_the_shared_keys(
    stream: io.StringIO, name: str
) -> None:
    logging.getLogger(name).warning("Found credentials in %s", "environment variables")
    [line] = lines(stream)
    assert_shared(line, "warning", name)
    assert line["event"] == "Found credentials in environment variables"


def test_a_library_exception_keeps_its_traceback_inside_the_line(stream: io.StringIO) -> None:
    try:
        raise ConnectionError("Error 111 connecting to localhost:6379.\nConnection refused.")
    except ConnectionError:
        logging.getLogger("redis.client").exception("Error in health check")
    [line] = lines(stream)
    assert_shared(line, "error", "redis.client")
    assert "Traceback" in line["exception"] and "Connection refused" in line["exception"]


def test_a_real_urllib3_retry_warning_is_json(stream: io.StringIO) -> None:
    pool = urllib3.PoolManager(retries=urllib3.Retry(total=1, backoff_factor=0))
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        pool.request("GET", "http://127.0.0.1:9/", timeout=0.5)  # discard: refused
    [line] = lines(stream)
    assert_shared(line, "warning", "urllib3.connectionpool")
    assert line["event"].startswith("Retrying (")


def test_library_info_lines_stay_out(stream: io.StringIO) -> None:
    logging.getLogger("botocore.hooks").info("Event choose-service-name: calling handler")
    assert stream.getvalue() == ""


def test_emit_writes_whatever_the_level() -> None:
    out = io.StringIO()
    configure_logging("error", stream=out, component="processor")
    try:
        get_logger("consumer.x").warning("hidden")
        emit("metrics_emf", "consumer.infra.emf", _aws={"Timestamp": 1})
    finally:
        configure_logging("warning")
    [line] = lines(out)
    assert_shared(line, "info", "consumer.infra.emf")
    assert line["event"] == "metrics_emf" and line["_aws"] == {"Timestamp": 1}


def test_warnings_and_an_uncaught_exception_are_json_lines() -> None:
    """Outside pytest (which records warnings itself): as the processor runs."""
    code = (
        "import warnings\n"
        "from consumer.infra.logs import configure_logging\n"
        "configure_logging('info', component='processor')\n"
        "warnings.warn('old parameter', UserWarning, stacklevel=1)\n"
        "raise ValueError('bad\\nthing')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1 and result.stdout == ""
    warned, line = [json.loads(text) for text in result.stderr.splitlines()]
    assert warned["logger"] == "py.warnings" and warned["level"] == "warning"
    assert "UserWarning: old parameter" in warned["event"]
    assert line["event"] == "uncaught_exception" and line["level"] == "critical"
    assert "ValueError: bad" in line["exception"]
