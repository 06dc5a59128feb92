"""`s3://bucket/key` locations in settings, read one way everywhere.

A key is everything after the bucket's slash, verbatim: S3 keys may hold `?`, `#`, spaces or
double slashes, which a URL parser would take as a query, a fragment or a path to normalise
(urllib.parse.urlparse drops `?x` from `s3://b/rules.yaml?x`, so the worker would read another
object than the one configured).
"""

from __future__ import annotations

from typing import NamedTuple

SCHEME = "s3://"


class S3Location(NamedTuple):
    bucket: str
    key: str  # a key or a prefix; may be empty

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"


def is_s3(raw: str) -> bool:
    return raw.startswith(SCHEME)


def parse_s3(raw: str) -> S3Location:
    """The bucket and the key of `s3://bucket/key`; ValueError without a bucket."""
    if not is_s3(raw):
        raise ValueError(f"not an s3:// location: {raw!r}")
    bucket, _, key = raw[len(SCHEME) :].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {raw!r}")
    return S3Location(bucket, key)
