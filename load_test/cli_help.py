"""The load-test commands' help format (like `fraudstream`'s, consumer/cli/common.py, which
load_test/ may not import): every option's default shown, the description kept as written (the
modules' docstrings hold usage blocks), the exit codes in the epilog."""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, unless the help already names it in words;
    a required option has none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.required or "default" in text.lower():
            return text
        return super()._get_help_string(action)


def exit_codes(*codes: str) -> str:
    """The epilog: `exit codes:` and one code a line, `2 a usage error` added if missing."""
    listed = list(codes)
    if not any(code.startswith("2 ") for code in codes):
        listed.append("2 a usage error (argparse)")
    return "exit codes:\n" + "\n".join(f"  {code}" for code in listed)
