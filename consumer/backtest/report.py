"""The backtest's outcome for people (a table) and for programs (one JSON object)."""

from __future__ import annotations

from typing import Any

from consumer.backtest.run import BacktestResult, Side
from consumer.rules.config import RULE_IDS
from consumer.rules.ruleset import RuleSet

OVERALL = "*"


def _kind(rule: str, ruleset: RuleSet) -> str | None:
    if rule in RULE_IDS:
        return "contract" if rule in ruleset.config.enabled else "off"
    for custom in ruleset.custom:
        if custom.id == rule:
            if not custom.enabled:
                return "off"
            return "shadow" if custom.shadow else "custom"
    return None


def _ids(examples: list[tuple[int, str]] | None) -> list[str]:
    return [txn_id for _, txn_id in examples or ()]


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _quality(
    side: Side, rule: str, contract: bool, labelled_fraud: int
) -> tuple[float | None, float | None]:
    """(precision, recall) among labelled records; None where undefined."""
    tp, fp = side.true_pos[rule], side.false_pos[rule]
    positives = tp + side.false_neg[rule] if contract else labelled_fraud
    return _ratio(tp, tp + fp), _ratio(tp, positives)


def to_dict(
    result: BacktestResult, new: RuleSet, baseline: RuleSet, elapsed_s: float
) -> dict[str, Any]:
    new_side, base_side = result.sides
    rule_ids = list(RULE_IDS)
    for ruleset in (new, baseline):
        rule_ids += [c.id for c in ruleset.custom if c.id not in rule_ids]
    labelled = result.labelled > 0
    rules: list[dict[str, Any]] = []
    for rule in rule_ids:
        contract = rule in RULE_IDS
        row: dict[str, Any] = {
            "rule": rule,
            "kind": {"new": _kind(rule, new), "baseline": _kind(rule, baseline)},
            "hits": {"new": new_side.hits[rule], "baseline": base_side.hits[rule]},
            "shadow_hits": {"new": new_side.shadow[rule], "baseline": base_side.shadow[rule]},
            # records on which the rule raised, and so did not fire (a bug, an arithmetic limit)
            "errors": {"new": new_side.errors[rule], "baseline": base_side.errors[rule]},
            "newly_flagged": {
                "count": result.only_new[rule],
                "examples": _ids(result.examples_new.get(rule)),
            },
            "no_longer_flagged": {
                "count": result.only_base[rule],
                "examples": _ids(result.examples_base.get(rule)),
            },
        }
        if labelled:
            for name, side in (("new", new_side), ("baseline", base_side)):
                precision, recall = _quality(side, rule, contract, result.labelled_fraud)
                row.setdefault("precision", {})[name] = precision
                row.setdefault("recall", {})[name] = recall
        rules.append(row)
    out: dict[str, Any] = {
        "rules_version": {"new": new.version, "baseline": baseline.version},
        "records": result.records,
        "judged": result.judged,
        "duplicates": result.duplicates,
        "invalid": {
            "count": sum(result.invalid.values()),
            "reasons": [
                {"reason": reason, "count": count, "records": result.invalid_examples[reason]}
                for reason, count in sorted(
                    result.invalid.items(),
                    # Ties by the first record: the order of a part-by-part merge is not the
                    # file's, and the report must not depend on --jobs.
                    key=lambda item: (-item[1], result.invalid_examples[item[0]][0]),
                )
            ],
        },
        "flagged": {
            "new": new_side.flagged,
            "baseline": base_side.flagged,
            "newly_flagged": {
                "count": result.only_new[OVERALL],
                "examples": _ids(result.examples_new.get(OVERALL)),
            },
            "no_longer_flagged": {
                "count": result.only_base[OVERALL],
                "examples": _ids(result.examples_base.get(OVERALL)),
            },
        },
        "rules": rules,
        "rule_errors": {
            name: {
                "count": sum(side.errors.values()),
                "examples": {rule: _ids(side.error_examples[rule]) for rule in sorted(side.errors)},
            }
            for name, side in (("new", new_side), ("baseline", base_side))
        },
        "labels": None,
        "elapsed_s": round(elapsed_s, 3),
        "records_per_s": round(result.records / elapsed_s) if elapsed_s > 0 else None,
    }
    model = result.model
    if model is not None:
        out["model"] = {
            "version": model.version,
            "threshold": model.threshold,
            "label_delay_days": model.label_delay_days,
            "scored": model.scored,
            "flagged": model.flagged,
            "row_errors": model.row_errors,
            "precision": _ratio(model.true_pos, model.true_pos + model.false_pos),
            "recall": _ratio(model.true_pos, model.true_pos + model.false_neg),
            "rules_or_model": {
                "precision": _ratio(
                    model.either_true_pos, model.either_true_pos + model.either_false_pos
                ),
                "recall": _ratio(
                    model.either_true_pos, model.either_true_pos + model.either_false_neg
                ),
            },
        }
    if labelled:
        overall: dict[str, Any] = {}
        for name, side in (("new", new_side), ("baseline", base_side)):
            precision, recall = _quality(side, OVERALL, True, result.labelled_fraud)
            overall[name] = {"precision": precision, "recall": recall}
        out["labels"] = {
            "field": "fraud" if result.fraud_labelled else "expected_rules",
            "by_field": {
                "fraud": result.fraud_labelled,
                "expected_rules": result.labelled - result.fraud_labelled,
            },
            "labelled": result.labelled,
            "fraud": result.labelled_fraud,
            "overall": overall,
        }
    return out


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _change(new: int, base: int) -> str:
    return "" if new == base else f"{new - base:+d}"


