"""The hand-built output tree and its report, shared by the report's tests."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from consumer.report.run import ReportRequest, build
from tests.unit.report.tree import Tree, arrival_ms, write_labels

DAY1, DAY2 = "2026-12-01", "2026-12-02"


def _label(n: int, fraud: bool, at: int = 1_795_000_000_000) -> dict[str, Any]:
    return {
        "transaction_id": f"t-{n}",
        "is_fraud": fraud,
        "labelled_at": at,
        "account_id": "a",
        "event_time": 1_794_000_000_000,
    }


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("out")
    t = Tree()
    a1, a2 = arrival_ms(DAY1, 5), arrival_ms(DAY2, 7)
    card = {"origin_country": "fr", "destination_country": "US", "channel": "online"}
    t.judge(
        1,
        a1,
        "100.00",
        (("high_amount", "high"),),
        score=95.0,
        model_version="m1",
        merchant_category="electronics",
        **card,
    )
    t.judge(2, a1, "20", score=12.5, model_version="m1")
    t.judge(3, a1, "30", (("velocity", "low"),), score=40.0, model_version="m1")
    t.judge(
        4,
        a2,
        "1E+3",
        (("velocity", "medium"), ("model_score", "medium")),
        shadow=(("new_rule", "low"),),
        score=81.0,
        model_version="m2",
        rules_version="v2",
    )
    t.judge(
        5, a2, "7", shadow=(("new_rule", "low"),), score=5.0, model_version="m2", rules_version="v2"
    )
    t.judge(6, a2, "9", score=15.0, model_version="m2", rules_version="v2")
    t.judge(7, arrival_ms("2026-12-09", 1), "5000", (("high_amount", "high"),))  # out of range
    t.dead(a1, "amount: missing")
    t.dead(a1, "amount: must be a number > 0 and <= 1e9")
    t.dead(a2, "not valid JSON: Expecting value")
    t.write(root)
    write_labels(
        root,
        [
            _label(1, True),
            _label(2, False),
            _label(3, False),
            _label(4, False),
            _label(4, True, at=1_795_000_000_001),  # a later verdict wins
            _label(5, True),
            _label(6, False),
        ],
    )
    return root


@pytest.fixture(scope="module")
def report(tree: Path) -> dict[str, Any]:
    return build(ReportRequest(date(2026, 12, 1), date(2026, 12, 7), str(tree)))
