"""The report's figures as one JSON document, from the SQL files in consumer/report/sql/ run over
the five tables (consumer/report/tables.py). The JSON is the source of truth: the HTML page and
the Markdown render it.

Definitions (docs/analytics.md):
- judged: lines of the decisions trail; without the trail (no decision object in the range) the
  judged figures, the fraud rate, the quality by day and the alert rate are null, with a note.
- value: the sum of the amounts over the lines, whatever their currency: a flagged line's
  `transaction.amount`, a decision line's `amount`. The value judged, the fraud loss (the value
  of labelled frauds not flagged, `missed_value`) and the breakdowns by merchant category,
  channel, country pair and hour over every judged transaction come from the decisions trail;
  a decision line written before the line carried the amount and the merchant fields has them
  NULL. Without the trail, or when no decision line in the range has an amount, those values are
  null and those breakdowns cover the flagged transactions only (`breakdowns_over`), with a
  note; when only some lines have it, the figures leave the others' values out, the breakdowns
  count them under `(not recorded)`, and a note says how many.
- alerts: flagged lines whose severity is at least the alert severity (FRAUD_ALERT_SEVERITY,
  default medium), as the worker decides what to publish.
- labels: per transaction the latest verdict (fraud wins a tie), as the worker keeps them; the
  quality figures count labelled judged transactions only.
- precision tp/(tp+fp), recall tp/(tp+fn), false positive rate fp/(fp+tn); null when the
  denominator is 0.
- score distribution: ten bins of width 10 over 0-100 (bin 9 includes 100); PSI between a day
  and the day before, sum over bins of (p - q) * ln(p / q), each share floored at 0.0001 so an
  empty bin counts as nearly empty instead of infinite.
"""

from __future__ import annotations

import math
import re
from datetime import date
from decimal import Decimal
from importlib import resources
from typing import Any

SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3}
SCORE_BINS = [[10 * n, 10 * (n + 1)] for n in range(10)]
PSI_FLOOR = 0.0001
_PARAM = re.compile(r"(?<![:\w]):([a-z_]+)")


def sql_text(figure: str) -> str:
    """The text of consumer/report/sql/<figure>.sql."""
    return resources.files("consumer.report").joinpath("sql", f"{figure}.sql").read_text()


def sql_files() -> list[str]:
    """The figures that have a SQL file, sorted."""
    folder = resources.files("consumer.report").joinpath("sql")
    return sorted(
        item.name.removesuffix(".sql") for item in folder.iterdir() if item.name.endswith(".sql")
    )


