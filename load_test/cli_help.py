"""The load-test commands' help format: consumer/infra/help_format.py's (the one `fraudstream`
uses), with the description kept as written (the modules' docstrings hold usage blocks) and the
exit codes one a line."""

from __future__ import annotations

import argparse

from consumer.infra.help_format import RawDescriptionHelpFormatter as HelpFormatter
from consumer.infra.help_format import exit_codes as _exit_codes

__all__ = ["HelpFormatter", "add_workload_arguments", "exit_codes"]


def exit_codes(*codes: str) -> str:
    """The epilog: `exit codes:` and one code a line, `2 a usage error` added if missing."""
    return _exit_codes(*codes, one_per_line=True)


def add_workload_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every load test shares: the synthetic generator's accounts, fraud and broken
    shares and seed, the local stack's state directory, and where the report goes."""
    parser.add_argument("--accounts", type=int, default=50_000, help="ordinary accounts")
    parser.add_argument(
        "--fraud-ratio", type=float, default=0.05, help="share of labelled (fraud) records"
    )
    parser.add_argument(
        "--invalid-ratio", type=float, default=0.01, help="share of deliberately broken records"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed for the same records (default: random)"
    )
    parser.add_argument(
        "--state-dir", default=".fraudstream", help="the local stack's state directory"
    )
    parser.add_argument("--out", default="reports", help="directory for the JSON report and PNG")
