"""Rows to records (consumer/ingest/rows.py, source.py): CSV through a mapping, JSON Lines as
they are, gzip by its magic bytes; every row validated by consumer.records.parse_transaction."""

from __future__ import annotations

import gzip
import io
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.ingest.mapping import IngestMapping, MappingError, parse_mapping
from consumer.ingest.rows import Accepted, Rejected, mask_numbers, read_rows
from consumer.ingest.source import SourceError
from consumer.records import Transaction, parse_transaction

NOW = 1_796_000_000.0  # 2026-12-01, after every timestamp below


def mapping(**timestamp: Any) -> IngestMapping:
    return parse_mapping(
        {
            "fields": {
                "transaction_id": {"column": "id", "type": "string"},
                "account_id": {"column": "card", "type": "string"},
                "amount": {"column": "amt", "type": "decimal"},
                "timestamp": {"column": "ts", "type": "timestamp", **timestamp},
                "account_balance": {"column": "bal", "type": "decimal"},
            },
            "extra": {"vip": {"column": "vip", "type": "boolean"}},
        }
    )


def rows(data: bytes, m: IngestMapping | None = None, name: str = "f.csv") -> list[Any]:
    return list(read_rows(io.BytesIO(data), name, mapping=m or mapping(), clock=lambda: NOW))


def record(item: Any) -> dict[str, Any]:
    assert isinstance(item, Accepted), item
    return json.loads(item.entry.data)


HEADER = b"id,card,amt,ts,bal,vip\n"


def test_a_csv_row_becomes_the_contract_s_record_with_exact_decimals() -> None:
    [row] = rows(HEADER + b"t1,acct-1,10000.001,2026-11-28T10:00:00Z,5.00,yes\n")
    assert isinstance(row, Accepted) and row.row == 2
    assert row.entry.partition_key == "acct-1"
    assert row.entry.data == (
        b'{"transaction_id":"t1","account_id":"acct-1","amount":10000.001,'
        b'"timestamp":"2026-11-28T10:00:00Z","account_balance":5.00,"vip":true}'
    )
    txn = parse_transaction(row.entry.data)
    assert isinstance(txn, Transaction)
    assert txn.amount == Decimal("10000.001") and str(txn.account_balance) == "5.00"


def test_long_decimals_pass_as_written_never_through_a_float() -> None:
    literal = "0.100000000000000005"  # a float would make it 0.1
    [row] = rows(HEADER + f"t1,a,{literal},2026-11-28T10:00:00Z,,\n".encode())
    assert f'"amount":{literal}'.encode() in row.entry.data


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ('"12,50"', "amount: not a decimal number"),  # the separator is "." here
        ("1e5x", "amount: not a decimal number"),
        ("+5", "amount: not a decimal number"),
        ("NaN", "amount: not a decimal number"),
        ("-5", "amount: must be a number > 0 and <= 1e9"),  # the stream's own reason
        ("", "amount: missing"),  # an empty cell is absent
    ],
)
def test_a_bad_decimal_is_rejected_with_its_reason(cell: str, reason: str) -> None:
    [row] = rows(HEADER + f"t1,a,{cell},2026-11-28T10:00:00Z,,\n".encode())
    assert row == Rejected(2, reason)


def test_a_decimal_comma_when_the_mapping_says_so() -> None:
    m = parse_mapping(
        {
            "csv": {"delimiter": ";", "decimal_separator": ","},
            "fields": {
                "transaction_id": {"column": "id"},
                "account_id": {"column": "card"},
                "amount": {"column": "amt"},
                "timestamp": {"column": "ts"},
            },
        }
    )
    [row] = rows(b"id;card;amt;ts\nt1;a;12,50;2026-11-28T10:00:00Z\n", m)
    assert record(row)["amount"] == 12.5 and b'"amount":12.50' in row.entry.data


@pytest.mark.parametrize(
    ("options", "cell", "written"),
    [
        ({}, "2026-11-28T10:00:00.123+02:00", "2026-11-28T10:00:00.123+02:00"),
        ({"format": "epoch_ms"}, "1795860000123", 1795860000123),
        ({"format": "epoch_s"}, "1795860000", 1795860000000),
        ({"format": "epoch_s"}, "1795860000.1234567", "2026-11-28T10:00:00.1234567Z"),
        (
            {"format": "%d/%m/%Y %H:%M", "timezone": "Europe/Paris"},
            "28/11/2026 10:00",
            "2026-11-28T10:00:00+01:00",
        ),
        (
            {"format": "%d/%m/%Y %H:%M", "timezone": "Europe/Paris"},
            "28/07/2026 10:00",  # summer time: the zone's offset of that day
            "2026-07-28T10:00:00+02:00",
        ),
        (
            {"format": "%Y-%m-%d %H:%M:%S%z"},
            "2026-11-28 10:00:00-0500",
            "2026-11-28T10:00:00-05:00",
        ),
    ],
)
def test_timestamps_in_each_format(options: dict[str, str], cell: str, written: Any) -> None:
    [row] = rows(HEADER + f"t1,a,5,{cell},,\n".encode(), mapping(**options))
    assert record(row)["timestamp"] == written
    assert isinstance(parse_transaction(row.entry.data), Transaction)


