"""The CLI as people expect it: --version, every option's help with its default, the exit codes
in every command's help, and the demo's traffic and summary."""

from __future__ import annotations

import argparse
import io
import time
from importlib import metadata
from typing import Any

import pytest

from consumer.cli import build_parser, main, parsers
from consumer.cli.demo_steps import Traffic, summary_lines


def leaf_parsers() -> list[argparse.ArgumentParser]:
    """The parsers a person runs: those without subcommands of their own."""
    return [
        parser
        for parser in parsers(build_parser())
        if not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)
    ]


def option_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser._get_formatter()
    return formatter._expand_help(action) if action.help else ""


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"fraudstream {metadata.version('fraudstream')}"


def test_every_command_is_covered() -> None:
    progs = {parser.prog for parser in leaf_parsers()}
    for command in ("worker", "local up", "local down", "demo", "status", "train", "evaluate"):
        assert f"fraudstream {command}" in progs
    assert {"fraudstream ops scale", "fraudstream labels import", "fraudstream backtest"} <= progs


@pytest.mark.parametrize("parser", leaf_parsers(), ids=lambda p: p.prog)
def test_every_option_has_help_that_shows_its_default(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        text = option_help(parser, action)
        assert text, f"{parser.prog} {action.dest}: no help"
        if action.option_strings and not action.required:
            assert "default" in text.lower(), f"{parser.prog} {action.dest}: {text!r}"


@pytest.mark.parametrize("parser", leaf_parsers(), ids=lambda p: p.prog)
def test_every_command_lists_its_exit_codes(parser: argparse.ArgumentParser) -> None:
    text = parser.format_help()
    assert "exit codes:" in text
    assert " 0 " in text.split("exit codes:")[1]


def test_the_help_shows_defaults_as_people_read_them(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "transactions per second (default: 50.0)" in text
    assert "(default: 5000)" in text


def test_the_demo_looks_like_a_real_stream() -> None:
    args = build_parser().parse_args(["demo"])
    # The generator keeps ordinary accounts under the velocity limit while rate <= accounts * 3 /
    # 61 (load_test/synthetic.py); four times that leaves them far from it.
    assert args.accounts >= 4 * args.rate * 61 / 3
    assert 0.005 <= args.fraud_ratio <= 0.02
    assert args.invalid_ratio <= 0.01


def flagged_line(tid: str, rules: list[str], expected: list[str]) -> tuple[str, dict[str, Any]]:
    line = {
        "transaction_id": tid,
        "severity": "high",
        "reasons": [{"rule": rule, "detail": "..."} for rule in rules],
        "transaction": {"transaction_id": tid, "expected_rules": expected},
    }
    return ("flagged/dt=2026-12-07/hour=09/shard-1.jsonl.gz", line)


def test_the_demo_summary_says_what_was_sent_flagged_why_and_where() -> None:
    env = {
        "FRAUD_STREAM": "s",
        "FRAUD_BUCKET": "b",
        "FRAUD_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t",
        "FRAUD_ALERTS_QUEUE_URL": "http://q",
        "FRAUD_APP_NAME": "fraudstream",
    }
    produced = {"sent": 3000, "rate": 50.0, "elapsed_s": 60.1, "fraud": 30, "invalid": 15}
    flagged = [
        flagged_line("a", ["high_amount"], ["high_amount"]),
        flagged_line("b", ["velocity", "card_testing"], ["card_testing", "velocity"]),
        flagged_line("c", ["cross_border"], []),
    ]
    text = "\n".join(summary_lines(produced, Traffic(), flagged, 15, 2, env, ".fraudstream"))
    assert "3,000 synthetic card transactions" in text and "30 fraud (1.0 %" in text
    assert "15 deliberately broken" in text
    assert "Flagged: 3 transactions (0.1 %)" in text
    assert "high_amount" in text and "an amount above 10,000" in text
    assert "2 of 3 flagged lines carry exactly their label's rules" in text
    assert "s3://b/flagged/" in text and "s3://b/dead-letter/" in text
    assert ".fraudstream/logs/worker-*.log" in text


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_train_shows_a_bar_on_a_terminal_only() -> None:
    from consumer.cli.train import progress

    quiet = io.StringIO()
    with progress(True, quiet) as bar:
        assert bar is None
    assert quiet.getvalue() == ""
    terminal = Terminal()
    with progress(True, terminal, tick_s=0.01) as bar:
        assert bar is not None
        time.sleep(0.05)
    assert "training:" in terminal.getvalue() and "elapsed" in terminal.getvalue()
    with progress(False, Terminal()) as bar:
        assert bar is None
