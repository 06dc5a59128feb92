"""The fleet's label pickup: files dropped under `<FRAUD_PREFIX><FRAUD_LABELS_PREFIX>` (default
`labels/`) are applied once, by one processor (docs/labels.md).

Why it is shaped like this:
- **Every processor polls, one applies.** Each processor process lists the prefix; a file not
  yet done (its ETag not in `fs:labels:done`) is claimed with `SET NX EX` on
  `fs:labels:claim:{<key>}`, so one processor of the fleet reads it and the others skip it.
  The claim is extended while the file is read and expires on its own when its holder dies,
  so a file is never stuck: the next poll after the expiry takes it up.
- **Done means this version.** `fs:labels:done` maps the object key to the ETag applied: an
  unchanged object is not read again, a replaced one (a new ETag) is. Applying twice is safe
  anyway (consumer/state/labels.py), so every crash window is a repeat, never a loss.
- **Bad lines never stop anything**: each is counted (`labels.lines_rejected`), logged up to a cap
  per file (file:line and the reason; a reason never quotes the line, so no account number
  reaches a log), and all of them are written to `<FRAUD_PREFIX>labels-rejected/<name>.jsonl`
  for whoever sent the file.
- **Failures are retried, never fatal**: S3 or Redis away is an exception out of `poll_once`;
  the caller (consumer/worker/labels_pickup.py) logs it, counts it and polls again later. One
  object S3 refuses (deleted since the listing, archived, access denied) is logged and counted
  (`labels.file_failures`) and the poll goes on with the others, so one file never holds up
  the rest; it is tried again at the next poll.
- Metrics: `labels.applied` (labels stored as a transaction's newest verdict),
  `labels.files_applied`, `labels.lines_rejected`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from consumer.infra.logs import get_logger
from consumer.infra.metrics import METRICS
from consumer.labels.apply import FileResult, apply_file
from consumer.labels.records import BadLabel
from consumer.state.labels import LabelStore

log = get_logger(__name__)

DONE_KEY = "fs:labels:done"
REJECTS_PREFIX = "labels-rejected/"
# A claim outlives a slow chunk by far; it is extended after every chunk.
CLAIM_TTL_S = 300
# Bad lines logged one by one per file; the rest are counted and in the rejects object.
LOGGED_BAD_LINES = 20
# Bad lines kept for the rejects object of one file (about 150 bytes each).
REJECTS_KEPT = 100_000

# Extend a claim only while it is still ours; release it the same way.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def claim_key(key: str) -> str:
    return f"fs:labels:claim:{{{key}}}"


@dataclass
class PollResult:
    """What one poll did: files applied, skipped (done, or another processor's claim)."""

    applied: list[str] = field(default_factory=list)
    skipped_done: int = 0
    skipped_claimed: int = 0
    failed: list[str] = field(default_factory=list)
    results: dict[str, FileResult] = field(default_factory=dict)


class LabelPickup:
    """Lists the labels prefix and applies the files not yet done, one claim at a time."""

    def __init__(
        self,
        s3: Any,
        redis: Any,
        bucket: str,
        prefix: str,
        labels_prefix: str = "labels/",
        owner: str = "worker",
        store: LabelStore | None = None,
        claim_ttl_s: int = CLAIM_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._s3 = s3
        self._redis = redis
        self._bucket = bucket
        self._labels = prefix + labels_prefix
        self._rejects = prefix + REJECTS_PREFIX
        self._owner = owner
        self._store = store or LabelStore(redis)
        self._claim_ttl_s = claim_ttl_s
        self._clock = clock
        self._extend = redis.register_script(_EXTEND)
        self._release = redis.register_script(_RELEASE)

    def _listed(self) -> list[tuple[str, str]]:
        """(key, ETag) of every object under the labels prefix, oldest listing order."""
        objects: list[tuple[str, str]] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=self._labels):
            for item in page.get("Contents", []):
                key = item["Key"]
                if not key.endswith("/"):
                    objects.append((key, item["ETag"]))
        return objects

    def poll_once(self) -> PollResult:
        """One pass over the prefix. Raises what S3 or Redis raise; bad lines never."""
        result = PollResult()
        listed = self._listed()
        if not listed:
            return result
        done = self._redis.hmget(DONE_KEY, [key for key, _ in listed])
        for (key, etag), done_etag in zip(listed, done, strict=True):
            if _text(done_etag) == etag:
                result.skipped_done += 1
                continue
            claim = claim_key(key)
            if not self._redis.set(claim, self._owner, nx=True, ex=self._claim_ttl_s):
                result.skipped_claimed += 1
                continue
            try:
                if _text(self._redis.hget(DONE_KEY, key)) == etag:  # done while we listed
                    result.skipped_done += 1
                    continue
                result.results[key] = self._apply(key, claim)
                result.applied.append(key)
            except ClientError as exc:  # this object only: the others still go
                METRICS.incr("labels.file_failures")
                result.failed.append(key)
                log.warning("labels_file_failed", key=key, error=repr(exc)[:500])
            finally:
                self._release(keys=[claim], args=[self._owner])
        return result

    def _apply(self, key: str, claim: str) -> FileResult:
        started = self._clock()
        reply = self._s3.get_object(Bucket=self._bucket, Key=key)
        etag = reply["ETag"]
        name = key[len(self._labels) :] or key
        rejects: list[BadLabel] = []

        def on_bad(bad: BadLabel) -> None:
            METRICS.incr("labels.lines_rejected")
            if len(rejects) < LOGGED_BAD_LINES:
                log.warning("labels_bad_line", key=key, where=bad.where, reason=bad.reason)
            if len(rejects) < REJECTS_KEPT:
                rejects.append(bad)

        def on_chunk(_: FileResult) -> None:
            self._extend(keys=[claim], args=[self._owner, self._claim_ttl_s])

        body = reply["Body"]
        try:
            outcome = apply_file(body, name, self._store, on_bad=on_bad, on_chunk=on_chunk)
        finally:
            body.close()
        if rejects:
            self._write_rejects(name, rejects, outcome.bad_lines)
        if outcome.bad_lines > LOGGED_BAD_LINES:
            log.warning(
                "labels_bad_lines_capped",
                key=key,
                bad_lines=outcome.bad_lines,
                logged=LOGGED_BAD_LINES,
            )
        self._redis.hset(DONE_KEY, key, etag)
        METRICS.incr("labels.applied", outcome.applied.applied)
        METRICS.incr("labels.files_applied")
        log.info(
            "labels_file_applied",
            key=key,
            etag=etag,
            seconds=round(self._clock() - started, 3),
            bad_lines=outcome.bad_lines,
            **outcome.applied.as_dict(),
        )
        return outcome

    def _write_rejects(self, name: str, rejects: list[BadLabel], total: int) -> None:
        lines = [json.dumps({"where": bad.where, "reason": bad.reason}) for bad in rejects]
        if total > len(rejects):
            lines.append(json.dumps({"where": name, "reason": f"{total - len(rejects)} more"}))
        self._s3.put_object(
            Bucket=self._bucket,
            Key=f"{self._rejects}{name}.jsonl",
            Body=("\n".join(lines) + "\n").encode(),
            ContentType="application/x-ndjson",
        )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
