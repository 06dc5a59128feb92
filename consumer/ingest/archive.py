"""`--archive`: move an S3 source to `incoming/done/` or `incoming/failed/` after its run.

A move is a copy then a delete (S3 has no rename). The copy is boto3's managed copy, so objects
over 5 GB (past CopyObject's limit) move too. The delete comes only after the copy succeeded, so
a failure part-way leaves the file where it was, never lost; the next event for it is then a
re-run, which the stream's duplicate detection makes harmless.
"""

from __future__ import annotations

from typing import Any

from consumer.ingest.locations import archive_key
from consumer.settings.s3_uri import S3Location, parse_s3

__all__ = ["archive"]


def archive(s3: Any, source: str, succeeded: bool) -> str | None:
    """Move `source` (`s3://bucket/<prefix>incoming/<name>`) to its done or failed key; returns
    the new location, or None when the key is outside `incoming/` (left where it is). boto3's
    errors propagate."""
    where = parse_s3(source)
    target = archive_key(where.key, succeeded)
    if target is None:
        return None
    s3.copy({"Bucket": where.bucket, "Key": where.key}, where.bucket, target)
    s3.delete_object(Bucket=where.bucket, Key=where.key)
    return str(S3Location(where.bucket, target))
