"""The figures (consumer/report/figures.py) as one self-contained HTML page or as Markdown.

HTML convention (the browser test relies on it): every headline number is an element with
`data-figure="<dotted path into the JSON>"` whose text is the JSON value exactly as `json.dumps`
writes it (`null` where the figure is null); every chart is an inline `<svg data-chart=...>` with
a `<rect>`, `<path>` or `<circle>` per data point when it has data. No script, no network.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from consumer.report import svg

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.5em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
.tiles{display:flex;flex-wrap:wrap;gap:1em}
.tile{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:10em}
.tile .n{font-size:1.4em;font-weight:600} .tile .l{color:#666;font-size:.85em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:2px 8px}
td.num{text-align:right} .notes li{color:#664}
"""


def _get(data: Any, path: str) -> Any:
    for part in path.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def _fig(data: dict[str, Any], path: str) -> str:
    value = _get(data, path)
    return f'<span data-figure="{escape(path)}">{escape(json.dumps(value))}</span>'


def _tile(data: dict[str, Any], path: str, label: str) -> str:
    number = f'<div class="n">{_fig(data, path)}</div>'
    return f'<div class="tile">{number}<div class="l">{label}</div></div>'


def _table(data: dict[str, Any], path: str, columns: list[str]) -> str:
    rows = _get(data, path)
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = []
    for n, row in enumerate(rows):
        cells = []
        for c in columns:
            value = row.get(c)
            if isinstance(value, int | float) and not isinstance(value, bool):
                cells.append(f'<td class="num">{_fig(data, f"{path}.{n}.{c}")}</td>')
            else:
                cells.append(f"<td>{escape('' if value is None else str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


_JUDGED_COLUMNS = [
    "judged",
    "judged_value",
    "flagged",
    "flagged_value",
    "flag_rate",
    "frauds",
    "fraud_value",
    "missed_value",
]


def _columns(over: str, flagged_only: bool) -> list[str]:
    """A breakdown's number columns: over judged transactions (alerts left to the JSON and the
    Markdown, for the page's width), or the flagged ones."""
    if over == "judged" and not flagged_only:
        return _JUDGED_COLUMNS
    return ["flagged", "value", "alerts"]


def html(data: dict[str, Any]) -> str:
    """The page."""
    h = data["headline"]
    r = data["range"]
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>fraudstream report {escape(r['from'])} to {escape(r['to'])}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>fraudstream report: {escape(r['from'])} to {escape(r['to'])}</h1>",
        f"<p>source {escape(str(data.get('source')))}; labels "
        f"{escape(str(data.get('labels_source')))}</p>",
        "<h2>Headline</h2><div class='tiles'>",
        _tile(data, "headline.judged.count", "transactions judged"),
        _tile(data, "headline.judged.value", "value judged"),
        _tile(data, "headline.flagged.count", "flagged"),
        _tile(data, "headline.flagged.value", "flagged value"),
        _tile(
            data,
            "headline.alerts.count",
            f"alerts (severity &ge; {escape(h['alerts']['severity_at_least'])})",
        ),
        _tile(data, "headline.fraud.rate", "fraud rate (labelled frauds / judged)"),
        _tile(data, "headline.fraud.frauds", "labelled frauds"),
        _tile(data, "headline.fraud.caught", "frauds caught (flagged)"),
        _tile(data, "headline.fraud.caught_value", "fraud value caught"),
        _tile(data, "headline.fraud.missed", "frauds missed"),
        _tile(data, "headline.fraud.missed_value", "fraud loss (value of frauds missed)"),
        _tile(data, "headline.dead_letters.count", "dead letters"),
        "</div>",
    ]
    if data["notes"]:
        out.append(
            "<ul class='notes'>" + "".join(f"<li>{escape(n)}</li>" for n in data["notes"]) + "</ul>"
        )
    out.append("<h3>Dead letters by reason</h3>")
    out.append(_table(data, "headline.dead_letters.by_reason", ["reason", "dead_letters"]))

    b = data["breakdowns"]
    over = data.get("breakdowns_over", "flagged")
    out.append("<h2>Flagged transactions by</h2>")
    flagged_only = ("rule", "severity")
    for key in (*flagged_only, "merchant_category", "channel"):
        if key == "merchant_category":
            out.append(f"<h2>{escape(over.capitalize())} transactions by</h2>")
        rows = b[key]
        out.append(f"<h3>{escape(key.replace('_', ' '))}</h3>")
        out.append(
            svg.bars(
                f"by_{key}",
                f"flagged by {key}",
                [str(row[key]) for row in rows[:30]],
                [float(row["flagged"]) for row in rows[:30]],
            )
        )
        out.append(_table(data, f"breakdowns.{key}", [key, *_columns(over, key in flagged_only)]))
    out.append("<h3>country pair (origin, destination)</h3>")
    out.append(
        _table(
            data,
            "breakdowns.country_pair",
            ["origin_country", "destination_country", *_columns(over, False)],
        )
    )
    out.append("<h3>hour of day (UTC)</h3>")
    hours = b["hour"]
    out.append(
        svg.bars(
            "by_hour",
            "flagged by hour of day",
            [row["hour"] for row in hours],
            [float(row["flagged"]) for row in hours],
        )
    )
    hour_columns = _columns(over, False) if over == "judged" else ["judged", "flagged", "value"]
    out.append(_table(data, "breakdowns.hour", ["hour", *hour_columns]))

    out.append("<h2>Quality by day (labelled judged transactions)</h2>")
    for key in ("rules", "shadow"):
        rows = data["quality"][key]
        out.append(f"<h3>{'live rules and the model' if key == 'rules' else 'shadow rules'}</h3>")
        if rows is None:
            out.append("<p>not computed (see the notes)</p>")
            continue
        days = sorted({row["dt"] for row in rows})
        by_rule: dict[str, dict[str, Any]] = {}
        for row in rows:
            by_rule.setdefault(row["rule"], {})[row["dt"]] = row
        out.append(
            svg.lines(
                f"precision_{key}",
                f"precision by day ({key})",
                days,
                {
                    rule: [per.get(d, {}).get("precision") for d in days]
                    for rule, per in by_rule.items()
                },
            )
        )
        out.append(
            _table(
                data,
                f"quality.{key}",
                [
                    "rule",
                    "dt",
                    "tp",
                    "fp",
                    "fn",
                    "tn",
                    "precision",
                    "recall",
                    "false_positive_rate",
                ],
            )
        )

    out.append("<h2>Alert rate and score drift by day</h2>")
    by_day = data["drift"]["by_day"]
    if by_day is None:
        out.append("<p>not computed (decisions trail off)</p>")
    else:
        days = [row["dt"] for row in by_day]
        out.append(
            svg.lines(
                "alert_rate",
                "alert rate by day",
                days,
                {"alert rate": [row["alert_rate"] for row in by_day]},
            )
        )
        out.append(
            svg.lines(
                "psi",
                "score PSI against the previous day",
                days,
                {"PSI": [row["psi_vs_previous_day"] for row in by_day]},
            )
        )
        out.append(
            _table(
                data,
                "drift.by_day",
                [
                    "dt",
                    "judged",
                    "flagged",
                    "alerts",
                    "alert_rate",
                    "scored",
                    "psi_vs_previous_day",
                ],
            )
        )
    out.append("<h2>Rule set and model versions in force</h2>")
    out.append(
        _table(
            data,
            "versions.in_force",
            ["rules_version", "model_version", "first_seen", "last_seen", "lines"],
        )
    )
    out.append("</body></html>\n")
    return "\n".join(out)


