"""The rule set in force, its hot reload from a file or an S3 object, and the last good version.

Analysts change rules without a redeploy: every worker checks the rule set's source every
`check_every_s` seconds (a stat of the file, or a conditional GET of the S3 object by ETag) at the
start of a batch, so a new valid version judges from the next batch on, on every worker. A new
version that does not load, or that this worker cannot honour, is refused with a log line and a
metric, and the version in force stays. Nothing is ever half-applied: a batch is judged by one
version, which every flagged line and alert names (`rules_version`).

A bad published version never reduces capacity either. Every processor that accepts a version
(at start or at a hot reload) keeps it as the fleet's **last good** version, in a record beside
the published one that every worker can read (`<source>.last-good.json`, or
FRAUD_RULESET_LAST_GOOD): `{version, sha256, body, accepted_at, accepted_by, source}`, written
only when its hash differs from what is stored. A processor that starts while the published
version is refused (or unreadable) judges with that record's version instead of failing its
initialisation over and over (`ruleset_fallback_last_good` in the log, `ruleset.last_good_in_use`
counted per batch), and takes the published one as soon as a version that loads is published.
The record is checked before it is used (its hash matches its body, the body loads, the versions
agree); one that does not is treated as absent. Only when no version was ever accepted does
start-up stop: `fraudstream worker` exits 78 before the JVM starts (consumer/worker/preflight.py).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from consumer.errors import FraudstreamError
from consumer.infra.logs import get_logger
from consumer.infra.metrics import METRICS
from consumer.reload.hot_source import (
    Fetched,
    Fetcher,
    FileFetcher,
    HotReload,
    S3Fetcher,
    fetcher_for,
)
from consumer.rules.config import RulesConfig
from consumer.rules.ruleset import RuleSet, RuleSetError
from consumer.rules.ruleset_load import MAX_BYTES, load_ruleset
from consumer.settings.s3_uri import is_s3, parse_s3

# The fetchers live in consumer/reload/hot_source.py (the model reloads through them too).
__all__ = [
    "LAST_GOOD_SUFFIX",
    "Fetched",
    "Fetcher",
    "FileFetcher",
    "FileLastGoodStore",
    "LastGood",
    "LastGoodStore",
    "LastGoodUnusable",
    "NoUsableRuleSet",
    "RuleSetRefused",
    "RuleSetSource",
    "S3Fetcher",
    "S3LastGoodStore",
    "StartingRuleSet",
    "builtin_ruleset",
    "fetcher_for",
    "last_good_location",
    "last_good_store_for",
    "starting_ruleset",
]

log = get_logger(__name__)

LAST_GOOD_SUFFIX = ".last-good.json"
RECORD_KIND = "fraudstream.ruleset.last-good"
RECORD_FORMAT = 1
# A save that failed is tried again after this long, doubling up to the cap: a role without
# s3:PutObject on the record must not fill the log every check of every shard.
SAVE_RETRY_MAX_S = 3600.0
SUMMARY_MAX_CHARS = 400


def builtin_ruleset(config: RulesConfig) -> RuleSet:
    """The seven contract rules as configured by FRAUD_RULES_FILE / FRAUD_RULE_*: version
    `builtin` at the defaults, else `builtin-<digest of the settings>`, so every line still says
    which thresholds judged it."""
    if config == RulesConfig():
        return RuleSet("builtin", config)
    digest = hashlib.sha256(repr(config).encode()).hexdigest()[:12]
    return RuleSet(f"builtin-{digest}", config)


class RuleSetRefused(FraudstreamError, ValueError):
    """A rule set this worker will not apply; the message says why."""


def sha256_of(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def summary(exc: BaseException) -> str:
    """One line for a log field or a status column: a refusal's problems joined, cut short."""
    if isinstance(exc, RuleSetError):
        text = "; ".join(problem.splitlines()[0] for problem in exc.problems)
    else:
        lines = str(exc).strip().splitlines()
        text = lines[0] if lines else repr(exc)
    return text if len(text) <= SUMMARY_MAX_CHARS else text[: SUMMARY_MAX_CHARS - 3] + "..."


