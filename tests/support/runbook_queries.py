"""The Logs Insights queries of docs/runbook.md, read apart: the fields and events they name.

The container test (tests/container) holds them against the lines real workers wrote: a query
that filters on a key no line has, or an event nothing logs, finds nothing on the night it is
needed. Queries are the fenced blocks whose lines start with a Logs Insights command, and the
inline `filter ...` snippets of the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "runbook.md"
_COMMANDS = ("fields", "filter", "stats", "sort", "limit", "parse", "display")
# Words of the query language, not fields.
_WORDS = {
    "and", "or", "not", "in", "like", "by", "desc", "asc", "as", "count", "bin", "max", "min",
    "avg", "sum", "sort", "limit", "fields", "filter", "stats", "earliest", "latest", "ispresent",
    "pct", "count_distinct",
}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_IDENT = re.compile(r"(?<![@\w.])([a-z_][a-z0-9_]*)(?![\w(])")


@dataclass
class Query:
    text: str
    fields: set[str] = field(default_factory=set)
    events: set[str] = field(default_factory=set)


def queries(text: str | None = None) -> list[Query]:
    """Every query of the runbook with the fields and event names it uses."""
    text = RUNBOOK.read_text(encoding="utf-8") if text is None else text
    found: list[str] = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        current: list[str] = []
        for line in block.splitlines():
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                if current:
                    found.append("\n".join(current))
                    current = []
                continue
            if stripped.lstrip("| ").split(" ", 1)[0] in _COMMANDS:
                current.append(stripped)
        if current:
            found.append("\n".join(current))
    found += re.findall(r"`((?:filter|fields) [^`]+)`", text)
    return [_read(query) for query in found]


def _read(query: str) -> Query:
    out = Query(query)
    for match in re.finditer(r'\bevent\s*(?:=|in)\s*(\[[^\]]*\]|"[^"]*")', query):
        out.events |= {s.strip('"') for s in _STRING.findall(match.group(1))}
    without_strings = _STRING.sub(" ", query)
    without_strings = re.sub(r"\bbin\(\d+[smhd]\)", " ", without_strings)
    for name in _IDENT.findall(without_strings):
        if name not in _WORDS and not name.isdigit():
            out.fields.add(name)
    # Functions' arguments: max(total_ms), avg(total_ms) ...
    for name in re.findall(r"\w+\(([a-z_][a-z0-9_]*)\)", without_strings):
        out.fields.add(name)
    return out