def run_sql(con: Any, figure: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of one figure's SQL as dicts; the `:name` parameters bound from `params`."""
    text = sql_text(figure)
    names = set(_PARAM.findall(text))
    missing = names - params.keys()
    if missing:
        raise ValueError(f"{figure}.sql: parameters {sorted(missing)} not given")
    cursor = con.execute(_PARAM.sub(r"$\1", text), {name: params[name] for name in names})
    columns = [col[0] for col in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _num(value: Any) -> Any:
    """JSON numbers: ints stay ints, whole decimals become ints, other numbers are rounded to 2
    places (money); anything else (text, None, booleans) as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return round(float(value), 2)


def _ratio(num: int | None, den: int | None) -> float | None:
    if not den or num is None:
        return None
    return round(num / den, 6)


def _clean(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: _num(value) for key, value in row.items()} for row in rows]


def psi(expected: list[int], actual: list[int]) -> float | None:
    """The population stability index of `actual` against `expected` (counts per bin)."""
    total_e, total_a = sum(expected), sum(actual)
    if not total_e or not total_a:
        return None
    value = 0.0
    for e, a in zip(expected, actual, strict=True):
        p = max(a / total_a, PSI_FLOOR)
        q = max(e / total_e, PSI_FLOOR)
        value += (p - q) * math.log(p / q)
    return round(value, 6)


def _quality(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        tp, fp, fn, tn = (int(row[k] or 0) for k in ("tp", "fp", "fn", "tn"))
        out.append(
            {
                "rule": row["rule"],
                "dt": row["dt"],
                "tp": tp,
                "fp": fp,
                "fn": fn,
                "tn": tn,
                "precision": _ratio(tp, tp + fp),
                "recall": _ratio(tp, tp + fn),
                "false_positive_rate": _ratio(fp, fp + tn),
            }
        )
    return out


def compute(
    con: Any,
    start: date,
    end: date,
    *,
    alert_severity: str = "medium",
    loaded_files: dict[str, int] | None = None,
    label_rows: int = 0,
) -> dict[str, Any]:
    """Every figure of the report over [start, end] (UTC days, both included)."""
    files = loaded_files or {}
    params = {
        "start_dt": start.isoformat(),
        "end_dt": end.isoformat(),
        "alert_rank": SEVERITY_RANK[alert_severity],
    }
    notes: list[str] = []
    trail = bool(files.get("decisions"))
    labels = label_rows > 0

    def q(figure: str) -> list[dict[str, Any]]:
        return _clean(run_sql(con, figure, params))

    flagged = q("flagged_totals")[0]
    judged = q("judged")[0] if trail else None
    with_amount = int(judged["with_amount"] or 0) if judged else 0
    # The judged figures with values: the trail is on and its lines carry the amount.
    valued = with_amount > 0
    if not trail:
        notes.append(
            "decisions trail off: no decision object in the range (FRAUD_DECISIONS); transactions "
            "judged, their value, fraud rate, fraud loss, quality by day and alert rate cannot be "
            "computed, and the breakdowns cover flagged transactions only"
        )
    elif not valued:
        notes.append(
            "the decision lines in the range carry no amount or merchant fields (written before "
            "the decision line did): the value judged and the fraud loss (value of missed frauds) "
            "are not known, and the breakdowns cover flagged transactions only"
        )
    elif judged is not None and with_amount < judged["judged"]:
        notes.append(
            f"{judged['judged'] - with_amount} of {judged['judged']} decision lines carry no "
            "amount or merchant fields (written before the decision line did): the value judged "
            "and the fraud values leave them out, and the breakdowns count them under "
            "(not recorded)"
        )
    if not labels:
        notes.append("no labels: fraud rate, fraud loss and quality cannot be computed")
    notes.append("values are sums of transaction amounts across currencies")

    headline: dict[str, Any] = {
        "judged": {
            "count": judged["judged"] if judged else None,
            "value": (judged["value"] or 0) if judged and valued else None,
        },
        "flagged": {"count": flagged["flagged"], "value": flagged["value"] or 0},
        "alerts": {
            "count": flagged["alerts"] or 0,
            "value": flagged["alerts_value"] or 0,
            "severity_at_least": alert_severity,
        },
    }
    fraud: dict[str, Any] = {
        "labelled": None,
        "frauds": None,
        "frauds_value": None,
        "rate": None,
        "caught": None,
        "caught_value": None,
        "missed": None,
        "missed_value": None,
        "false_alarms": None,
    }
    if labels:
        loss = q("fraud_loss")[0]
        fraud["caught"] = loss["caught"] or 0
        fraud["caught_value"] = loss["caught_value"] or 0
        fraud["false_alarms"] = loss["false_alarms"] or 0
        if trail:
            outcomes = q("fraud_outcomes")[0]
            fraud["labelled"] = outcomes["labelled"] or 0
            fraud["frauds"] = outcomes["frauds"] or 0
            fraud["missed"] = outcomes["missed"] or 0
            fraud["rate"] = _ratio(outcomes["frauds"] or 0, outcomes["judged"])
            if valued:
                fraud["frauds_value"] = outcomes["frauds_value"] or 0
                fraud["missed_value"] = outcomes["missed_value"] or 0
                if judged is not None and with_amount == judged["judged"]:
                    # Every line has its amount: the trail's own figure (the flagged lines' is
                    # the same sum, the fallback when some lines have none).
                    fraud["caught_value"] = outcomes["caught_value"] or 0
    headline["fraud"] = fraud
    dead = q("dead_letters_by_reason")
    headline["dead_letters"] = {
        "count": sum(row["dead_letters"] for row in dead),
        "by_reason": dead,
    }

    breakdowns: dict[str, Any] = {"rule": q("by_rule"), "severity": q("by_severity")}
    if valued:
        for key in ("merchant_category", "channel", "country_pair", "hour"):
            breakdowns[key] = _judged_rows(q(f"judged_by_{key}"), labels)
    else:
        breakdowns["merchant_category"] = q("by_merchant_category")
        breakdowns["channel"] = q("by_channel")
        breakdowns["country_pair"] = q("by_country_pair")
        breakdowns["hour"] = _hours(q("by_hour"), q("judged_by_hour") if trail else None)

    quality: dict[str, Any] = {"rules": None, "shadow": None}
    if trail and labels:
        quality["rules"] = _quality(q("quality_rules_by_day"))
        quality["shadow"] = _quality(q("quality_shadow_by_day"))
        notes.append(
            "the model at its alert threshold is the rule model_score in quality.rules; "
            "quality counts labelled judged transactions only"
        )

    drift = _drift(q("alerts_by_day") if trail else None, q("score_bins_by_day") if trail else [])
    versions = q("versions_decisions") if trail else q("versions_flagged")
    return {
        "range": {"from": start.isoformat(), "to": end.isoformat()},
        "headline": headline,
        # merchant_category, channel, country_pair and hour: over every judged transaction
        # (the trail, with amounts) or the flagged ones only; rule and severity: flagged.
        "breakdowns_over": "judged" if valued else "flagged",
        "breakdowns": breakdowns,
        "quality": quality,
        "drift": drift,
        "versions": {"from": "decisions" if trail else "flagged", "in_force": versions},
        "read": {"files": files, "labels": label_rows},
        "notes": notes,
    }


_LABELLED = ("frauds", "fraud_value", "missed_value")


def _judged_rows(rows: list[dict[str, Any]], labels: bool) -> list[dict[str, Any]]:
    """A breakdown over judged transactions: the flag rate added; the labelled frauds' figures
    null without labels (the SQL's 0s would read as "no fraud")."""
    out = []
    for row in rows:
        entry = {**row, "flag_rate": _ratio(row["flagged"], row["judged"])}
        if not labels:
            entry.update(dict.fromkeys(_LABELLED))
        out.append(entry)
    return out


def _hours(
    flagged: list[dict[str, Any]], judged: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    by_hour: dict[str, dict[str, Any]] = {}
    for row in flagged:
        by_hour[row["hour"]] = {
            "hour": row["hour"],
            "judged": None,
            "flagged": row["flagged"],
            "value": row["value"],
        }
    for row in judged or []:
        entry = by_hour.setdefault(
            row["hour"], {"hour": row["hour"], "judged": None, "flagged": 0, "value": 0}
        )
        entry["judged"] = row["judged"]
    return [by_hour[hour] for hour in sorted(by_hour)]


def _drift(days: list[dict[str, Any]] | None, bins: list[dict[str, Any]]) -> dict[str, Any]:
    counts: dict[str, list[int]] = {}
    for row in bins:
        counts.setdefault(row["dt"], [0] * len(SCORE_BINS))[int(row["bin"])] += int(row["scored"])
    by_day = []
    previous: list[int] | None = None
    for row in days or []:
        dist = counts.get(row["dt"])
        by_day.append(
            {
                "dt": row["dt"],
                "judged": row["judged"],
                "flagged": row["flagged"],
                "alerts": row["alerts"],
                "alert_rate": _ratio(row["alerts"], row["judged"]),
                "scored": sum(dist) if dist else 0,
                "score_bins": dist,
                "psi_vs_previous_day": psi(previous, dist) if previous and dist else None,
            }
        )
        if dist:
            previous = dist
    return {"score_bins": SCORE_BINS, "by_day": by_day if days is not None else None}
