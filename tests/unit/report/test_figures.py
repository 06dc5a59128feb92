"""The report's figures on a small hand-built output tree (written with the project's line
builders and key layouts), every SQL file run in DuckDB, and the HTML convention."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

from consumer.report import figures, render
from consumer.report.run import ReportRequest, build
from tests.unit.report.tree import Tree, arrival_ms

DAY1, DAY2 = "2026-12-01", "2026-12-02"


def test_headline(report: dict[str, Any]) -> None:
    h = report["headline"]
    assert h["judged"] == {"count": 6, "value": 1166}  # 100 + 20 + 30 + 1E+3 + 7 + 9
    assert h["flagged"] == {"count": 3, "value": 1130}
    assert h["alerts"]["count"] == 2  # high and medium; the low velocity hit is no alert
    assert h["alerts"]["value"] == 1100
    fraud = h["fraud"]
    assert fraud["labelled"] == 6 and fraud["frauds"] == 3
    assert fraud["rate"] == 0.5
    assert (fraud["caught"], fraud["caught_value"], fraud["missed"]) == (2, 1100, 1)
    # The fraud loss: t-5's 7, labelled fraud and not flagged.
    assert (fraud["frauds_value"], fraud["missed_value"]) == (1107, 7)
    assert fraud["false_alarms"] == 1
    assert h["dead_letters"]["count"] == 3
    assert h["dead_letters"]["by_reason"] == [
        {"reason": "amount", "dead_letters": 2},
        {"reason": "not valid JSON", "dead_letters": 1},
    ]


def test_breakdowns(report: dict[str, Any]) -> None:
    b = report["breakdowns"]
    assert {r["rule"]: (r["flagged"], r["value"], r["alerts"]) for r in b["rule"]} == {
        "high_amount": (1, 100, 1),
        "velocity": (2, 1030, 1),
        "model_score": (1, 1000, 1),
    }
    assert {r["severity"]: r["flagged"] for r in b["severity"]} == {
        "high": 1,
        "low": 1,
        "medium": 1,
    }
    assert {r["merchant_category"]: r["flagged"] for r in b["merchant_category"]} == {
        "electronics": 1,
        "(none)": 2,
    }
    assert b["country_pair"][0]["flagged"] == 2  # (none, none) first
    assert {(r["origin_country"], r["destination_country"]) for r in b["country_pair"]} == {
        ("FR", "US"),
        ("(none)", "(none)"),
    }
    assert [(r["hour"], r["judged"], r["flagged"]) for r in b["hour"]] == [
        ("05", 3, 2),
        ("07", 3, 1),
    ]


def test_the_breakdowns_cover_every_judged_transaction(report: dict[str, Any]) -> None:
    """The trail carries amounts and merchants: judged count and value, flagged, flag rate and
    the labelled frauds per group (t-1: electronics, online, FR -> US; the rest without)."""
    assert report["breakdowns_over"] == "judged"
    b = report["breakdowns"]
    columns = ("judged", "judged_value", "flagged", "flagged_value", "flag_rate", "alerts")
    frauds = ("frauds", "fraud_value", "missed_value")
    by_category = {r["merchant_category"]: r for r in b["merchant_category"]}
    assert [tuple(by_category["electronics"][k] for k in columns + frauds)] == [
        (1, 100, 1, 100, 1.0, 1, 1, 100, 0)
    ]
    none = by_category["(none)"]
    assert tuple(none[k] for k in columns) == (5, 1066, 2, 1030, 0.4, 1)
    assert tuple(none[k] for k in frauds) == (2, 1007, 7)
    assert {r["channel"]: (r["judged"], r["flagged"]) for r in b["channel"]} == {
        "online": (1, 1),
        "(none)": (5, 2),
    }
    pairs = {
        (r["origin_country"], r["destination_country"]): r["judged"] for r in b["country_pair"]
    }
    assert pairs == {("(none)", "(none)"): 5, ("FR", "US"): 1}
    hours = {r["hour"]: r for r in b["hour"]}
    assert (hours["05"]["judged_value"], hours["05"]["flagged_value"]) == (150, 130)
    assert (hours["07"]["judged_value"], hours["07"]["missed_value"]) == (1016, 7)
    # Rules and severities are the flagged lines' still.
    assert {r["rule"]: r["flagged"] for r in b["rule"]}["velocity"] == 2
    assert not any("not known" in note or "not recorded" in note for note in report["notes"])


def _older_tree(root: Path, older: range) -> dict[str, Any]:
    t = Tree()
    for n in range(1, 5):
        t.judge(
            n,
            arrival_ms(DAY1, 3 + n % 2),
            f"{n}0.00",
            (("high_amount", "high"),) if n % 2 else (),
            merchant_category="grocery",
            older_line=n in older,
        )
    t.write(root)
    return build(ReportRequest(date(2026, 12, 1), date(2026, 12, 1), str(root)))


def test_older_decision_lines_without_amounts_fall_back_to_the_flagged_breakdowns(
    tmp_path: Path,
) -> None:
    """A range of lines written before the decision line carried the amount: counts as before,
    values not known, the breakdowns over the flagged lines, and a note."""
    data = _older_tree(tmp_path, range(1, 5))
    assert data["headline"]["judged"] == {"count": 4, "value": None}
    assert data["headline"]["flagged"] == {"count": 2, "value": 40}
    assert data["breakdowns_over"] == "flagged"
    assert data["breakdowns"]["merchant_category"] == [
        {"merchant_category": "grocery", "flagged": 2, "value": 40, "alerts": 2}
    ]
    assert [(r["hour"], r["judged"], r["flagged"]) for r in data["breakdowns"]["hour"]] == [
        ("03", 2, 0),
        ("04", 2, 2),
    ]
    assert any("carry no amount or merchant fields" in note for note in data["notes"])
    render.html(data)
    render.markdown(data)


def test_a_range_with_older_and_newer_decision_lines(tmp_path: Path) -> None:
    """A deploy inside the range: the newer lines' values, the older ones under (not recorded)."""
    data = _older_tree(tmp_path, range(1, 3))
    assert data["headline"]["judged"] == {"count": 4, "value": 70}  # 30 + 40
    assert data["breakdowns_over"] == "judged"
    rows = {r["merchant_category"]: r for r in data["breakdowns"]["merchant_category"]}
    assert (rows["grocery"]["judged"], rows["grocery"]["judged_value"]) == (2, 70)
    assert (rows["(not recorded)"]["judged"], rows["(not recorded)"]["judged_value"]) == (2, None)
    assert any(note.startswith("2 of 4 decision lines") for note in data["notes"])
    render.html(data)


