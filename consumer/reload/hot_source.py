"""Hot reload of a versioned source: read it again only when it changed, swap in a new version
only when it loads, and keep the version in force otherwise.

Shared by the rule set (consumer/reload/rulesets.py) and the model (consumer/reload/models.py):
both are checked at the start of a batch every `check_every_s` seconds, by a stat of a file or
a conditional GET of an S3 object by ETag, so a quiet source costs a 304 and no parsing. A
version that does not load is refused once (a log line naming the source and the reason, and
`<kind>.refused` counted), and the one in force goes on: a batch is never judged half by one
version and half by another.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from botocore.exceptions import ClientError

from consumer.infra.logs import get_logger
from consumer.infra.metrics import METRICS
from consumer.settings.s3_uri import is_s3, parse_s3

log = get_logger(__name__)

D = TypeVar("D")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Fetched(Generic[D]):
    """A version of the source: its tag (ETag, or file inode, mtime and size) and its data."""

    tag: str
    data: D


class Fetcher(Protocol[D]):
    """Reads the source when it changed since `tag`; None when it did not."""

    @property
    def name(self) -> str: ...

    def fetch(self, tag: str | None) -> Fetched[D] | None: ...


class FileFetcher:
    def __init__(self, path: str) -> None:
        self.path = path
        self.name = path

    def fetch(self, tag: str | None) -> Fetched[bytes] | None:
        stat = os.stat(self.path)
        # The inode too: a file renamed over the old one (an atomic deploy) is a new version
        # even when its size and mtime happen to match.
        current = f"{stat.st_ino}:{stat.st_mtime_ns}:{stat.st_size}"
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

    def fetch(self, tag: str | None) -> Fetched[bytes] | None:
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


def fetcher_for(source: str, s3: Callable[[], Any]) -> Fetcher[bytes]:
    """`s3://bucket/key` or a file path."""
    if is_s3(source):
        location = parse_s3(source)
        return S3Fetcher(s3(), location.bucket, location.key)
    return FileFetcher(source)


class FileSetFetcher:
    """Several files that make one version (a model's model.txt and features.json): it changed
    when any of them did, and then all of them are read, so the data is always a whole set."""

    def __init__(self, name: str, parts: Mapping[str, Fetcher[bytes]]) -> None:
        self.name = name
        self._parts = dict(parts)

    def fetch(self, tag: str | None) -> Fetched[dict[str, bytes]] | None:
        tags: dict[str, str] = json.loads(tag) if tag is not None else {}
        fetched = {part: f.fetch(tags.get(part)) for part, f in self._parts.items()}
        if all(got is None for got in fetched.values()):
            return None
        whole: dict[str, Fetched[bytes]] = {}
        for part, got in fetched.items():
            again = got if got is not None else self._parts[part].fetch(None)
            if again is None:  # cannot happen without a tag; keeps the types honest
                raise OSError(f"{self._parts[part].name}: nothing to read")
            whole[part] = again
        combined = json.dumps({part: got.tag for part, got in whole.items()}, sort_keys=True)
        return Fetched(combined, {part: got.data for part, got in whole.items()})


class HotReload(Generic[D, T]):
    """The checks of one source: `current()` gives the version in force, replaced by a newer
    one that loads. `kind` names the metrics (`<kind>.loaded`, `.refused`, `.check_failed`,
    `.incomplete`) and the log events (`<kind>_loaded`, ...).

    `load` turns a fetched version into the value or raises one of `refusals` (the version is
    refused, once) or of `pending` (the source is mid-update, e.g. one of two files uploaded:
    tried again at the next check, and refused if it is still the same then)."""

    def __init__(
        self,
        kind: str,
        fetcher: Fetcher[D],
        check_every_s: float,
        load: Callable[[Fetched[D]], T],
        version_of: Callable[[T], str],
        value: T,
        tag: str | None,
        refusals: tuple[type[Exception], ...],
        pending: tuple[type[Exception], ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kind = kind
        self.fetcher = fetcher
        self._every = check_every_s
        self._load = load
        self._version_of = version_of
        self._refusals = refusals
        self._pending = pending
        self._clock = clock
        self.value = value  # loaded at start-up by the owner (see RuleSetSource for a fallback)
        self._tag = tag  # None: the source could not be read at start, read it whole next time
        self._refused_tag: str | None = None
        self._pending_tag: str | None = None
        self.last_refusal: str | None = None  # why the newest version was refused, if it was
        self._checked = clock()

    def current(self) -> T:
        """The value for this batch: checks the source when the interval has passed."""
        if self._clock() - self._checked < self._every:
            return self.value
        self._checked = self._clock()
        kind, name = self.kind, self.fetcher.name
        # Asked against the newest version seen: a refused one is not read again at every
        # check (a conditional GET answers 304), only once the source changes.
        newest = self._refused_tag if self._refused_tag is not None else self._tag
        try:
            fetched = self.fetcher.fetch(newest)
        except Exception as exc:  # an unreadable source keeps the version in force
            METRICS.incr(f"{kind}.check_failed")
            log.warning(f"{kind}_check_failed", source=name, error=repr(exc))
            return self.value
        if fetched is None or fetched.tag == self._refused_tag:
            return self.value
        in_force = self._version_of(self.value)
        try:
            candidate = self._load(fetched)
        except self._pending as exc:
            if fetched.tag != self._pending_tag:
                self._pending_tag = fetched.tag
                METRICS.incr(f"{kind}.incomplete")
                log.warning(f"{kind}_incomplete", source=name, error=str(exc), in_force=in_force)
                return self.value
            self._refuse(fetched.tag, exc, in_force)
            return self.value
        except self._refusals as exc:
            self._refuse(fetched.tag, exc, in_force)
            return self.value
        self._tag, self._pending_tag, self.last_refusal = fetched.tag, None, None
        self._refused_tag = None
        version = self._version_of(candidate)
        if version == in_force:  # the same content again (a copy, a touch): nothing to do
            return self.value
        self.value = candidate
        METRICS.incr(f"{kind}.loaded")
        log.info(f"{kind}_loaded", source=name, version=version, previous=in_force)
        return candidate

    def _refuse(self, tag: str, exc: Exception, in_force: str) -> None:
        self._refused_tag = tag  # said once per bad version, not at every check
        self._pending_tag = None
        self.last_refusal = str(exc)
        METRICS.incr(f"{self.kind}.refused")
        log.error(
            f"{self.kind}_refused", source=self.fetcher.name, error=str(exc), in_force=in_force
        )
