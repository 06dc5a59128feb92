"""The five tables the report's SQL sees (docs/analytics.md), loaded into DuckDB from the bucket's
outputs (docs/contract.md sections 4 and 5) or a local copy with the same layout.

`flagged`, `decisions`, `shadow` (with `dt` and `hour`) and `dead_letters` (with `dt`) have the
JSON lines' fields as columns, and the partition columns from the key path (hive style,
`dt=YYYY-MM-DD/hour=HH`, both VARCHAR). `labels` has the label records' fields, read by the
worker's own reader (consumer/labels/records.py), with the times as exact epoch seconds
(DECIMAL(20,6)).

Only the partitions in the range are listed; their files are read in chunks into tables of a
DuckDB database (on disk, in a temporary directory, so a busy day spills instead of growing the
process), which is what the progress bar counts: every query then reads the tables, not the gzip
files again. A prefix with no object in the range is an empty table of the same columns;
`Loaded.files` says which were empty (the decisions trail off, no shadow rule, ...).

The transaction's fields that the report reads are typed in `TRANSACTION`; a field a line does
not have is NULL (a decision line written before the line carried the amount and the merchant
fields has them NULL), and fields not listed are not loaded. Amounts are DOUBLE: the report's sums
are for people, not ledgers (the outputs keep every amount exactly as received).
"""

from __future__ import annotations

import csv
import gzip
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from consumer.errors import FraudstreamError
from consumer.infra.logs import get_logger
from consumer.labels.records import BadLabel, read_labels

log = get_logger(__name__)

TRANSACTION = (
    "STRUCT(amount DOUBLE, currency VARCHAR, merchant_id VARCHAR, merchant_category VARCHAR, "
    "channel VARCHAR, origin_country VARCHAR, destination_country VARCHAR, device_id VARCHAR)"
)
REASONS = "STRUCT(rule VARCHAR, detail VARCHAR)[]"
_POSITION = {
    "shard_id": "VARCHAR",
    "sequence_number": "VARCHAR",
    "sub_sequence_number": "BIGINT",
}
_FLAGGED = {
    "transaction_id": "VARCHAR",
    "account_id": "VARCHAR",
    "severity": "VARCHAR",
    "reasons": REASONS,
    "transaction": TRANSACTION,
    **_POSITION,
    "detected_at": "VARCHAR",
    "rules_version": "VARCHAR",
}

# name -> (folder under the prefix, JSON columns, hourly partitions)
COLUMNS: dict[str, tuple[str, dict[str, str], bool]] = {
    "flagged": (
        "flagged",
        {**_FLAGGED, "model_score": "DOUBLE", "model_version": "VARCHAR"},
        True,
    ),
    "decisions": (
        "decisions",
        {
            "transaction_id": "VARCHAR",
            "account_id": "VARCHAR",
            "event_time": "VARCHAR",
            "flagged": "BOOLEAN",
            "severity": "VARCHAR",
            "rules": "VARCHAR[]",
            "rules_version": "VARCHAR",
            **_POSITION,
            "model_score": "DOUBLE",
            "model_version": "VARCHAR",
            # Since the decision line carries them; NULL on an older line (a missing key).
            "amount": "DOUBLE",
            "currency": "VARCHAR",
            "merchant_id": "VARCHAR",
            "merchant_category": "VARCHAR",
            "channel": "VARCHAR",
            "origin_country": "VARCHAR",
            "destination_country": "VARCHAR",
        },
        True,
    ),
    "shadow": ("shadow", {**_FLAGGED, "flagged_by_live_rules": "BOOLEAN"}, True),
    "dead_letters": (
        "dead-letter",
        {
            "data": "VARCHAR",
            **_POSITION,
            "approximate_arrival_timestamp": "BIGINT",
            "error": "VARCHAR",
        },
        False,
    ),
}
LABEL_COLUMNS = {
    "transaction_id": "VARCHAR",
    "is_fraud": "BOOLEAN",
    "labelled_at": "DECIMAL(20,6)",
    "account_id": "VARCHAR",
    "merchant_id": "VARCHAR",
    "event_time": "DECIMAL(20,6)",
}
TABLES = (*COLUMNS, "labels")
CHUNK_BYTES = 64 * 1024 * 1024  # compressed bytes read per INSERT: the progress bar's step
CHUNK_FILES = 1024  # a read_json call costs per call too: fewer, larger ones over small objects


class UnreadableSource(FraudstreamError, RuntimeError):
    """The source (or the labels' location) cannot be listed or read: exit code 2."""


@dataclass(frozen=True)
class Obj:
    """One object of the outputs: where DuckDB reads it, and its size."""

    url: str
    size: int


