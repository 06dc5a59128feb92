"""`fraudstream worker`'s own start-up failures and warnings are JSON lines, with the exit code."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from consumer import __version__
from consumer.cli import worker
from consumer.infra.logs import SHARED_KEYS
from consumer.worker import preflight

SOUND = {
    "FRAUD_STREAM": "txns",
    "FRAUD_BUCKET": "bkt",
    "FRAUD_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:alerts",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def only_lines(stderr: str) -> list[dict[str, Any]]:
    parsed = [json.loads(line) for line in stderr.splitlines()]
    for line in parsed:
        assert set(SHARED_KEYS) <= set(line), line
        assert line["logger"] == "consumer.cli.worker" and line["component"] == "worker"
        assert line["service"] == "fraudstream" and line["version"] == __version__
    return parsed


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for key in list(os.environ):
        if key.startswith(("FRAUD_", "KCL_")) or key == "REDIS_URL":
            monkeypatch.delenv(key)
    for key, value in SOUND.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FRAUD_PROPERTIES_OUT", str(tmp_path / "kcl.properties"))


def run(dry_run: bool = True) -> int:
    return worker.run(argparse.Namespace(dry_run=dry_run, no_preflight=False))


def test_a_bad_setting_is_one_json_error_line_with_exit_78(
    env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FRAUD_ALERT_SEVERITY", "extreme")
    assert run() == 78
    [line] = only_lines(capsys.readouterr().err)
    assert line["level"] == "error" and line["event"] == "configuration_error"
    assert line["exit_code"] == 78
    assert "FRAUD_ALERT_SEVERITY" in line["error"]
    assert line["message"] == f"fraudstream: configuration error: {line['error']}"


def test_an_unreachable_dependency_is_one_json_error_line_with_exit_69(
    env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def unreachable(*_: Any, **__: Any) -> Any:
        raise preflight.PreflightError(
            "REDIS_URL: cannot reach Redis at redis://127.0.0.1:1 (ConnectionError: refused)"
        )

    monkeypatch.setattr(preflight, "run_preflight", unreachable)
    assert run() == 69
    [line] = only_lines(capsys.readouterr().err)
    assert line["level"] == "error" and line["event"] == "startup_check_failed"
    assert line["exit_code"] == 69 and line["error"].startswith("REDIS_URL: cannot reach Redis")


def test_a_refused_rule_set_found_by_the_preflight_is_exit_78(
    env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refused(*_: Any, **__: Any) -> Any:
        raise preflight.PreflightConfigError('FRAUD_RULESET: s3://b/k refused: "bad"')

    monkeypatch.setattr(preflight, "run_preflight", refused)
    assert run() == 78
    [line] = only_lines(capsys.readouterr().err)
    assert line["event"] == "configuration_error" and line["exit_code"] == 78
    assert line["error"] == 'FRAUD_RULESET: s3://b/k refused: "bad"'  # quotes escaped, parsed


def test_warnings_are_json_lines_and_the_dry_run_command_stays_on_stdout(
    env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FRAUD_TEAM", "payments")
    monkeypatch.setattr(preflight, "run_preflight", lambda *_: preflight.Report(warnings=["w2"]))
    assert run() == 0
    captured = capsys.readouterr()
    lines = only_lines(captured.err)
    assert [(line["level"], line["event"], line["warning"]) for line in lines] == [
        ("warning", "startup_warning", "FRAUD_TEAM: unknown setting, ignored"),
        ("warning", "startup_warning", "w2"),
    ]
    assert "MultiLangDaemon" in captured.out


def test_the_real_command_exits_78_with_one_json_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FRAUD_", "KCL_"))}
    env |= {k: v for k, v in SOUND.items() if k != "FRAUD_STREAM"}
    result = subprocess.run(
        [sys.executable, "-m", "consumer.cli", "worker", "--no-preflight"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 78 and result.stdout == ""
    [line] = only_lines(result.stderr)
    assert line["exit_code"] == 78 and line["error"] == "FRAUD_STREAM: required but not set"
