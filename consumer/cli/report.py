"""`fraudstream report` (being built)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("report", help="(being built)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print("fraudstream report: not built yet", file=sys.stderr)
    return 2