@dataclass
class Loaded:
    """What was read: files and lines per table, bad label lines."""

    files: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    bad_labels: int = 0
    bad_label_examples: list[str] = field(default_factory=list)


class Location:
    """A source: `s3://bucket/prefix/` or a local directory with the same layout."""

    def __init__(self, text: str, s3: Any = None) -> None:
        self.text = text
        self.is_s3 = text.startswith("s3://")
        self._s3 = s3
        if self.is_s3:
            bucket, _, prefix = text[len("s3://") :].partition("/")
            if not bucket:
                raise UnreadableSource(f"{text}: no bucket")
            self.bucket = bucket
            self.prefix = prefix if prefix == "" or prefix.endswith("/") else prefix + "/"
        else:
            self.root = Path(text)
            if not self.root.is_dir():
                raise UnreadableSource(f"{text}: not a directory")

    def client(self) -> Any:
        if self._s3 is None:
            import boto3

            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            self._s3 = boto3.session.Session().client("s3", region_name=region or "us-east-1")
        return self._s3

    def list(self, folder: str) -> list[Obj]:
        """Every object under `folder` (relative to the source), sorted by key."""
        if not self.is_s3:
            base = self.root / folder
            if not base.is_dir():
                return []
            return [
                Obj(str(path), path.stat().st_size)
                for path in sorted(base.rglob("*"))
                if path.is_file()
            ]
        found: list[Obj] = []
        try:
            pages = self.client().get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=self.prefix + folder):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if not key.endswith("/"):
                        found.append(Obj(f"s3://{self.bucket}/{key}", int(item["Size"])))
        except Exception as exc:
            raise UnreadableSource(f"{self.text}: cannot list {folder}: {exc}") from exc
        return sorted(found, key=lambda obj: obj.url)

    def open(self, obj: Obj) -> Any:
        """A binary stream of the object's bytes."""
        if not self.is_s3:
            return open(obj.url, "rb")
        key = obj.url[len(f"s3://{self.bucket}/") :]
        return self.client().get_object(Bucket=self.bucket, Key=key)["Body"]


def days(start: date, end: date) -> list[str]:
    """'YYYY-MM-DD' of every day from `start` to `end`, both included."""
    return [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


def plan(source: Location, start: date, end: date) -> dict[str, list[Obj]]:
    """The objects of each output table in the range: only the range's `dt=` partitions are
    listed. Objects that are not `.jsonl.gz` are left out."""
    planned: dict[str, list[Obj]] = {}
    for name, (folder, _, _) in COLUMNS.items():
        objs: list[Obj] = []
        for day in days(start, end):
            objs += [
                obj for obj in source.list(f"{folder}/dt={day}/") if obj.url.endswith(".jsonl.gz")
            ]
        planned[name] = objs
    return planned


def _columns_sql(columns: dict[str, str]) -> str:
    return ", ".join(f'"{name}" {kind}' for name, kind in columns.items())


def _struct_literal(columns: dict[str, str]) -> str:
    return "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items()) + "}"


def connect(workdir: Path, memory_limit: str | None = None, threads: int | None = None) -> Any:
    """A DuckDB database in `workdir` (on disk: a busy day spills there), with httpfs loaded from
    its Python package (never installed from the network; the signature is checked)."""
    import duckdb

    con = duckdb.connect(str(workdir / "report.duckdb"))
    con.execute(f"SET temp_directory = '{workdir / 'spill'}'")
    con.execute("SET preserve_insertion_order = false")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def httpfs_path() -> Path:
    """The httpfs extension of the `duckdb-extension-httpfs` package, for this DuckDB."""
    import duckdb
    import duckdb_extension_httpfs

    base = Path(duckdb_extension_httpfs.__file__).parent
    return base / "extensions" / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"


def enable_s3(con: Any) -> None:
    """httpfs and a secret from boto3's credentials and region, with AWS_ENDPOINT_URL_S3 (or
    AWS_ENDPOINT_URL) as the endpoint: path style, and plain HTTP for an http:// endpoint (the
    local stack's moto)."""
    import boto3

    path = httpfs_path()
    if not path.is_file():
        raise UnreadableSource(f"DuckDB's httpfs extension is not installed ({path})")
    con.execute(f"LOAD '{path}'")
    session = boto3.session.Session()
    creds = session.get_credentials()
    region = os.environ.get("AWS_REGION") or session.region_name or "us-east-1"
    options: dict[str, str] = {"TYPE": "s3", "REGION": region}
    if creds is not None:
        frozen = creds.get_frozen_credentials()
        options["KEY_ID"] = str(frozen.access_key)
        options["SECRET"] = str(frozen.secret_key)
        if frozen.token:
            options["SESSION_TOKEN"] = frozen.token
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        scheme, _, rest = endpoint.partition("://")
        options["ENDPOINT"] = rest.rstrip("/")
        options["URL_STYLE"] = "path"
        options["USE_SSL"] = "true" if scheme == "https" else "false"
    body = ", ".join(
        f"{key} {value}" if key in ("TYPE", "USE_SSL") else f"{key} '{_quote(value)}'"
        for key, value in options.items()
    )
    con.execute(f"CREATE OR REPLACE SECRET fraudstream_s3 ({body})")


