"""Label files: CSV and JSON Lines, gzip, every kind of bad line, and no input that raises."""

from __future__ import annotations

import gzip
import io
import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.labels.records import MAX_LINE_BYTES, BadLabel, Label, read_labels

HEADER = "transaction_id,is_fraud,labelled_at,account_id,merchant_id,event_time"


def read(data: bytes, name: str = "labels.jsonl") -> list[Label | BadLabel]:
    return list(read_labels(io.BytesIO(data), name))


def jsonl(*objs: object) -> bytes:
    return b"".join(json.dumps(obj).encode() + b"\n" for obj in objs)


GOOD = {
    "transaction_id": "t1",
    "is_fraud": True,
    "labelled_at": "2025-12-01T10:00:00.5Z",
    "account_id": "acct-123456",
    "merchant_id": "m1",
    "event_time": 1764540000000,
}


def test_a_good_json_line() -> None:
    assert read(jsonl(GOOD)) == [
        Label("t1", True, Decimal("1764583200.5"), "acct-123456", "m1", Decimal("1764540000"))
    ]


def test_a_good_csv_file_by_column_name() -> None:
    data = (
        b"event_time,account_id,transaction_id,is_fraud,labelled_at,merchant_id,note\n"
        b"2025-12-01T00:00:00Z,a1,t1,true,1764583200500,m1,chargeback\n"
        b"1764540000000,a2,t2,0,2025-12-01T10:00:00+01:00,,\n"
        b"\n"
        b"1764540000000,a3,t3,FALSE,1764583200000,m3,x\r\n"
    )
    labels = read(data, "x.csv")
    assert labels == [
        Label("t1", True, Decimal("1764583200.5"), "a1", "m1", Decimal(1764547200)),
        Label("t2", False, Decimal(1764579600), "a2", None, Decimal("1764540000")),
        Label("t3", False, Decimal(1764583200), "a3", "m3", Decimal("1764540000")),
    ]


def test_format_sniffed_without_a_telling_name_and_a_bom_skipped() -> None:
    data = b"\xef\xbb\xbf" + HEADER.encode() + b"\nt1,1,1764583200000,a1,m1,1764540000000\n"
    assert [type(x) for x in read(data, "labels-export")] == [Label]
    assert [type(x) for x in read(b"\xef\xbb\xbf" + jsonl(GOOD), "labels-export")] == [Label]


def test_gzip_by_magic_bytes_and_by_name() -> None:
    zipped = gzip.compress(jsonl(GOOD, GOOD))
    assert len(read(zipped, "labels.jsonl")) == 2
    assert len(read(zipped, "labels.jsonl.gz")) == 2
    csv_zipped = gzip.compress(f"{HEADER}\nt1,1,1764583200000,a1,m1,1764540000000\n".encode())
    assert [type(x) for x in read(csv_zipped, "labels.csv.gz")] == [Label]


def test_a_truncated_gzip_keeps_the_lines_before_and_reports_one_bad_line() -> None:
    zipped = gzip.compress(jsonl(*[GOOD] * 200))
    out = read(zipped[: len(zipped) - 12], "labels.jsonl.gz")
    assert isinstance(out[-1], BadLabel) and "gzip" in out[-1].reason
    assert all(isinstance(x, Label) for x in out[:-1])


def test_a_gz_name_that_is_not_gzip() -> None:
    (out,) = read(jsonl(GOOD), "labels.jsonl.gz")
    assert isinstance(out, BadLabel) and "gzip" in out.reason
    assert out.where == "labels.jsonl.gz:1"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"transaction_id": None}, "transaction_id: missing"),
        ({"transaction_id": ""}, "transaction_id: must be"),
        ({"transaction_id": "x" * 129}, "transaction_id: must be"),
        ({"transaction_id": 5}, "transaction_id: must be"),
        ({"account_id": None}, "account_id: missing"),
        ({"account_id": ["a"]}, "account_id: must be"),
        ({"merchant_id": "m" * 257}, "merchant_id: must be"),
        ({"merchant_id": 7}, "merchant_id: must be"),
        ({"is_fraud": None}, "is_fraud: missing"),
        ({"is_fraud": "yes"}, "is_fraud: must be"),
        ({"is_fraud": 2}, "is_fraud: must be"),
        ({"labelled_at": None}, "labelled_at: missing"),
        ({"labelled_at": 1.5}, "labelled_at: must be"),
        ({"labelled_at": "1764583200000"}, "labelled_at: must be"),
        ({"labelled_at": "2026-02-30T00:00:00Z"}, "labelled_at: must be"),
        ({"labelled_at": "2025-12-01T00:00:00.0000001Z"}, "labelled_at: at most 6"),
        ({"labelled_at": -1}, "labelled_at: must be 1970"),
        ({"labelled_at": 10**30}, "labelled_at: must be"),
        ({"event_time": None}, "event_time: missing"),
        ({"event_time": "2026-12-01"}, "event_time: must be"),
        ({"event_time": 10**16}, "event_time: must be"),
        ({"event_time": "2025-12-02T00:00:00Z"}, "labelled_at: before event_time"),
    ],
)
def test_every_bad_field_is_named(change: dict[str, object], reason: str) -> None:
    obj = {**GOOD, **change}
    obj = {k: v for k, v in obj.items() if v is not None}
    (out,) = read(jsonl(obj), "f.jsonl")
    assert isinstance(out, BadLabel), out
    assert out.where == "f.jsonl:1"
    assert out.reason.startswith(reason), out.reason