def markdown(data: dict[str, Any]) -> str:
    """The figures for a terminal."""
    h = data["headline"]
    r = data["range"]
    lines = [
        f"# fraudstream report {r['from']} to {r['to']}",
        "",
        f"- transactions judged: {h['judged']['count']} (value {h['judged']['value']})",
        f"- flagged: {h['flagged']['count']} (value {h['flagged']['value']})",
        f"- alerts (severity >= {h['alerts']['severity_at_least']}): {h['alerts']['count']}",
        f"- fraud rate: {h['fraud']['rate']}; labelled frauds {h['fraud']['frauds']}, caught "
        f"{h['fraud']['caught']} (value {h['fraud']['caught_value']}), "
        f"missed {h['fraud']['missed']} (value {h['fraud']['missed_value']}: the fraud loss)",
        f"- dead letters: {h['dead_letters']['count']}",
        "",
    ]
    lines += [f"> {note}" for note in data["notes"]]

    def table(title: str, rows: list[dict[str, Any]] | None) -> None:
        lines.extend(["", f"## {title}", ""])
        if not rows:
            lines.append("none" if rows is not None else "not computed")
            return
        cols = list(rows[0])
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + " --- |" * len(cols))
        for row in rows:
            cells = ["" if row[c] is None else str(row[c]) for c in cols]
            lines.append("| " + " | ".join(cells) + " |")

    table("Dead letters by reason", h["dead_letters"]["by_reason"])
    over = data.get("breakdowns_over", "flagged")
    for key, rows in data["breakdowns"].items():
        of = "flagged" if key in ("rule", "severity") else over
        table(f"{of.capitalize()} transactions by {key.replace('_', ' ')}", rows)
    table("Quality by day: live rules and the model", data["quality"]["rules"])
    table("Quality by day: shadow rules", data["quality"]["shadow"])
    by_day = data["drift"]["by_day"]
    table(
        "Alert rate and score drift by day",
        None
        if by_day is None
        else [{k: v for k, v in row.items() if k != "score_bins"} for row in by_day],
    )
    table("Versions in force", data["versions"]["in_force"])
    return "\n".join(lines) + "\n"
