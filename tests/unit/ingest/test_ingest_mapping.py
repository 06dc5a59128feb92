"""The CSV mapping (consumer/ingest/mapping.py): a good one parses, a bad one is refused with the
key that is wrong named in the message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from consumer.ingest.mapping import MappingError, load_mapping, parse_mapping

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "ingest-mapping.example.yaml"


def base() -> dict[str, Any]:
    return {
        "fields": {
            "transaction_id": {"column": "id", "type": "string"},
            "account_id": {"column": "card", "type": "string"},
            "amount": {"column": "amt", "type": "decimal"},
            "timestamp": {"column": "ts", "type": "timestamp"},
        }
    }


def test_the_documented_example_parses() -> None:
    mapping = load_mapping(str(EXAMPLE), lambda: None)
    fields = [spec.field for spec in mapping.specs]
    assert fields[:4] == ["transaction_id", "account_id", "amount", "timestamp"]
    assert "store_code" in fields  # the extra field
    assert mapping.csv.null_values == ("", "NULL")
    currency = next(spec for spec in mapping.specs if spec.field == "currency")
    assert currency.value == "EUR" and currency.column is None


def test_types_default_to_the_contract_s() -> None:
    doc = base()
    for spec in doc["fields"].values():
        del spec["type"]
    mapping = parse_mapping(doc)
    assert [s.type for s in mapping.specs] == ["string", "string", "decimal", "timestamp"]


def edit(path: str, value: Any) -> dict[str, Any]:
    """base() with the value at a dotted path set (None: removed)."""
    doc = base()
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        del node[last]
    else:
        node[last] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        (edit("fields.amount", None), "fields.amount"),  # a required field missing
        (edit("fields.ammount", {"column": "x"}), "fields.ammount"),  # not a contract field
        (edit("fields.amount.type", "string"), "fields.amount.type"),  # wrong type
        (edit("fields.amount.type", "float"), "fields.amount.type"),  # unknown type
        (edit("fields.amount.colum", "amt"), "fields.amount.colum"),  # unknown key
        (edit("fields.amount.column", None), "fields.amount"),  # neither column nor value
        (edit("fields.amount.value", "5"), "fields.amount"),  # both column and value
        (edit("fields.amount.column", ""), "fields.amount.column"),
        (edit("fields.amount.column", 7), "fields.amount.column"),
        (edit("fields.timestamp.format", "dd/mm/yyyy"), "fields.timestamp.format"),
        (edit("fields.timestamp.format", "%d/%m/%Y"), "fields.timestamp.timezone"),  # no zone
        (edit("fields.timestamp.timezone", "UTC"), "fields.timestamp.timezone"),  # iso8601
        (edit("fields.amount.format", "epoch_ms"), "fields.amount.format"),
        (edit("extra.amount", {"column": "a"}), "extra.amount"),  # contract field in extra
        (edit("extra.note", {"column": "n"}), "extra.note.type"),  # extra without a type
        (edit("csv.delimiter", ";;"), "csv.delimiter"),
        (edit("csv.null_values", "NULL"), "csv.null_values"),
        (edit("csv.decimal_separator", ","), "csv.decimal_separator"),  # same as delimiter
        (edit("csv.quote", "'"), "csv.quote"),
        (edit("version", 2), "version"),
        (edit("colums", {}), "colums"),
    ],
)
def test_a_bad_mapping_is_refused_naming_the_key(doc: dict[str, Any], key: str) -> None:
    with pytest.raises(MappingError) as refused:
        parse_mapping(doc)
    assert str(refused.value).startswith(f"{key}:"), str(refused.value)


def test_a_strptime_pattern_with_a_zone(tmp_path: Path) -> None:
    doc = edit("fields.timestamp", {"column": "ts", "type": "timestamp", "format": "%d/%m/%Y"})
    doc["fields"]["timestamp"]["timezone"] = "Nowhere/Atlantis"
    with pytest.raises(MappingError, match=r"^fields\.timestamp\.timezone: unknown time zone"):
        parse_mapping(doc)
    doc["fields"]["timestamp"]["timezone"] = "+02:00"
    assert parse_mapping(doc).specs[3].zone is not None


def test_an_unreadable_mapping_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("fields: [unclosed")
    with pytest.raises(MappingError, match=f"mapping {path}: not YAML or JSON"):
        load_mapping(str(path), lambda: None)
    with pytest.raises(MappingError, match="cannot read it"):
        load_mapping(str(tmp_path / "missing.yaml"), lambda: None)
    path.write_text('{"fields": {"amount": {"column": "a"}}}')  # JSON is YAML
    with pytest.raises(MappingError, match=rf"mapping {path}: fields\.transaction_id: missing"):
        load_mapping(str(path), lambda: None)
