"""properties/logback.xml: the KCL's own lines are JSON in the processor's vocabulary.

Run with the KCL's jars (amazon_kclpy/jars) and java, as the worker runs them: a tiny program that
logs awkward messages through slf4j, and the real MultiLangDaemon for a few seconds (pointed at a
closed port, so it logs its start-up, a warning and errors with stack traces).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from consumer import __version__
from consumer.infra.logs import SHARED_KEYS
from consumer.worker import daemon

LOGBACK = daemon.PROPERTIES_DIR / "logback.xml"
LEVELS = {"debug", "info", "warning", "error"}  # structlog's names (consumer/infra/logs.py)

PROGRAM = r"""
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

public class LogSome {
    public static void main(String[] args) {
        Logger log = LoggerFactory.getLogger("software.amazon.kinesis.coordinator.Scheduler");
        log.info("plain line");
        log.warn("quote \" backslash \\ tab \t newline \n cr \r ctrl \u0001 del \u007f"
            + " unicode \u00e9");
        log.error("failed", new RuntimeException("boom \"x\"\nsecond line"));
        LoggerFactory.getLogger("software.amazon.kinesis.leases.LeaseTaker").info("below WARN");
        LoggerFactory.getLogger("software.amazon.kinesis.leases.LeaseTaker").warn("lease {}", "x");
    }
}
"""


@pytest.fixture(scope="module")
def java() -> str:
    found = shutil.which(os.environ.get("FRAUD_JAVA", "java"))
    assert found, "java is needed to run the KCL (the image has it; apt-get install default-jdk)"
    return found


def env() -> dict[str, str]:
    return {**os.environ, "FRAUDSTREAM_VERSION": __version__}


def parsed(stderr: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stderr.splitlines()]
    for line in lines:
        assert set(SHARED_KEYS) <= set(line), line
        assert line["level"] in LEVELS, line
        assert line["component"] == "kcl" and line["service"] == "fraudstream"
        assert line["version"] == __version__
        assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]
    return lines


def test_every_kcl_line_is_json_with_messages_escaped(java: str, tmp_path: Path) -> None:
    source = tmp_path / "LogSome.java"
    source.write_text(PROGRAM)
    result = subprocess.run(
        [java, f"-Dlogback.configurationFile={LOGBACK}", "-cp", f"{daemon.jars_dir()}/*", source],
        capture_output=True,
        text=True,
        timeout=120,
        env=env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = parsed(result.stderr)
    assert [(line["level"], line["event"]) for line in lines][:2] == [
        ("info", "plain line"),
        # every control character one space, the spaces around it kept
        ("warning", 'quote " backslash \\ tab   newline   cr   ctrl   del   unicode \u00e9'),
    ]
    error = lines[2]
    assert error["level"] == "error"
    assert error["logger"] == "software.amazon.kinesis.coordinator.Scheduler"
    assert error["event"].startswith('failed java.lang.RuntimeException: boom "x" second line at ')
    assert [(line["level"], line["event"]) for line in lines[3:]] == [("warning", "lease x")]


def test_the_real_daemon_writes_only_json_lines(java: str, tmp_path: Path) -> None:
    closed = "http://127.0.0.1:9"  # nothing listens: the daemon logs its retries
    settings = {
        "FRAUD_STREAM": "txns",
        "FRAUD_KCL_PROFILE": "local",
        "AWS_ENDPOINT_URL_KINESIS": closed,
        "AWS_ENDPOINT_URL_DYNAMODB": closed,
        "AWS_REGION": "us-east-1",
    }
    properties = tmp_path / "kcl.properties"
    daemon.write_properties(daemon.render_properties(settings, "worker-logs"), properties)
    command = daemon.daemon_command(properties, java, "-Xmx128m -XX:+UseSerialGC")
    run_env = env() | {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=run_env
    )
    assert process.stderr is not None
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(process.stderr or ()), daemon=True)
    reader.start()
    deadline = time.monotonic() + 90
    try:  # start-up, then the first failed attempt to reach DynamoDB (an error with its trace)
        while time.monotonic() < deadline and not any('"level":"error"' in s for s in seen):
            time.sleep(0.2)
    finally:
        process.kill()
        process.wait(timeout=30)
        reader.join(timeout=30)
    stderr = "".join(seen)
    lines = parsed(stderr)
    levels = {line["level"] for line in lines}
    assert {"info", "error"} <= levels, stderr
    assert any(line["logger"].endswith("coordinator.Scheduler") for line in lines)