@pytest.mark.parametrize(
    ("options", "cell", "reason"),
    [
        ({}, "2026-11-28 10:00:00", "timestamp: must be an ISO-8601 string"),
        ({"format": "epoch_ms"}, "1795860000.5", "timestamp: not epoch milliseconds"),
        ({"format": "epoch_s"}, "1e9", "timestamp: not epoch seconds"),
        ({"format": "%d/%m/%Y", "timezone": "UTC"}, "2026-11-28", "timestamp: does not match"),
        # 2100: past the future bound; the 13 digits masked as a card number's would be
        ({"format": "epoch_ms"}, "4102444800000", "timestamp: *********0000 lies more than"),
    ],
)
def test_bad_timestamps_are_rejected(options: dict[str, str], cell: str, reason: str) -> None:
    [row] = rows(HEADER + f"t1,a,5,{cell},,\n".encode(), mapping(**options))
    assert isinstance(row, Rejected) and row.reason.startswith(reason), row


def test_missing_and_extra_cells_and_columns() -> None:
    data = (
        b"id,card,amt,ts,bal,vip,unmapped\n"
        b"t1,a,5,2026-11-28T10:00:00Z,,,ignored\n"  # an unmapped column: ignored
        b"t2,a,5\n"  # too few cells
        b"t3,a,5,2026-11-28T10:00:00Z,,,x,y\n"  # too many
        b"\n"  # blank: skipped, but counted as a line
        b't4,a,5,2026-11-28T10:00:00Z,,"maybe",x\n'  # a bad boolean in an extra field
    )
    got = rows(data)
    assert isinstance(got[0], Accepted) and "unmapped" not in record(got[0])
    assert got[1:] == [
        Rejected(3, "3 cells, the header has 7"),
        Rejected(4, "8 cells, the header has 7"),
        Rejected(6, "vip: not a boolean (true, false, 1, 0, yes, no)"),
    ]


def test_a_header_without_a_mapped_column_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match=r"fields\.amount\.column: no column 'amt'"):
        rows(b"id,card,amount,ts,bal,vip\nt1,a,5,2026-11-28T10:00:00Z,,\n")
    with pytest.raises(MappingError, match="needs a mapping"):
        list(read_rows(io.BytesIO(HEADER), "f.csv", mapping=None))


def test_reasons_never_carry_a_card_number() -> None:
    card = "4111111111111111"
    [row] = rows(HEADER + f"t1,{card},5,2026-11-28T10:00:00Z,,\n".encode())
    assert isinstance(row, Accepted)
    # A JSON Lines row whose reason would quote the number (a future timestamp quotes its value).
    line = f'{{"transaction_id":"t","account_id":"a","amount":1,"timestamp":"{card}"}}'
    [bad] = rows(line.encode() + b"\n", name="f.jsonl")
    assert isinstance(bad, Rejected)
    assert card not in bad.reason
    assert mask_numbers(f"x {card} y") == "x ************1111 y"


def test_json_lines_rows_are_put_as_their_own_bytes() -> None:
    good = b'{"transaction_id":"t1","account_id":"a","amount":5.00,"timestamp":1795860000000}'
    data = good + b"\r\n\nnot json\n[1]\n"
    got = rows(data, name="export.jsonl")
    assert isinstance(got[0], Accepted) and got[0].entry.data == good
    assert [type(r) for r in got[1:]] == [Rejected, Rejected]
    assert got[1].row == 3 and got[1].reason.startswith("not valid JSON")
    assert got[2] == Rejected(4, "not a JSON object: got an array")
    # Without a telling name, the first line decides.
    assert isinstance(rows(good, name="blob")[0], Accepted)


def test_gzip_by_its_magic_bytes_whatever_the_name() -> None:
    data = HEADER + b"t1,a,5,2026-11-28T10:00:00Z,,\n"
    [row] = rows(gzip.compress(data), name="f.csv")  # no .gz in the name
    assert isinstance(row, Accepted)
    [row] = rows(data, name="f.csv.gz")  # a .gz name on plain bytes
    assert isinstance(row, Accepted)


def test_a_truncated_gzip_is_a_source_error_after_the_rows_before_it() -> None:
    body = HEADER + b"".join(f"t{i},a{i},5,2026-11-28T10:00:00Z,,\n".encode() for i in range(20000))
    packed = gzip.compress(body)
    seen: list[Any] = []
    with pytest.raises(SourceError, match="corrupt or truncated"):
        for item in read_rows(io.BytesIO(packed[: len(packed) // 2]), "f.csv", mapping=mapping()):
            seen.append(item)
    assert seen and all(isinstance(item, Accepted) for item in seen)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.binary(max_size=2000), gz=st.booleans(), name=st.sampled_from(["f.csv", "f.jsonl"]))
def test_no_input_bytes_raise_anything_but_the_source_and_mapping_errors(
    data: bytes, gz: bool, name: str
) -> None:
    """Any bytes, CSV or JSON Lines, plain or gzip (or a gzip header on garbage): every row
    is Accepted or Rejected; only an unreadable source or a header without the mapped columns
    ends the file, with their own errors."""
    payload = gzip.compress(data) if gz else data
    try:
        for item in read_rows(io.BytesIO(payload), name, mapping=mapping(), clock=lambda: NOW):
            assert isinstance(item, Accepted | Rejected)
            if isinstance(item, Accepted):
                assert isinstance(parse_transaction(item.entry.data), Transaction)
    except (SourceError, MappingError):
        pass


@settings(max_examples=200, deadline=None)
@given(cells=st.lists(st.text(max_size=30), min_size=6, max_size=6))
def test_any_csv_cells_are_accepted_or_rejected(cells: list[str]) -> None:
    import csv

    out = io.StringIO()
    csv.writer(out).writerow(cells)
    for item in rows(HEADER + out.getvalue().encode("utf-8", "surrogatepass")):
        assert isinstance(item, Accepted | Rejected)
