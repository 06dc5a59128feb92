"""The replay-line reader's msgspec path decides exactly as the `json.loads` reader it replaced.

`original` below is that reader as it was (commit 6c27daa), kept as the oracle: for any line,
what `_jsonl_item` returns (the record's bytes, a BadLine with its reason, or None for a blank
line) must equal it."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from consumer.backtest import inputs
from consumer.backtest.inputs import BadLine, Item, _jsonl_item


def original(raw: bytes) -> Item | None:
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        if not raw.strip():
            return None
        return BadLine(f"replay line: not valid JSON: {exc}")
    if type(obj) is dict:
        data = obj.get("data")
        if type(data) is str:
            try:
                return data.encode()
            except UnicodeEncodeError:
                return BadLine('replay line: "data" is not encodable as UTF-8')
        b64 = obj.get("data_b64")
        if data is None and type(b64) is str:
            try:
                return base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError) as exc:
                return BadLine(f'replay line: "data_b64" is not valid base64: {exc}')
        if data is None and b64 is None:
            return raw.rstrip(b"\r\n")
    return BadLine('replay line: expected {"data": ...} or {"data_b64": ...}')


_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
_b64ish = st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode()) | st.text(
    alphabet="AQ=+/ab\n", max_size=10
)
_objects = st.fixed_dictionaries(
    {},
    optional={
        "data": _values | st.text(),
        "data_b64": _values | _b64ish,
        "partition_key": st.text(max_size=8),
    },
).flatmap(
    lambda fixed: st.dictionaries(st.text(max_size=6), _values, max_size=2).map(
        lambda extra: {**extra, **fixed}
    )
)


def _encoded(obj: dict[str, Any], ascii_only: bool, tail: bytes) -> bytes:
    return json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass") + tail


@settings(max_examples=400)
@given(_objects, st.booleans(), st.sampled_from([b"", b"\n", b"\r\n", b" \n"]))
def test_objects_decide_as_json_loads_did(
    obj: dict[str, Any], ascii_only: bool, tail: bytes
) -> None:
    raw = _encoded(obj, ascii_only, tail)
    assert _jsonl_item(raw) == original(raw)


@settings(max_examples=400)
@given(st.binary(max_size=40))
@example(b"")
@example(b"  \n")
@example(b'{"data": "\\ud800"}\n')  # a lone surrogate: not encodable
@example(b'{"data": "a", "data": 1}')  # the last of a repeated key wins
@example(b'{"data": null, "data_b64": "YQ=="}')
@example(b'{"data_b64": "YQ"}')  # bad padding
@example(b'{"x": NaN}')  # json.loads takes it: the line is the record itself
@example(b"\xef\xbb\xbf" + b'{"data": "x"}')  # a UTF-8 byte order mark
@example('{"data": "x"}'.encode("utf-16"))
@example(b"[1, 2]")
@example(b'{"data": "x"} trailing')
def test_any_bytes_decide_as_json_loads_did(raw: bytes) -> None:
    assert _jsonl_item(raw) == original(raw)


def test_the_usual_line_takes_the_msgspec_path(monkeypatch: Any) -> None:
    """Otherwise the speed this path exists for is gone without any other test noticing."""

    def refuse(raw: bytes) -> None:
        raise AssertionError(f"lenient path taken for {raw!r}")

    monkeypatch.setattr(inputs, "_jsonl_item_lenient", refuse)
    record = {"transaction_id": "t-1", "account_id": "a-1", "amount": 12.5}
    for line in (
        {"data": json.dumps(record), "partition_key": "a-1"},
        {"data_b64": base64.b64encode(json.dumps(record).encode()).decode()},
        record,
    ):
        assert _jsonl_item(json.dumps(line).encode() + b"\n") == original(
            json.dumps(line).encode() + b"\n"
        )
