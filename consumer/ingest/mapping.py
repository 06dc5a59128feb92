"""The CSV mapping: which column of a file is which field of the record, read as which type
(docs/ingest.md, "The mapping").

Why a mapping file and not a fixed header: files come from other systems (a nightly export, a
partner's batch) whose column names and formats we do not choose. The mapping is checked whole
before any row is read, and a bad one is refused with the key that is wrong
(`fields.amount.type: ...`), so a typo costs one message, never a file of rejects. Field names
are checked against the contract: a contract field goes under `fields`, anything else the
outputs should carry under `extra`, so `ammount` is an error, not a silently passed-through
field.

Pure: `parse_mapping` checks a decoded document; `load_mapping` reads one from a file or S3.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from consumer.ingest.source import IngestInputError

__all__ = [
    "CONTRACT_FIELDS",
    "REQUIRED_FIELDS",
    "ColumnSpec",
    "CsvOptions",
    "IngestMapping",
    "MappingError",
    "load_mapping",
    "parse_mapping",
]

# The contract's fields (docs/contract.md section 1) and the one type each may be read as.
CONTRACT_FIELDS: dict[str, str] = {
    "transaction_id": "string",
    "account_id": "string",
    "amount": "decimal",
    "timestamp": "timestamp",
    "currency": "string",
    "account_balance": "decimal",
    "origin_country": "string",
    "destination_country": "string",
    "latitude": "decimal",
    "longitude": "decimal",
    "channel": "string",
    "account_created_at": "timestamp",
    "merchant_id": "string",
    "merchant_category": "string",
    "device_id": "string",
    "ip_address": "string",
}
REQUIRED_FIELDS = ("transaction_id", "account_id", "amount", "timestamp")
TYPES = ("string", "decimal", "integer", "boolean", "timestamp")
TIME_FORMATS = ("iso8601", "epoch_ms", "epoch_s")
_TOP_KEYS = ("version", "csv", "fields", "extra")
_CSV_KEYS = ("delimiter", "null_values", "strip", "decimal_separator")
_SPEC_KEYS = ("column", "value", "type", "format", "timezone")
_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")


class MappingError(IngestInputError):
    """The mapping is unusable; the message names the key (`fields.amount.type: ...`)."""


@dataclass(frozen=True)
class ColumnSpec:
    """Where one output field comes from: a column (by its header name) or a constant `value`;
    `type` says how the cell is written into the record; `time_format` and `zone` for
    timestamps (`zone` only with a strptime pattern)."""

    field: str
    column: str | None
    value: str | None
    type: str
    time_format: str = "iso8601"
    zone: tzinfo | None = None


@dataclass(frozen=True)
class CsvOptions:
    """How cells are cut and read: the delimiter, the cells meaning "absent", whether cells are
    stripped of surrounding whitespace, and the decimal separator of decimal columns."""

    delimiter: str = ","
    null_values: tuple[str, ...] = ("",)
    strip: bool = True
    decimal_separator: str = "."


@dataclass(frozen=True)
class IngestMapping:
    """A checked mapping: the contract fields then the extra ones, in the file's order."""

    specs: tuple[ColumnSpec, ...]
    csv: CsvOptions

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the mapping reads, once each, in order."""
        seen: dict[str, None] = {}
        for spec in self.specs:
            if spec.column is not None:
                seen.setdefault(spec.column, None)
        return tuple(seen)


def _fail(key: str, message: str) -> MappingError:
    return MappingError(f"{key}: {message}")


def _unknown_keys(obj: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in obj:
        if key not in allowed:
            name = f"{where}.{key}" if where else str(key)
            raise _fail(name, f"unknown key (allowed: {', '.join(allowed)})")


def _zone(raw: object, key: str) -> tzinfo:
    if not isinstance(raw, str) or not raw:
        raise _fail(key, "must be an IANA zone name (Europe/Paris), UTC, or an offset +HH:MM")
    match = _OFFSET.match(raw)
    if match:
        sign, hours, minutes = match.groups()
        if int(hours) > 23 or int(minutes) > 59:
            raise _fail(key, f"offset out of range: {raw}")
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        return timezone(-delta if sign == "-" else delta)
    if raw.upper() == "UTC" or raw == "Z":
        return UTC
    try:
        return ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail(key, f"unknown time zone {raw!r}") from None


def _spec(name: str, raw: object, where: str, contract: bool) -> ColumnSpec:
    key = f"{where}.{name}"
    if not isinstance(raw, dict):
        raise _fail(key, "must be a mapping with `column` (or `value`) and `type`")
    _unknown_keys(raw, _SPEC_KEYS, key)
    column, value = raw.get("column"), raw.get("value")
    if (column is None) == (value is None):
        raise _fail(key, "give exactly one of `column` (a header name) or `value` (a constant)")
    if column is not None and (not isinstance(column, str) or not column.strip()):
        raise _fail(f"{key}.column", "must be a non-empty header name (a string)")
    if value is not None and not isinstance(value, str):
        raise _fail(f"{key}.value", "must be a string (written as the field's type says)")
    wanted = CONTRACT_FIELDS.get(name) if contract else None
    kind = raw.get("type", wanted)
    if kind is None:
        raise _fail(f"{key}.type", f"missing (one of {', '.join(TYPES)})")
    if kind not in TYPES:
        raise _fail(f"{key}.type", f"must be one of {', '.join(TYPES)}, got {kind!r}")
    if wanted is not None and kind != wanted:
        raise _fail(f"{key}.type", f"must be {wanted} (the contract's {name}), got {kind!r}")
    time_format, zone = "iso8601", None
    if kind == "timestamp":
        time_format = raw.get("format", "iso8601")
        if not isinstance(time_format, str) or (
            time_format not in TIME_FORMATS and "%" not in time_format
        ):
            raise _fail(
                f"{key}.format",
                f"must be one of {', '.join(TIME_FORMATS)} or a strptime pattern "
                f"(%Y-%m-%d %H:%M:%S), got {time_format!r}",
            )
        if "timezone" in raw:
            if time_format in TIME_FORMATS:
                raise _fail(f"{key}.timezone", f"only with a strptime pattern, not {time_format}")
            zone = _zone(raw["timezone"], f"{key}.timezone")
        elif "%" in time_format and "%z" not in time_format:
            raise _fail(
                f"{key}.timezone",
                "missing: the pattern has no %z, so the zone of its times must be named",
            )
    else:
        for option in ("format", "timezone"):
            if option in raw:
                raise _fail(f"{key}.{option}", "only for type timestamp")
    return ColumnSpec(
        field=name,
        column=column.strip() if isinstance(column, str) else None,
        value=value,
        type=kind,
        time_format=time_format,
        zone=zone,
    )


def _csv_options(raw: object) -> CsvOptions:
    if raw is None:
        return CsvOptions()
    if not isinstance(raw, dict):
        raise _fail("csv", "must be a mapping")
    _unknown_keys(raw, _CSV_KEYS, "csv")
    delimiter = raw.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '\r\n"':
        raise _fail("csv.delimiter", "must be one character (not a quote or a line break)")
    nulls = raw.get("null_values", [""])
    if not isinstance(nulls, list) or not all(isinstance(v, str) for v in nulls):
        raise _fail("csv.null_values", 'must be a list of strings (e.g. ["", "NULL"])')
    strip = raw.get("strip", True)
    if not isinstance(strip, bool):
        raise _fail("csv.strip", "must be true or false")
    separator = raw.get("decimal_separator", ".")
    if separator not in (".", ","):
        raise _fail("csv.decimal_separator", 'must be "." or ","')
    if separator == delimiter:
        raise _fail("csv.decimal_separator", "must differ from csv.delimiter")
    return CsvOptions(delimiter, tuple(nulls), strip, separator)


def parse_mapping(doc: object) -> IngestMapping:
    """Check a decoded mapping document; `MappingError` names the first wrong key."""
    if not isinstance(doc, dict):
        raise _fail("mapping", "must be a mapping with `fields`")
    _unknown_keys(doc, _TOP_KEYS, "")
    if doc.get("version", 1) != 1:
        raise _fail("version", f"must be 1, got {doc.get('version')!r}")
    fields = doc.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise _fail("fields", "missing: a mapping of contract field -> {column, type}")
    specs: list[ColumnSpec] = []
    for name, raw in fields.items():
        if name not in CONTRACT_FIELDS:
            raise _fail(
                f"fields.{name}",
                "not a contract field (docs/contract.md; other fields go under `extra`)",
            )
        specs.append(_spec(name, raw, "fields", contract=True))
    for name in REQUIRED_FIELDS:
        if name not in fields:
            raise _fail(f"fields.{name}", "missing (a required field of the contract)")
    extra = doc.get("extra") or {}
    if not isinstance(extra, dict):
        raise _fail("extra", "must be a mapping of field -> {column, type}")
    for name, raw in extra.items():
        if not isinstance(name, str) or not name:
            raise _fail("extra", f"field names must be non-empty strings, got {name!r}")
        if name in CONTRACT_FIELDS:
            raise _fail(f"extra.{name}", "a contract field: map it under `fields`")
        specs.append(_spec(name, raw, "extra", contract=False))
    return IngestMapping(tuple(specs), _csv_options(doc.get("csv")))


def load_mapping(location: str, s3_client: Callable[[], Any]) -> IngestMapping:
    """Read and check a mapping file (YAML or JSON: JSON is YAML) from a path or `s3://`.
    Raises `MappingError` (`mapping <location>: <key>: <what>`)."""
    import yaml

    from consumer.settings.s3_uri import is_s3, parse_s3

    try:
        if is_s3(location):
            where = parse_s3(location)
            text = s3_client().get_object(Bucket=where.bucket, Key=where.key)["Body"].read()
        else:
            with open(location, "rb") as handle:
                text = handle.read()
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingError(f"mapping {location}: not YAML or JSON: {exc}") from None
    except Exception as exc:  # a missing file, S3's NoSuchKey or AccessDenied, a bad s3:// URI
        raise MappingError(f"mapping {location}: cannot read it: {exc}") from None
    try:
        return parse_mapping(doc)
    except MappingError as exc:
        raise MappingError(f"mapping {location}: {exc}") from None