def test_quality(report: dict[str, Any]) -> None:
    rules = {(r["rule"], r["dt"]): r for r in report["quality"]["rules"]}
    velocity = rules[("velocity", DAY1)]
    assert (velocity["tp"], velocity["fp"], velocity["fn"], velocity["tn"]) == (0, 1, 1, 1)
    assert velocity["precision"] == 0.0 and velocity["recall"] == 0.0
    assert velocity["false_positive_rate"] == 0.5
    model = rules[("model_score", DAY2)]
    assert (model["tp"], model["fp"], model["fn"], model["tn"]) == (1, 0, 1, 1)
    assert model["precision"] == 1.0 and model["recall"] == 0.5
    shadow = {(r["rule"], r["dt"]): r for r in report["quality"]["shadow"]}
    new = shadow[("new_rule", DAY2)]
    assert (new["tp"], new["fp"], new["fn"], new["tn"]) == (2, 0, 0, 1)


def test_drift_and_versions(report: dict[str, Any]) -> None:
    by_day = report["drift"]["by_day"]
    assert [d["dt"] for d in by_day] == [DAY1, DAY2]
    assert by_day[0]["alert_rate"] == round(1 / 3, 6)
    assert by_day[0]["score_bins"] == [0, 1, 0, 0, 1, 0, 0, 0, 0, 1]
    assert by_day[1]["score_bins"] == [1, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    assert by_day[0]["psi_vs_previous_day"] is None
    expected = figures.psi([0, 1, 0, 0, 1, 0, 0, 0, 0, 1], [1, 1, 0, 0, 0, 0, 0, 0, 1, 0])
    assert by_day[1]["psi_vs_previous_day"] == expected and expected > 1
    versions = [
        (v["rules_version"], v["model_version"], v["lines"]) for v in report["versions"]["in_force"]
    ]
    assert versions == [("v1", "m1", 3), ("v2", "m2", 3)]


def test_psi_identical_is_zero() -> None:
    assert figures.psi([5, 5, 0], [10, 10, 0]) == 0.0
    assert figures.psi([0, 0], [1, 1]) is None


def test_without_the_trail_and_labels(tree: Path, tmp_path: Path) -> None:
    t = Tree()
    t.judge(1, arrival_ms(DAY1, 3), "10", (("high_amount", "high"),))
    t.write(tmp_path, decisions=False)
    data = build(ReportRequest(date(2026, 12, 1), date(2026, 12, 1), str(tmp_path)))
    assert data["headline"]["judged"]["count"] is None
    assert data["headline"]["flagged"]["count"] == 1
    assert data["headline"]["fraud"]["rate"] is None
    assert data["quality"]["rules"] is None and data["drift"]["by_day"] is None
    assert any(note.startswith("decisions trail off") for note in data["notes"])
    assert any(note.startswith("no labels") for note in data["notes"])
    assert data["versions"]["from"] == "flagged"
    assert data["breakdowns_over"] == "flagged"
    assert data["headline"]["judged"]["value"] is None
    assert data["breakdowns"]["merchant_category"][0]["flagged"] == 1
    render.html(data)
    render.markdown(data)


def test_html_numbers_are_the_json(report: dict[str, Any]) -> None:
    page = render.html(report)
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3', "")
    found = re.findall(r'data-figure="([^"]+)">([^<]*)<', page)
    assert len(found) > 30
    for path, text in found:
        value: Any = report
        for part in path.split("."):
            value = value[int(part)] if isinstance(value, list) else value[part]
        assert json.loads(text) == value, path
    for chart in re.findall(r"<svg data-chart=.*?</svg>", page):
        assert re.search(r"<(rect|path|circle)\b", chart), chart[:80]


def test_every_sql_file_documents_its_parameters() -> None:
    for name in figures.sql_files():
        text = figures.sql_text(name)
        first = text.splitlines()[0]
        assert first.startswith("-- parameters:"), name
        for param in set(re.findall(r"(?<![:\w]):([a-z_]+)", text)):
            assert f":{param}" in first, (name, param)
        assert "FILTER" not in text.upper().replace("FILTERED", "")