def render_table(report: dict[str, Any]) -> str:
    """A plain-text report: totals, one row per rule, the differences with examples."""
    versions = report["rules_version"]
    invalid = report["invalid"]
    flagged = report["flagged"]
    lines = [
        f"backtest: rules {versions['new']!r} against baseline {versions['baseline']!r}",
        f"records {report['records']:,}  judged {report['judged']:,}  "
        f"duplicates {report['duplicates']:,}  invalid {invalid['count']:,}  "
        f"({report['records_per_s'] or 0:,} records/s, {report['elapsed_s']:.1f} s)",
        f"flagged: new {flagged['new']:,}  baseline {flagged['baseline']:,}  "
        f"newly flagged {flagged['newly_flagged']['count']:,}  "
        f"no longer flagged {flagged['no_longer_flagged']['count']:,}",
    ]
    labels = report["labels"]
    if labels is not None:
        overall = labels["overall"]
        lines.append(
            f"labels ({labels['field']}): {labels['labelled']:,} labelled, {labels['fraud']:,} "
            f"fraud; overall precision new {_pct(overall['new']['precision'])} "
            f"(baseline {_pct(overall['baseline']['precision'])}), recall new "
            f"{_pct(overall['new']['recall'])} (baseline {_pct(overall['baseline']['recall'])})"
        )
    model = report.get("model")
    if model is not None:
        either = model["rules_or_model"]
        lines.append(
            f"model {model['version']} (threshold {model['threshold']}, labels known "
            f"{model['label_delay_days']} days later): scored {model['scored']:,}, flagged "
            f"{model['flagged']:,}; precision {_pct(model['precision'])}, recall "
            f"{_pct(model['recall'])}; rules OR model precision {_pct(either['precision'])}, "
            f"recall {_pct(either['recall'])}"
        )
    header = ["rule", "kind", "hits", "baseline", "change", "+new", "-gone", "shadow"]
    rule_errors = report["rule_errors"]
    any_errors = bool(rule_errors["new"]["count"] or rule_errors["baseline"]["count"])
    if any_errors:
        header.append("errors")
    if labels is not None:
        header += ["precision", "recall", "base prec", "base rec"]
    rows = [header]
    for row in report["rules"]:
        kinds = row["kind"]
        kind = kinds["new"] or "-"
        if kinds["baseline"] != kinds["new"]:
            kind += f" (was {kinds['baseline'] or '-'})"
        hits, shadow = row["hits"], row["shadow_hits"]
        cells = [
            row["rule"],
            kind,
            f"{hits['new']:,}",
            f"{hits['baseline']:,}",
            _change(hits["new"], hits["baseline"]),
            f"{row['newly_flagged']['count']:,}",
            f"{row['no_longer_flagged']['count']:,}",
            f"{shadow['new']:,}" if shadow["new"] or shadow["baseline"] else "",
        ]
        if shadow["baseline"] and shadow["baseline"] != shadow["new"]:
            cells[-1] += f" (was {shadow['baseline']:,})"
        if any_errors:
            errors = row["errors"]
            cells.append(f"{errors['new']:,}" if errors["new"] or errors["baseline"] else "")
            if errors["baseline"] != errors["new"]:
                cells[-1] += f" (was {errors['baseline']:,})"
        if labels is not None:
            cells += [
                _pct(row["precision"]["new"]),
                _pct(row["recall"]["new"]),
                _pct(row["precision"]["baseline"]),
                _pct(row["recall"]["baseline"]),
            ]
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines.append("")
    for index, cells in enumerate(rows):
        lines.append(
            "  ".join(
                cell.ljust(w) if i < 2 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()
        )
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    differences = [
        (what, row["rule"], row[key])
        for row in report["rules"]
        for what, key in (("+", "newly_flagged"), ("-", "no_longer_flagged"))
        if row[key]["count"]
    ]
    if differences or flagged["newly_flagged"]["count"] or flagged["no_longer_flagged"]["count"]:
        lines += ["", "examples (transaction ids):"]
        for what, key in (
            ("newly flagged", "newly_flagged"),
            ("no longer flagged", "no_longer_flagged"),
        ):
            if flagged[key]["count"]:
                lines.append(f"  {what}: {', '.join(flagged[key]['examples'])}")
        for sign, rule, diff in differences:
            lines.append(f"  {sign}{rule}: {', '.join(diff['examples'])}")
    if any_errors:
        lines += ["", "rule errors (the rule raised and did not fire; transaction ids):"]
        for name in ("new", "baseline"):
            for rule, ids in rule_errors[name]["examples"].items():
                lines.append(f"  {name} {rule}: {', '.join(ids)}")
    if invalid["count"]:
        lines += ["", "invalid records by reason (record numbers, from 1 in file order):"]
        for entry in invalid["reasons"][:10]:
            numbers = ", ".join(str(n) for n in entry["records"])
            lines.append(f"  {entry['count']:>9,}  {entry['reason']}  (records {numbers})")
        if len(invalid["reasons"]) > 10:
            lines.append(f"  ... {len(invalid['reasons']) - 10} more reasons (--json has all)")
    return "\n".join(lines)