def _quote(value: str) -> str:
    return value.replace("'", "''")


def _chunks(objs: list[Obj]) -> Iterator[list[Obj]]:
    chunk: list[Obj] = []
    size = 0
    for obj in objs:
        chunk.append(obj)
        size += obj.size
        if size >= CHUNK_BYTES or len(chunk) >= CHUNK_FILES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def create_tables(con: Any) -> None:
    """The five tables, empty."""
    for name, (_, columns, hourly) in COLUMNS.items():
        parts = '"dt" VARCHAR, "hour" VARCHAR' if hourly else '"dt" VARCHAR'
        con.execute(f'CREATE TABLE "{name}" ({_columns_sql(columns)}, {parts})')
    con.execute(f"CREATE TABLE labels ({_columns_sql(LABEL_COLUMNS)})")


def load(
    con: Any,
    planned: dict[str, list[Obj]],
    progress: Callable[[int], None] = lambda _: None,
) -> Loaded:
    """Read the planned objects into the tables; `progress(bytes)` after each chunk."""
    loaded = Loaded()
    for name, objs in planned.items():
        _, columns, hourly = COLUMNS[name]
        loaded.files[name] = len(objs)
        hive = "{'dt': 'VARCHAR', 'hour': 'VARCHAR'}" if hourly else "{'dt': 'VARCHAR'}"
        select = ", ".join(f'"{c}"' for c in columns) + (', "dt", "hour"' if hourly else ', "dt"')
        for chunk in _chunks(objs):
            try:
                con.execute(
                    f'INSERT INTO "{name}" SELECT {select} FROM read_json($files, '  # noqa: S608
                    f"columns = {_struct_literal(columns)}, format = 'newline_delimited', "
                    f"compression = 'gzip', hive_partitioning = true, hive_types = {hive})",
                    {"files": [obj.url for obj in chunk]},
                )
            except Exception as exc:
                raise UnreadableSource(f"{name}: {exc}") from exc
            progress(sum(obj.size for obj in chunk))
        loaded.rows[name] = con.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]  # noqa: S608
        log.info("report_table_loaded", table=name, files=len(objs), rows=loaded.rows[name])
    return loaded


def load_labels(
    con: Any,
    location: Location,
    workdir: Path,
    loaded: Loaded,
    progress: Callable[[int], None] = lambda _: None,
) -> None:
    """Every label file under `location` (CSV or JSON Lines, gzip or not: the worker's reader),
    normalised into the `labels` table; bad lines are counted, never fatal."""
    objs = location.list("")
    staged = workdir / "labels.csv.gz"
    rows = 0
    with gzip.open(staged, "wt", encoding="utf-8", newline="", compresslevel=1) as out:
        writer = csv.writer(out)
        writer.writerow(LABEL_COLUMNS)
        for obj in objs:
            name = obj.url.rsplit("/", 1)[-1]
            try:
                with location.open(obj) as stream:
                    for item in read_labels(stream, name):
                        if isinstance(item, BadLabel):
                            loaded.bad_labels += 1
                            if len(loaded.bad_label_examples) < 5:
                                loaded.bad_label_examples.append(f"{item.where}: {item.reason}")
                            continue
                        writer.writerow(
                            (
                                item.transaction_id,
                                "true" if item.is_fraud else "false",
                                item.labelled_at,
                                item.account_id,
                                item.merchant_id or "",
                                item.event_time,
                            )
                        )
                        rows += 1
            except OSError as exc:
                raise UnreadableSource(f"{obj.url}: {exc}") from exc
            progress(obj.size)
    loaded.files["labels"] = len(objs)
    if rows:
        con.execute(
            "INSERT INTO labels SELECT * FROM read_csv($path, header = true, "  # noqa: S608
            f"columns = {_struct_literal(LABEL_COLUMNS)}, quote = '\"', escape = '\"')",
            {"path": str(staged)},
        )
    loaded.rows["labels"] = rows
    log.info("report_labels_loaded", files=len(objs), rows=rows, bad=loaded.bad_labels)


def workdir() -> tempfile.TemporaryDirectory[str]:
    """Where the database lives while the report runs ($FRAUD_REPORT_TMP or the system's)."""
    return tempfile.TemporaryDirectory(
        prefix="fraudstream-report-", dir=os.environ.get("FRAUD_REPORT_TMP") or None
    )
