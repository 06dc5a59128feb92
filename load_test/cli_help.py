"""The load-test commands' help format: consumer/infra/help_format.py's (the one `fraudstream`
uses), with the description kept as written (the modules' docstrings hold usage blocks) and the
exit codes one a line."""

from __future__ import annotations

from consumer.infra.help_format import RawDescriptionHelpFormatter as HelpFormatter
from consumer.infra.help_format import exit_codes as _exit_codes

__all__ = ["HelpFormatter", "exit_codes"]


def exit_codes(*codes: str) -> str:
    """The epilog: `exit codes:` and one code a line, `2 a usage error` added if missing."""
    return _exit_codes(*codes, one_per_line=True)
