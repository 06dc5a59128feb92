"""The rule set in force, and its hot reload from a file or an S3 object.

Analysts change rules without a redeploy: every worker checks the rule set's source every
`check_every_s` seconds (a stat of the file, or a conditional GET of the S3 object by ETag) at the
start of a batch, so a new valid version judges from the next batch on, on every worker. A new
version that does not load, or that this worker cannot honour, is refused with a log line and a
metric, and the version in force stays. Nothing is ever half-applied: a batch is judged by one
version, which every flagged line and alert names (`rules_version`).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from consumer.logs import get_logger
from consumer.metrics import METRICS
from consumer.rules.config import RulesConfig
from consumer.rules.ruleset import RuleSet, RuleSetError
from consumer.rules.ruleset_load import load_ruleset

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Fetched:
    """A version of the source: its tag (ETag, or file mtime and size) and its bytes."""

    tag: str
    data: bytes


class Fetcher(Protocol):
    """Reads the source when it changed since `tag`; None when it did not."""

    name: str

    def fetch(self, tag: str | None) -> Fetched | None: ...


class FileFetcher:
    def __init__(self, path: str) -> None:
        self.path = path
        self.name = path

    def fetch(self, tag: str | None) -> Fetched | None:
        stat = os.stat(self.path)
        current = f"{stat.st_mtime_ns}:{stat.st_size}"
        if current == tag:
            return None
        with open(self.path, "rb") as handle:
            return Fetched(current, handle.read())


class S3Fetcher:
    def __init__(self, s3: Any, bucket: str, key: str) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._key = key
        self.name = f"s3://{bucket}/{key}"

    def fetch(self, tag: str | None) -> Fetched | None:
        request: dict[str, Any] = {"Bucket": self._bucket, "Key": self._key}
        if tag is not None:
            request["IfNoneMatch"] = tag
        try:
            response = self._s3.get_object(**request)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("304", "NotModified"):
                return None
            raise
        return Fetched(str(response["ETag"]), response["Body"].read())


def fetcher_for(source: str, s3: Callable[[], Any]) -> Fetcher:
    """`s3://bucket/key` or a file path (FRAUD_RULESET)."""
    if source.startswith("s3://"):
        parsed = urlparse(source)
        return S3Fetcher(s3(), parsed.netloc, parsed.path.lstrip("/"))
    return FileFetcher(source)


def builtin_ruleset(config: RulesConfig) -> RuleSet:
    """The seven contract rules as configured by FRAUD_RULES_FILE / FRAUD_RULE_*: version
    `builtin` at the defaults, else `builtin-<digest of the settings>`, so every line still says
    which thresholds judged it."""
    if config == RulesConfig():
        return RuleSet("builtin", config)
    digest = hashlib.sha256(repr(config).encode()).hexdigest()[:12]
    return RuleSet(f"builtin-{digest}", config)


class RuleSetRefused(ValueError):
    """A rule set this worker will not apply; the message says why."""


class RuleSetSource:
    """Holds the rule set in force and swaps in a new valid version when its source changes."""

    def __init__(
        self,
        fetcher: Fetcher | None,
        check_every_s: float,
        max_horizon_s: Decimal | None = None,
        clock: Callable[[], float] = time.monotonic,
        fallback: RuleSet | None = None,
    ) -> None:
        self._fetcher = fetcher
        self._every = check_every_s
        self._clock = clock
        self._tag: str | None = None
        self._refused_tag: str | None = None
        self.last_refusal: str | None = None  # why the newest version was refused, if it was
        if fetcher is None:
            if fallback is None:
                raise ValueError("a rule set source needs a fetcher or a fallback rule set")
            self._ruleset = fallback
        else:
            fetched = fetcher.fetch(None)
            if fetched is None:  # cannot happen without a tag; keeps the types honest
                raise RuleSetRefused(f"{fetcher.name}: nothing to read")
            self._ruleset = self._load(fetched)
            self._tag = fetched.tag
        # History kept in Redis is sized for the rule set the worker started with.
        self.max_horizon_s = (
            max_horizon_s if max_horizon_s is not None else self._ruleset.state_horizon_s
        )
        self._checked = clock()

    @property
    def ruleset(self) -> RuleSet:
        return self._ruleset

    def current(self) -> RuleSet:
        """The rule set for this batch: checks the source when the interval has passed."""
        if self._fetcher is None or self._clock() - self._checked < self._every:
            return self._ruleset
        self._checked = self._clock()
        try:
            fetched = self._fetcher.fetch(self._tag)
        except Exception as exc:  # an unreadable source keeps the version in force
            METRICS.incr("ruleset.check_failed")
            log.warning("ruleset_check_failed", source=self._fetcher.name, error=repr(exc))
            return self._ruleset
        if fetched is None or fetched.tag == self._refused_tag:
            return self._ruleset
        try:
            candidate = self._load(fetched)
            self._admit(candidate)
        except (RuleSetError, RuleSetRefused) as exc:
            self._refused_tag = fetched.tag  # said once per bad version, not at every check
            self.last_refusal = str(exc)
            METRICS.incr("ruleset.refused")
            log.error(
                "ruleset_refused",
                source=self._fetcher.name,
                error=str(exc),
                in_force=self._ruleset.version,
            )
            return self._ruleset
        previous = self._ruleset.version
        self._ruleset, self._tag = candidate, fetched.tag
        self.last_refusal = None
        METRICS.incr("ruleset.loaded")
        log.info(
            "ruleset_loaded",
            source=self._fetcher.name,
            version=candidate.version,
            previous=previous,
        )
        return candidate

    def _load(self, fetched: Fetched) -> RuleSet:
        assert self._fetcher is not None
        # Country features included: the state store keeps every account's countries.
        return load_ruleset(fetched.data, name=self._fetcher.name)

    def _admit(self, candidate: RuleSet) -> None:
        """A new version must say so, and must not need more history than this worker keeps."""
        if candidate.version == self._ruleset.version:
            raise RuleSetRefused(
                f"the content changed but the version is still {candidate.version!r}: "
                "bump `version` so every decision names the rules that made it"
            )
        if candidate.state_horizon_s > self.max_horizon_s:
            raise RuleSetRefused(
                f"version {candidate.version!r} needs {candidate.state_horizon_s} s of history; "
                f"this worker keeps {self.max_horizon_s} s (restart the workers to apply it)"
            )