# --- the last good version ------------------------------------------------------------------


def last_good_location(source: str, override: str | None = None) -> str:
    """Where the last good version of `source` is kept: FRAUD_RULESET_LAST_GOOD, else beside
    it (`s3://b/rules/live.yaml` -> `s3://b/rules/live.yaml.last-good.json`)."""
    return override or source + LAST_GOOD_SUFFIX


class LastGoodUnusable(FraudstreamError):
    """No last good version can be used: `absent` (none stored), not valid, or (`transient`)
    not reachable now."""

    def __init__(self, reason: str, transient: bool = False, absent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.absent = absent


@dataclass(frozen=True, slots=True)
class LastGood:
    """A stored last good version, checked: its body hashes to `sha256` and loads as `ruleset`."""

    ruleset: RuleSet
    sha256: str
    body: bytes
    accepted_at: str
    accepted_by: str
    source: str
    location: str

    @property
    def version(self) -> str:
        return self.ruleset.version


def record_bytes(ruleset: RuleSet, body: bytes, source: str, accepted_by: str) -> bytes:
    """The stored form: JSON, the rule set's text as it was published (it loaded, so UTF-8)."""
    record = {
        "kind": RECORD_KIND,
        "format": RECORD_FORMAT,
        "version": ruleset.version,
        "sha256": sha256_of(body),
        "accepted_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "accepted_by": accepted_by,
        "source": source,
        "body": body.decode("utf-8"),
    }
    return (json.dumps(record, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def parse_record(raw: bytes, location: str) -> LastGood:
    """A stored record, never trusted: the hash must match the body, the body must load, and
    the version in it must be the one recorded. LastGoodUnusable otherwise."""
    if len(raw) > 8 * MAX_BYTES:
        raise LastGoodUnusable(f"{location}: larger than {8 * MAX_BYTES} bytes")
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested past the parser's depth
        raise LastGoodUnusable(f"{location}: not JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(record, dict) or record.get("kind") != RECORD_KIND:
        raise LastGoodUnusable(f"{location}: not a last-good record (no kind {RECORD_KIND!r})")
    fields = ("version", "sha256", "body")
    if not all(isinstance(record.get(name), str) for name in fields):
        raise LastGoodUnusable(f"{location}: needs the text fields {', '.join(fields)}")
    body = record["body"].encode("utf-8")
    if sha256_of(body) != record["sha256"].lower():
        raise LastGoodUnusable(f"{location}: its body does not match its sha256")
    try:
        ruleset = load_ruleset(body, name=f"{location} (last good)")
    except RuleSetError as exc:
        raise LastGoodUnusable(f"{location}: its body does not load: {summary(exc)}") from None
    if ruleset.version != record["version"]:
        raise LastGoodUnusable(
            f"{location}: records version {record['version']!r}, its body is {ruleset.version!r}"
        )
    return LastGood(
        ruleset=ruleset,
        sha256=sha256_of(body),
        body=body,
        accepted_at=str(record.get("accepted_at", "")),
        accepted_by=str(record.get("accepted_by", "")),
        source=str(record.get("source", "")),
        location=location,
    )


class LastGoodStore:
    """The record of the fleet's last good version: read (and checked), written when changed."""

    location: str

    def _read(self) -> bytes:
        """The record's bytes; LastGoodUnusable when there is none or it cannot be read."""
        raise NotImplementedError

    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def load(self) -> LastGood:
        """The stored last good version, checked; LastGoodUnusable naming why there is none."""
        return parse_record(self._read(), self.location)

    def remember(self, ruleset: RuleSet, body: bytes, source: str, accepted_by: str) -> bool:
        """Keep `body` (the accepted version of `ruleset`) unless it is what is stored: read,
        compare the hash, write. True when written. Two workers accepting the same version at
        once write the same version; a record that is not valid is replaced. Raises what the
        storage raises."""
        try:
            stored: LastGood | None = self.load()
        except LastGoodUnusable as exc:
            if exc.transient:
                raise OSError(exc.reason) from None
            stored = None
        if stored is not None and stored.sha256 == sha256_of(body):
            return False
        self._write(record_bytes(ruleset, body, source, accepted_by))
        return True


class FileLastGoodStore(LastGoodStore):
    """A file (beside a rule-set file by default), replaced at once: written aside, renamed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.location = path

    def _read(self) -> bytes:
        try:
            with open(self.path, "rb") as handle:
                return handle.read(8 * MAX_BYTES + 1)
        except FileNotFoundError:
            raise LastGoodUnusable(f"{self.path}: none stored", absent=True) from None
        except OSError as exc:
            transient = exc.errno not in (errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR)
            raise LastGoodUnusable(f"{self.path}: cannot be read ({exc})", transient) from None

    def _write(self, data: bytes) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        handle, staged = tempfile.mkstemp(prefix=".last-good-", dir=directory)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(staged, self.path)
        except BaseException:
            Path(staged).unlink(missing_ok=True)
            raise


_ABSENT_CODES = ("NoSuchKey", "404", "NotFound", "NoSuchBucket")
_DENIED_CODES = ("AccessDenied", "403", "Forbidden")


class S3LastGoodStore(LastGoodStore):
    """An S3 object (beside the rule set's object by default): GetObject, PutObject on one key.
    Without s3:ListBucket (deploy/ecs) a missing object answers 403, read as "none stored"."""

    def __init__(self, s3: Any, bucket: str, key: str) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._key = key
        self.location = f"s3://{bucket}/{key}"

    def _read(self) -> bytes:
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=self._key)
            return bytes(response["Body"].read())
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in _ABSENT_CODES or status == 404:
                raise LastGoodUnusable(f"{self.location}: none stored", absent=True) from None
            if code in _DENIED_CODES or status == 403:
                raise LastGoodUnusable(
                    f"{self.location}: none stored, or access denied (s3:GetObject; without "
                    "s3:ListBucket a missing object answers so too)",
                    absent=True,
                ) from None
            raise LastGoodUnusable(f"{self.location}: cannot be read ({exc})", True) from None
        except (BotoCoreError, OSError) as exc:
            raise LastGoodUnusable(f"{self.location}: cannot be read ({exc})", True) from None

    def _write(self, data: bytes) -> None:
        self._s3.put_object(
            Bucket=self._bucket, Key=self._key, Body=data, ContentType="application/json"
        )


def last_good_store_for(location: str, s3: Callable[[], Any]) -> LastGoodStore:
    """`s3://bucket/key` or a file path."""
    if is_s3(location):
        where = parse_s3(location)
        return S3LastGoodStore(s3(), where.bucket, where.key)
    return FileLastGoodStore(location)


def worker_name() -> str:
    """Who accepted a version, for the record: the worker id, else the host."""
    return os.environ.get("FRAUD_WORKER_ID") or os.environ.get("HOSTNAME") or socket.gethostname()


# --- which version a starting worker judges with --------------------------------------------


class NoUsableRuleSet(RuleSetRefused):
    """The published rule set is refused (or unreadable) and no last good version can be used.

    `published_error` is the read error when the published one could not be read (None: it was
    read and refused); `transient` says a retry may help (a storage unreachable, not absent)."""

    def __init__(
        self, message: str, published_error: BaseException | None, transient: bool
    ) -> None:
        super().__init__(message)
        self.published_error = published_error
        self.transient = transient


@dataclass(frozen=True, slots=True)
class StartingRuleSet:
    """What a starting processor judges with, and why."""

    ruleset: RuleSet
    sha256: str
    tag: str | None  # the published version's tag (None: it could not be read)
    body: bytes | None  # the published body when it is the one in force
    refused: str | None  # "refused: ..." / "cannot be read: ..." (None: it is in force)
    last_good: LastGood | None  # the version used instead


def starting_ruleset(fetcher: Fetcher[bytes], store: LastGoodStore | None) -> StartingRuleSet:
    """The published version when it loads; else the stored last good version; else
    NoUsableRuleSet with both reasons. Shared by the processors, `fraudstream worker`'s
    preflight and `fraudstream status`, so the three always agree."""
    published_error: BaseException | None = None
    tag: str | None = None
    try:
        fetched = fetcher.fetch(None)
        if fetched is None:  # cannot happen without a tag; keeps the types honest
            raise OSError(f"{fetcher.name}: nothing to read")
    except Exception as exc:  # unreadable: the last good version may still serve
        published_error = exc
        refused = f"cannot be read: {summary(exc)}"
    else:
        tag = fetched.tag
        try:
            ruleset = load_ruleset(fetched.data, name=fetcher.name)
        except RuleSetError as exc:
            refused = f"refused: {summary(exc)}"
        else:
            return StartingRuleSet(ruleset, sha256_of(fetched.data), tag, fetched.data, None, None)
    if store is None:
        raise NoUsableRuleSet(f"{fetcher.name} {refused}", published_error, False)
    try:
        good = store.load()
    except LastGoodUnusable as exc:
        transient = exc.transient or (published_error is not None and _transient(published_error))
        raise NoUsableRuleSet(
            f"{fetcher.name} {refused}; and no version was ever accepted ({exc.reason})",
            published_error,
            transient,
        ) from None
    return StartingRuleSet(good.ruleset, good.sha256, tag, None, refused, good)


def _transient(exc: BaseException) -> bool:
    """A read error that a retry may cure (not: absent, access denied, a bad name)."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return not (code in _ABSENT_CODES or code in _DENIED_CODES or status in (403, 404))
    return not isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError)


# --- the source ------------------------------------------------------------------------------


class RuleSetSource:
    """Holds the rule set in force and swaps in a new valid version when its source changes.

    With `last_good`, every version accepted here is kept there, and a start while the
    published version is refused judges with the stored one (see the module's docstring)."""

    def __init__(
        self,
        fetcher: Fetcher[bytes] | None,
        check_every_s: float,
        max_horizon_s: Decimal | None = None,
        clock: Callable[[], float] = time.monotonic,
        fallback: RuleSet | None = None,
        last_good: LastGoodStore | None = None,
        accepted_by: str | None = None,
    ) -> None:
        self._reload: HotReload[bytes, RuleSet] | None = None
        self._store = last_good
        self._accepted_by = accepted_by or worker_name()
        self._clock = clock
        self._every = check_every_s
        self._sha: str | None = None
        self._from_last_good: LastGood | None = None
        self._unsaved: tuple[RuleSet, bytes] | None = None  # accepted, not yet kept: retried
        self._save_wait_s = 0.0
        self._save_tried = 0.0
        self._source_name = fetcher.name if fetcher is not None else "builtin"
        if fetcher is None:
            if fallback is None:
                raise ValueError("a rule set source needs a fetcher or a fallback rule set")
            initial = fallback
        else:
            start = starting_ruleset(fetcher, last_good)
            initial = start.ruleset
            self._sha = start.sha256
            self._reload = HotReload(
                "ruleset",
                fetcher,
                check_every_s,
                lambda candidate: self._accept(fetcher, candidate),
                lambda ruleset: ruleset.version,
                initial,
                start.tag,  # a refused published version is not read again until it changes
                refusals=(RuleSetError, RuleSetRefused),
                clock=clock,
            )
            if start.last_good is not None:
                self._start_from_last_good(fetcher.name, start)
            elif start.body is not None:
                self._remember(initial, start.body)
        self._fallback = initial
        # History kept in Redis is sized for the rule set the worker started with.
        self.max_horizon_s = max_horizon_s if max_horizon_s is not None else initial.state_horizon_s

    @property
    def ruleset(self) -> RuleSet:
        return self._fallback if self._reload is None else self._reload.value

    @property
    def last_refusal(self) -> str | None:
        """Why the newest version was refused, if it was."""
        return None if self._reload is None else self._reload.last_refusal

    @property
    def from_last_good(self) -> LastGood | None:
        """The stored last good version this processor judges with because the published one
        was refused when it started; None once a published version is accepted."""
        return self._from_last_good

    def current(self) -> RuleSet:
        """The rule set for this batch: checks the source when the interval has passed."""
        if self._reload is None:
            return self._fallback
        ruleset = self._reload.current()
        if self._unsaved is not None and self._clock() - self._save_tried >= self._save_wait_s:
            self._remember(*self._unsaved)
        if self._from_last_good is not None:
            METRICS.incr("ruleset.last_good_in_use")  # per batch: > 0 while it lasts
        return ruleset

    def _start_from_last_good(self, name: str, start: StartingRuleSet) -> None:
        good = start.last_good
        assert good is not None
        self._from_last_good = good
        if self._reload is not None:
            self._reload.last_refusal = start.refused
        METRICS.incr("ruleset.refused")
        METRICS.incr("ruleset.last_good_in_use")
        log.warning(
            "ruleset_fallback_last_good",
            source=name,
            refused=start.refused,
            version=good.version,
            sha256=good.sha256,
            accepted_at=good.accepted_at,
            accepted_by=good.accepted_by,
            last_good=good.location,
        )

    def _accept(self, fetcher: Fetcher[bytes], fetched: Fetched[bytes]) -> RuleSet:
        """Load and admit a new published version (HotReload refuses it on an exception); once
        admitted it is the one in force, so it becomes the last good version too."""
        # Country features included: the state store keeps every account's countries.
        candidate = load_ruleset(fetched.data, name=fetcher.name)
        sha = sha256_of(fetched.data)
        self._admit(candidate, sha)
        self._sha = sha
        if self._from_last_good is not None:
            log.info(
                "ruleset_fallback_ended",
                source=fetcher.name,
                version=candidate.version,
                last_good_version=self._from_last_good.version,
            )
            self._from_last_good = None
        self._remember(candidate, fetched.data)
        return candidate

    def _admit(self, candidate: RuleSet, sha: str | None = None) -> RuleSet:
        """A new version must say so, and must not need more history than this worker keeps.
        The very same content again (a copy, a touch, a rollback to the version in force) is
        accepted and changes nothing."""
        if candidate.version == self.ruleset.version and (sha is None or sha != self._sha):
            raise RuleSetRefused(
                f"the content changed but the version is still {candidate.version!r}: "
                "bump `version` so every decision names the rules that made it"
            )
        if candidate.state_horizon_s > self.max_horizon_s:
            raise RuleSetRefused(
                f"version {candidate.version!r} needs {candidate.state_horizon_s} s of history; "
                f"this worker keeps {self.max_horizon_s} s (restart the workers to apply it)"
            )
        return candidate

    def _remember(self, ruleset: RuleSet, body: bytes) -> None:
        """Keep an accepted version as the last good one; never raises (the record matters only
        at the next refused start): a failure is logged, counted and tried again later."""
        if self._store is None:
            return
        self._save_tried = self._clock()
        try:
            saved = self._store.remember(ruleset, body, self._source_name, self._accepted_by)
        except Exception as exc:
            self._unsaved = (ruleset, body)
            self._save_wait_s = min(SAVE_RETRY_MAX_S, max(self._every, 2 * self._save_wait_s, 1))
            METRICS.incr("ruleset.last_good_save_failed")
            log.warning(
                "ruleset_last_good_save_failed",
                last_good=self._store.location,
                version=ruleset.version,
                error=summary(exc),
                retry_in_s=round(self._save_wait_s),
            )
            return
        self._unsaved, self._save_wait_s = None, 0.0
        if saved:
            log.info(
                "ruleset_last_good_saved",
                last_good=self._store.location,
                version=ruleset.version,
                sha256=sha256_of(body),
            )
