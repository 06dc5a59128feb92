"""Where an S3 source's rejects and archive go, and which keys an ingest leaves alone.

The AWS flow (docs/ingest.md, "Files dropped in S3"): an object created under
`<prefix>incoming/` starts an ingest task. Everything the task writes must stay out of what
starts a task, or one file would ingest itself forever:

- rejects of `<prefix>incoming/<name>` go to `<prefix>ingest-rejects/<name>.rejects.jsonl`,
  outside `incoming/`;
- `--archive` moves the source to `<prefix>incoming/done/<name>` or
  `<prefix>incoming/failed/<name>`: inside `incoming/` (so the bucket's layout stays one place to
  look) and so it does fire the rule again, which `skip_reason` makes harmless: a key under
  `incoming/done/` or `incoming/failed/`, or any `*.rejects.jsonl`, is skipped with exit 0.

A source outside any `incoming/` (a key given by hand) has its rejects beside it,
`<key>.rejects.jsonl`, as a local file's are. Pure: keys in, keys out.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "DONE",
    "FAILED",
    "INCOMING",
    "REJECTS_PREFIX",
    "REJECTS_SUFFIX",
    "archive_key",
    "incoming_parts",
    "rejects_key",
    "skip_reason",
]

INCOMING = "incoming/"
DONE = "done/"
FAILED = "failed/"
REJECTS_PREFIX = "ingest-rejects/"
REJECTS_SUFFIX = ".rejects.jsonl"


class Incoming(NamedTuple):
    """`<prefix>incoming/<name>` cut in two: the prefix (maybe empty) and the name (maybe with
    slashes: `incoming/partner-a/2026-12-07.csv` has the name `partner-a/2026-12-07.csv`)."""

    prefix: str
    name: str


def incoming_parts(key: str) -> Incoming | None:
    """The prefix and name of a key under an `incoming/` folder (its first one), else None."""
    if key.startswith(INCOMING):
        return Incoming("", key[len(INCOMING) :])
    at = key.find("/" + INCOMING)
    if at < 0:
        return None
    cut = at + 1
    return Incoming(key[:cut], key[cut + len(INCOMING) :])


def skip_reason(key: str) -> str | None:
    """Why an ingest must leave this key alone (an archived file, a rejects file), or None."""
    if key.endswith(REJECTS_SUFFIX):
        return "a rejects file"
    parts = incoming_parts(key)
    if parts is not None:
        if parts.name.startswith(DONE):
            return f"archived under {INCOMING}{DONE}"
        if parts.name.startswith(FAILED):
            return f"archived under {INCOMING}{FAILED}"
    return None


def rejects_key(key: str) -> str:
    """Where the rejects of the source `key` are written (see the module docstring)."""
    parts = incoming_parts(key)
    if parts is None:
        return key + REJECTS_SUFFIX
    return f"{parts.prefix}{REJECTS_PREFIX}{parts.name}{REJECTS_SUFFIX}"


def archive_key(key: str, succeeded: bool) -> str | None:
    """Where `--archive` moves the source: `<prefix>incoming/done/<name>` when the run
    succeeded, `.../failed/<name>` otherwise; None for a key outside `incoming/` (left as is)."""
    parts = incoming_parts(key)
    if parts is None:
        return None
    folder = DONE if succeeded else FAILED
    return f"{parts.prefix}{INCOMING}{folder}{parts.name}"
