"""One help format for every command line (the `fraudstream` commands and the load-test
modules): every option's default shown unless its help names it in words, and the exit codes at
the end. Here, below both, because load_test/ may not import consumer/cli/."""

from __future__ import annotations

import argparse

USAGE_EXIT = "2 a usage error (argparse)"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, unless the help already names it in words
    (e.g. "default: $FRAUD_STREAM"); a required option has none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.required or "default" in text.lower():
            return text
        return super()._get_help_string(action)


class RawDescriptionHelpFormatter(argparse.RawDescriptionHelpFormatter, HelpFormatter):
    """HelpFormatter with the description and epilog kept as written (a module docstring's
    usage block; exit codes one a line)."""


def exit_codes(*codes: str, one_per_line: bool = False) -> str:
    """The epilog: the exit codes, `2 a usage error` added if missing; on one line
    (`exit codes: 0 ...; 1 ...`) or one a line under `exit codes:`."""
    listed = [*codes, USAGE_EXIT] if not any(c.startswith("2 ") for c in codes) else list(codes)
    if one_per_line:
        return "exit codes:\n" + "\n".join(f"  {code}" for code in listed)
    return "exit codes: " + "; ".join(listed)