def test_merchant_absent_or_empty_is_none() -> None:
    no_merchant = {k: v for k, v in GOOD.items() if k != "merchant_id"}
    (a, b) = read(jsonl(no_merchant, {**GOOD, "merchant_id": ""}))
    assert isinstance(a, Label) and a.merchant_id is None
    assert isinstance(b, Label) and b.merchant_id is None


@pytest.mark.parametrize(
    "line",
    [b"not json", b"[1,2]", b'"str"', b"{", b"\xff\xfe{}", b'{"a":' * 5000, b"null", b"NaN"],
)
def test_bad_json_lines(line: bytes) -> None:
    (out,) = read(line + b"\n" + jsonl(GOOD), "f.jsonl")[:1]
    assert isinstance(out, BadLabel) and out.where == "f.jsonl:1"


def test_bad_lines_do_not_stop_the_file_and_are_numbered() -> None:
    data = jsonl(GOOD) + b"garbage\n\n" + jsonl({**GOOD, "is_fraud": 3}, GOOD)
    out = read(data, "f.jsonl")
    assert [type(x).__name__ for x in out] == ["Label", "BadLabel", "BadLabel", "Label"]
    assert [x.where for x in out if isinstance(x, BadLabel)] == ["f.jsonl:2", "f.jsonl:4"]


def test_csv_bad_rows() -> None:
    data = (
        f"{HEADER}\n"
        "t1,1,1764583200000\n"  # too few columns
        "t2,maybe,1764583200000,a,m,1764540000000\n"
        't3,1,1764583200000,a,m,"1764540000000\n'
        "t4,1,1.5,a,m,1764540000000\n"
        ",1,1764583200000,a,m,1764540000000\n"
    ).encode() + b"t5,1,1764583200000,\xff,m,1764540000000\n"
    out = read(data, "f.csv")
    assert all(isinstance(x, BadLabel) for x in out), out
    reasons = [x.reason for x in out if isinstance(x, BadLabel)]
    assert reasons[0].startswith("3 columns, the header has 6")
    assert reasons[1].startswith("is_fraud")
    assert reasons[3].startswith("labelled_at")
    assert reasons[4] == "transaction_id: missing"
    assert reasons[5] == "not UTF-8 text"
    assert [x.where for x in out if isinstance(x, BadLabel)] == [f"f.csv:{n}" for n in range(2, 8)]


def test_csv_without_its_header_is_one_bad_line() -> None:
    (out,) = read(b"t1,1,1764583200000,a1,m1,1764540000000\nt2,1,2,3,4,5\n", "f.csv")
    assert isinstance(out, BadLabel) and out.reason.startswith("header: missing column")
    assert out.where == "f.csv:1"
    twice = read(f"{HEADER},is_fraud\n".encode(), "f.csv")
    assert isinstance(twice[0], BadLabel) and "twice" in twice[0].reason


def test_a_huge_line_is_reported_and_skipped_without_holding_it() -> None:
    huge = b'{"transaction_id":"' + b"x" * (5 * MAX_LINE_BYTES) + b'"}\n'
    out = read(jsonl(GOOD) + huge + jsonl(GOOD) + b"y" * (3 * MAX_LINE_BYTES), "f.jsonl")
    assert [type(x).__name__ for x in out] == ["Label", "BadLabel", "Label", "BadLabel"]
    assert [x.where for x in out if isinstance(x, BadLabel)] == ["f.jsonl:2", "f.jsonl:4"]
    assert "longer than" in out[1].reason  # type: ignore[union-attr]


def test_not_after_refuses_a_verdict_from_the_future() -> None:
    (out,) = read_labels(io.BytesIO(jsonl(GOOD)), "f.jsonl", not_after=Decimal(1764583200))
    assert isinstance(out, BadLabel) and out.reason == "labelled_at: in the future"


def test_labelled_at_is_canonical_plain_notation() -> None:
    (out,) = read(jsonl({**GOOD, "labelled_at": "2025-12-01T10:00:00.500000000Z"}))
    assert isinstance(out, Label) and str(out.labelled_at) == "1764583200.5"
    (zero,) = read(jsonl({**GOOD, "labelled_at": "1970-01-01T00:00:00.000001Z", "event_time": 0}))
    assert isinstance(zero, Label) and str(zero.labelled_at) == "0.000001"


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    data=st.binary(max_size=3000),
    name=st.sampled_from(["a.csv", "a.jsonl", "a.csv.gz", "plain", "a.gz"]),
    zipped=st.booleans(),
)
def test_no_bytes_raise(data: bytes, name: str, zipped: bool) -> None:
    if zipped:
        data = gzip.compress(data)
    for item in read_labels(io.BytesIO(data), name):
        assert isinstance(item, Label | BadLabel)


_cells = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["true", "0", "1764583200000", "2025-12-01T00:00:00Z", "", '"', "t1"]),
)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.lists(_cells, min_size=0, max_size=8), max_size=6), jsonish=st.booleans())
def test_no_near_valid_text_raises(rows: list[list[str]], jsonish: bool) -> None:
    if jsonish:
        lines = [json.dumps(dict(zip(list(GOOD), row, strict=False))) for row in rows]
        data = "\n".join(lines).encode("utf-8", "surrogatepass")
        name = "f.jsonl"
    else:
        data = "\n".join([HEADER, *(",".join(row) for row in rows)]).encode(
            "utf-8", "surrogatepass"
        )
        name = "f.csv"
    for item in read_labels(io.BytesIO(data), name):
        assert isinstance(item, Label | BadLabel)
