"""The runbook's Logs Insights queries against the code: every event they filter on is one the
code logs, every field they name is a key our lines carry or a log call passes. (Against real
lines from running containers: tests/container/test_container.py.)"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.runbook_queries import queries

ROOT = Path(__file__).resolve().parents[2]
# Keys every line has (consumer/infra/logs.py, properties/logback.xml).
SHARED = {"timestamp", "level", "event", "logger", "component", "service", "version", "message"}


def _logged(event: str, code: str) -> bool:
    """A literal event name, or one built as f"{self.kind}_<what>" (the hot sources: a rule
    set's and a model's `<kind>_refused`, `<kind>_incomplete`)."""
    if f'"{event}"' in code:
        return True
    kind, _, what = event.partition("_")
    return f'}}_{what}"' in code and f'"{kind}"' in code


def _code() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "consumer").rglob("*.py"))


def test_the_runbook_has_queries_and_reads_them_apart() -> None:
    found = queries()
    assert len(found) >= 10
    lease = next(q for q in found if "shard_initialized" in q.events)
    assert lease.fields == {"event"}
    slow = next(q for q in found if q.events == {"slow_batch"})
    assert {"total_ms", "millis_behind_latest", "shard_id"} <= slow.fields


def test_every_event_and_field_a_query_names_is_one_the_code_writes() -> None:
    code = _code()
    logged_keys = set(re.findall(r"\b([a-z_][a-z0-9_]*)=", code))
    missing_events = {event for q in queries() for event in q.events if not _logged(event, code)}
    assert missing_events == set()
    unknown_fields = {
        name for q in queries() for name in q.fields if name not in SHARED | logged_keys
    }
    assert unknown_fields == set()


def test_a_renamed_event_or_field_would_be_caught() -> None:
    code = _code()
    logged_keys = set(re.findall(r"\b([a-z_][a-z0-9_]*)=", code))
    broken = queries('```\nfilter event = "shard_initialised"\n| stats count() by shardid\n```\n')
    assert broken[0].events == {"shard_initialised"} and not _logged("shard_initialised", code)
    assert "shardid" in broken[0].fields and "shardid" not in SHARED | logged_keys
