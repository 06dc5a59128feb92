"""The one entry point: `fraudstream worker | local up | local down | demo | status | train |
compare-model | evaluate | ops scale | backtest | labels import | serve | ingest | report`."""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from typing import Any, Protocol

from consumer.cli import (
    backtest,
    compare_model,
    demo,
    evaluate,
    ingest,
    labels,
    local,
    ops,
    report,
    serve,
    status,
    train,
    worker,
)
from consumer.cli.common import HelpFormatter, exit_codes


class Command(Protocol):
    """A command module: `add_parser` registers its parser with `set_defaults(run=run)`."""

    def add_parser(self, subparsers: Any) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


# In help order.
COMMANDS: tuple[Command, ...] = (
    worker,
    local,
    demo,
    status,
    train,
    compare_model,
    evaluate,
    ops,
    backtest,
    labels,
    serve,
    ingest,
    report,
)


# `fraudstream worker` is the container's entry point (consumer/cli/worker.py); its exit codes.
WORKER_EXIT_CODES = exit_codes(
    "with --dry-run 0 the checks passed; otherwise the MultiLangDaemon replaces the process "
    "and its exit code is the daemon's",
    f"{worker.EXIT_BAD_CONFIG} a setting is missing or invalid",
    f"{worker.EXIT_UNAVAILABLE} a resource (Redis, the bucket, the topic, the stream) is "
    "missing or unreachable",
)


def version() -> str:
    """The installed package's version (pyproject.toml's), or "unknown" from a bare checkout."""
    try:
        return metadata.version("fraudstream")
    except metadata.PackageNotFoundError:
        return "unknown"


def parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """`parser` and every parser below it, depth first."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += parsers(sub)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fraudstream",
        description=__doc__,
        epilog=exit_codes("see each command's --help"),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    subparsers.choices["worker"].epilog = subparsers.choices["worker"].epilog or WORKER_EXIT_CODES
    for each in parsers(parser):
        # One help format everywhere: every option's default shown (common.HelpFormatter).
        each.formatter_class = HelpFormatter
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
