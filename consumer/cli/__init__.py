"""The one entry point: `fraudstream worker | local up | local down | demo | status | train |
compare-model | ops scale | backtest | labels import`."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Protocol

from consumer.cli import (
    backtest,
    compare_model,
    demo,
    evaluate,
    labels,
    local,
    ops,
    status,
    train,
    worker,
)


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
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fraudstream", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
