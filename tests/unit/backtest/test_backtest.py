"""`fraudstream backtest`: history bounds, the diff, labels, input formats, errors, the CLI."""

from __future__ import annotations

import csv
import gzip
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from consumer.backtest.history import ReplayHistory
from consumer.backtest.inputs import BadLine, RecordFile
from consumer.backtest.report import to_dict
from consumer.backtest.run import merge, run_backtest
from consumer.cli import main
from consumer.records import Transaction, parse_transaction
from consumer.rules.ruleset_load import default_ruleset, load_ruleset
from consumer.settings.config import StateConfig
from load_test.labelled import main as labelled_main

BASE_MS = 1_795_500_000_000


def record(n: int, amount: str, account: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "transaction_id": f"t{n}",
        "account_id": account or f"a{n}",
        "amount": Decimal(amount),
        "timestamp": BASE_MS + n * 1000,
    }
    body.update(extra)
    return body


def data(body: dict[str, Any]) -> str:
    """JSON text with Decimals written as their literal (the contract's exact numbers)."""
    fields = [
        f"{json.dumps(k)}:{v}" if isinstance(v, Decimal) else f"{json.dumps(k)}:{json.dumps(v)}"
        for k, v in body.items()
    ]
    return "{" + ",".join(fields) + "}"


def write_replay(path: Path, bodies: list[dict[str, Any]]) -> Path:
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as handle:
        for body in bodies:
            handle.write(json.dumps({"data": data(body), "partition_key": body["account_id"]}))
            handle.write("\n")
    return path


def write_rules(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


LOWER_THRESHOLD = """
version: "lower-1"
rules:
  high_amount: {threshold: "5000"}
"""


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    code = main(["backtest", "--no-progress", "--json", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else {}), err


def rule_row(report: dict[str, Any], rule: str) -> dict[str, Any]:
    return next(row for row in report["rules"] if row["rule"] == rule)


def txn(n: int, account: str, seconds: float, device: str | None = None) -> Transaction:
    body = record(n, "10", account, timestamp=int(BASE_MS + seconds * 1000))
    if device:
        body["device_id"] = device
    parsed = parse_transaction(data(body).encode())
    assert isinstance(parsed, Transaction)
    return parsed


# -- history ------------------------------------------------------------------------------------


def test_history_keeps_what_the_store_would_load() -> None:
    # keep = horizon 100 s + lateness 10 s; the store loads scores >= t - keep - 1.
    history = ReplayHistory(Decimal(100), StateConfig(lateness_s=10))
    history.add(txn(0, "a", 0, device="d1"), 0)
    history.add(txn(1, "a", 50), 1)
    seen = history.history(txn(2, "a", 111))  # bound 0: both kept
    assert [e.event_time for e in seen.recent] == [Decimal(BASE_MS // 1000), Decimal(1795500050)]
    later = history.history(txn(3, "a", 112))  # bound 1: the first is gone
    assert [e.position for e in later.recent] == [(1, 0)]
    assert later.has_earlier
    # Devices outlive the entries (the store keeps them 90 days).
    assert history.history(txn(4, "a", 500, device="d1")).device_seen_before
    assert not history.history(txn(5, "b", 500)).has_earlier


def test_history_drops_an_old_entry_behind_a_newer_one() -> None:
    history = ReplayHistory(Decimal(100), StateConfig(lateness_s=10))
    history.add(txn(0, "a", 100), 0)
    history.add(txn(1, "a", 20), 1)  # late, but still loadable at t=100
    assert len(history.history(txn(2, "a", 120)).recent) == 2
    assert [e.position for e in history.history(txn(3, "a", 140)).recent] == [(0, 0)]


def test_duplicates_within_the_window_only() -> None:
    history = ReplayHistory(Decimal(100), StateConfig(dedup_ttl_s=1000))
    assert not history.is_duplicate(txn(1, "a", 0))
    assert history.is_duplicate(txn(1, "a", 500))
    assert not history.is_duplicate(txn(1, "a", 1001))  # the window passed: judged again


# -- the diff and labels ------------------------------------------------------------------------


def test_a_lowered_threshold_flags_exactly_the_expected_extra_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    amounts = ["100", "5000", "5000.01", "9999", "10000", "10000.5", "20"]
    path = write_replay(tmp_path / "r.jsonl", [record(n, a) for n, a in enumerate(amounts)])
    rules = write_rules(tmp_path / "new.yaml", LOWER_THRESHOLD)
    code, report, _ = run_cli(capsys, "--rules", str(rules), "--input", str(path))
    assert code == 0
    row = rule_row(report, "high_amount")
    # > 5000 against > 10000, exactly: 5000 and 10000 themselves are not above.
    assert row["hits"] == {"new": 4, "baseline": 1}
    assert row["newly_flagged"] == {"count": 3, "examples": ["t2", "t3", "t4"]}
    assert row["no_longer_flagged"] == {"count": 0, "examples": []}
    assert report["flagged"]["newly_flagged"]["examples"] == ["t2", "t3", "t4"]
    assert report["flagged"]["new"] == 4 and report["flagged"]["baseline"] == 1
    assert report["judged"] == 7 and report["invalid"]["count"] == 0
    assert report["labels"] is None


def test_a_raised_threshold_and_a_custom_rule_show_both_directions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bodies = [
        record(0, "12000", channel="online"),
        record(1, "950", channel="online"),
        record(2, "950", channel="atm"),
        record(3, "15000", channel="atm"),
    ]
    path = write_replay(tmp_path / "r.jsonl", bodies)
    rules = write_rules(
        tmp_path / "new.yaml",
        """
version: "v2"
rules:
  high_amount: {threshold: "12000"}
custom:
  - {id: online_900, description: d, severity: low, when: 'amount > 900 and channel == "online"'}
  - {id: atm_watch, description: d, severity: low, shadow: true, when: 'channel == "atm"'}
""",
    )
    code, report, _ = run_cli(capsys, "--rules", str(rules), "--input", str(path))
    assert code == 0
    high = rule_row(report, "high_amount")
    assert high["no_longer_flagged"] == {"count": 1, "examples": ["t0"]}
    custom = rule_row(report, "online_900")
    assert custom["kind"] == {"new": "custom", "baseline": None}
    assert custom["newly_flagged"]["examples"] == ["t0", "t1"]
    assert rule_row(report, "atm_watch")["shadow_hits"] == {"new": 2, "baseline": 0}
    assert rule_row(report, "atm_watch")["hits"]["new"] == 0  # shadow never flags
    # t0 is still flagged (by online_900), t1 newly: only t1 changes overall.
    assert report["flagged"]["newly_flagged"] == {"count": 1, "examples": ["t1"]}
    assert report["flagged"]["no_longer_flagged"]["count"] == 0


def test_labels_give_precision_and_recall(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bodies = [
        record(0, "12000", expected_rules=["high_amount"]),  # caught by both
        record(1, "9000", expected_rules=["high_amount"]),  # caught by the lower threshold
        record(2, "6000", expected_rules=[]),  # a false positive of the lower threshold
        record(3, "100", expected_rules=[]),
        record(4, "7000"),  # no label: not scored
    ]
    path = write_replay(tmp_path / "r.jsonl", bodies)
    rules = write_rules(tmp_path / "new.yaml", LOWER_THRESHOLD)
    code, report, _ = run_cli(capsys, "--rules", str(rules), "--input", str(path))
    assert code == 0
    row = rule_row(report, "high_amount")
    assert row["precision"] == {"new": round(2 / 3, 4), "baseline": 1.0}
    assert row["recall"] == {"new": 1.0, "baseline": 0.5}
    assert report["labels"]["labelled"] == 4 and report["labels"]["fraud"] == 2
    assert report["labels"]["overall"]["new"] == {"precision": round(2 / 3, 4), "recall": 1.0}
    assert report["labels"]["overall"]["baseline"] == {"precision": 1.0, "recall": 0.5}
    assert rule_row(report, "velocity")["precision"]["new"] is None  # never fired


# -- inputs -------------------------------------------------------------------------------------


def generated_file(tmp_path: Path, name: str, count: int = 2000, invalid: float = 0.0) -> Path:
    path = tmp_path / name
    args = ["--records", str(count), "--rate", "40", "--accounts", "30"]
    args += ["--fraud-ratio", "0.2", "--invalid-ratio", str(invalid), "--seed", "3"]
    args += ["--start", "2026-11-24T00:00:00Z", "--out", str(path)]
    assert labelled_main(args) == 0
    return path


def without_timing(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in ("elapsed_s", "records_per_s")}


def test_the_generators_labels_are_what_the_default_rules_decide(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = generated_file(tmp_path, "gen.jsonl.gz", invalid=0.05)
    capsys.readouterr()
    code, report, _ = run_cli(capsys, "--rules", "consumer/resources/rules.default.yaml",
                              "--input", str(path))  # fmt: skip
    assert code == 0
    assert report["records"] == 2000 and report["invalid"]["count"] > 50
    assert report["labels"]["fraud"] > 200
    for name in ("new", "baseline"):
        assert report["labels"]["overall"][name] == {"precision": 1.0, "recall": 1.0}
    for row in report["rules"]:
        assert row["precision"]["new"] in (1.0, None) and row["recall"]["new"] in (1.0, None)


def to_csv(replay: Path, out: Path) -> Path:
    """The same records as CSV: one column per field, numbers as their literal text."""
    rows = []
    with RecordFile(replay) as source:
        for _, item in source.items():
            assert isinstance(item, bytes)
            rows.append(json.loads(item, parse_float=str, parse_int=str))
    columns = sorted({key for row in rows for key in row})
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            cells = []
            for column in columns:
                value = row.get(column, "")
                cells.append(";".join(value) if isinstance(value, list) else value)
            writer.writerow(cells)
    return out


def test_csv_jsonl_and_gzip_inputs_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gz = generated_file(tmp_path, "gen.jsonl.gz")
    plain = tmp_path / "gen.jsonl"
    plain.write_bytes(gzip.decompress(gz.read_bytes()))
    table = to_csv(plain, tmp_path / "gen.csv")
    capsys.readouterr()
    rules = write_rules(tmp_path / "new.yaml", LOWER_THRESHOLD)
    reports = []
    for path in (plain, gz, table):
        code, report, _ = run_cli(capsys, "--rules", str(rules), "--input", str(path))
        assert code == 0
        reports.append(without_timing(report))
    code, report, _ = run_cli(capsys, "--rules", str(rules), "--input", str(table), "--jobs", "2")
    assert code == 0
    reports.append(without_timing(report))
    assert reports[0] == reports[1] == reports[2] == reports[3]
    assert reports[0]["flagged"]["new"] > 100 and reports[0]["labels"]["labelled"] == 2000


def test_jobs_give_identical_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = generated_file(tmp_path, "gen.jsonl.gz", invalid=0.05)
    capsys.readouterr()
    rules = write_rules(tmp_path / "new.yaml", LOWER_THRESHOLD)
    one = run_cli(capsys, "--rules", str(rules), "--input", str(path))[1]
    three = run_cli(capsys, "--rules", str(rules), "--input", str(path), "--jobs", "3")[1]
    assert without_timing(one) == without_timing(three)


def test_keep_decisions_follows_file_order(tmp_path: Path) -> None:
    bodies = [record(n, "20000" if n % 2 else "10", "a") for n in range(6)]
    path = write_replay(tmp_path / "r.jsonl", bodies)
    with RecordFile(path) as source:
        result = run_backtest(
            source.items(), default_ruleset(), default_ruleset(), keep_decisions=True
        )
    assert result.decisions is not None
    # n=4 is the 5th in 4 s: velocity (more than 3 within 60 s) from the 4th on.
    assert [(i, rules) for i, _, rules, _ in result.decisions] == [
        (0, ()),
        (1, ("high_amount",)),
        (2, ()),
        (3, ("high_amount", "velocity")),
        (4, ("velocity",)),
        (5, ("high_amount", "velocity")),
    ]


# -- errors -------------------------------------------------------------------------------------


def test_a_bad_rule_set_fails_with_the_loaders_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_replay(tmp_path / "r.jsonl", [record(0, "1")])
    rules = write_rules(
        tmp_path / "bad.yaml",
        'version: "x"\ncustom:\n  - {id: r1, description: d, severity: high, '
        "when: 'amount > 5000 and chanel == \"online\"'}\n",
    )
    code, _, err = run_cli(capsys, "--rules", str(rules), "--input", str(path))
    assert code == 2
    with pytest.raises(ValueError) as refused:
        load_ruleset(rules)
    assert str(refused.value) in err
    assert "unknown field 'chanel'" in err
    code, _, err = run_cli(
        capsys, "--rules", str(tmp_path / "new.yaml"), "--baseline", str(rules), "--input",
        str(path),
    )  # fmt: skip
    assert code == 2 and "cannot read it" in err


def test_bad_lines_are_counted_with_their_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.jsonl"
    good = json.dumps({"data": data(record(0, "1"))})
    path.write_text(
        "\n".join(
            [
                "{bad",
                good,
                '["not", "an object"]',
                json.dumps({"data": "{nope"}),
                json.dumps({"data_b64": "%%%"}),
                "",
                json.dumps({"data": data(record(9, "-5"))}),
                good,  # the same record again: a duplicate
            ]
        )
        + "\n"
    )
    rules = write_rules(tmp_path / "new.yaml", LOWER_THRESHOLD)
    code, report, _ = run_cli(capsys, "--rules", str(rules), "--input", str(path))
    assert code == 0
    assert report["records"] == 7 and report["judged"] == 1 and report["duplicates"] == 1
    reasons = {r["reason"]: r["records"] for r in report["invalid"]["reasons"]}
    assert report["invalid"]["count"] == 5
    assert any(r.startswith("replay line: not valid JSON") and n == [1] for r, n in reasons.items())
    assert reasons['replay line: expected {"data": ...} or {"data_b64": ...}'] == [3]
    assert any(r.startswith("not valid JSON") and n == [4] for r, n in reasons.items())
    assert any(r.startswith('replay line: "data_b64" is not valid base64') for r in reasons)
    assert reasons["amount: must be a number > 0 and <= 1e9"] == [6]


def test_a_truncated_gzip_file_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = write_replay(tmp_path / "r.jsonl.gz", [record(n, "10") for n in range(2000)])
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole.read_bytes()[:-40])
    rules = write_rules(tmp_path / "new.yaml", LOWER_THRESHOLD)
    code, _, err = run_cli(capsys, "--rules", str(rules), "--input", str(cut))
    assert code == 2 and "reading" in err


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_corrupt_gzip_file_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jobs: str
) -> None:
    whole = write_replay(tmp_path / "r.jsonl.gz", [record(n, "10") for n in range(2000)])
    damaged = bytearray(whole.read_bytes())
    for at in range(200, 260):  # inside the deflate stream
        damaged[at] ^= 0x5A
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(bytes(damaged))
    rules = write_rules(tmp_path / "new.yaml", LOWER_THRESHOLD)
    code, _, err = run_cli(capsys, "--rules", str(rules), "--input", str(bad), "--jobs", jobs)
    assert code == 2 and "fraudstream backtest:" in err and "Traceback" not in err


def test_the_table_names_every_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_replay(tmp_path / "r.jsonl", [record(0, "6000"), record(1, "12000")])
    rules = write_rules(tmp_path / "new.yaml", LOWER_THRESHOLD)
    assert main(["backtest", "--no-progress", "--rules", str(rules), "--input", str(path)]) == 0
    out = capsys.readouterr().out
    assert "rules 'lower-1' against baseline" in out
    assert "+high_amount: t0" in out
    line = next(x for x in out.splitlines() if x.startswith("high_amount"))
    assert line.split()[2:5] == ["2", "1", "+1"]


def test_report_dict_without_labels_has_no_precision() -> None:
    result = run_backtest(iter([]), default_ruleset(), default_ruleset())
    report = to_dict(result, default_ruleset(), default_ruleset(), 0.0)
    assert report["records"] == 0 and report["labels"] is None
    assert "precision" not in report["rules"][0]


def test_invalid_reasons_with_equal_counts_come_in_file_order_whatever_the_parts() -> None:
    """Parts merged in any order give the same report: ties go by their first record."""
    bad = [(n, BadLine(reason)) for n, reason in enumerate(["b", "a", "c", "a", "b", "c", "z"])]
    parts = [
        run_backtest(iter([item for item in bad if item[0] % 2 == side]), *(default_ruleset(),) * 2)
        for side in (0, 1)
    ]
    whole = run_backtest(iter(bad), default_ruleset(), default_ruleset())
    reports = [
        to_dict(result, default_ruleset(), default_ruleset(), 0.0)["invalid"]
        for result in (whole, merge(parts), merge(reversed(parts)))
    ]
    assert [r["reason"] for r in reports[0]["reasons"]] == ["b", "a", "c", "z"]
    assert reports[1] == reports[0] and reports[2] == reports[0]


def test_the_state_bounds_come_from_the_workers_variables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Six transactions of one account within 6 s: velocity from the 4th on, unless the history
    # is capped at 2 entries (then at most 3 within the window: never more than 3).
    path = write_replay(tmp_path / "r.jsonl", [record(n, "10", "a") for n in range(6)])
    rules = write_rules(tmp_path / "new.yaml", LOWER_THRESHOLD)
    code, report, _ = run_cli(capsys, "--rules", str(rules), "--input", str(path))
    assert code == 0 and rule_row(report, "velocity")["hits"]["new"] == 3
    monkeypatch.setenv("FRAUD_STATE_MAX_ENTRIES", "2")
    code, report, _ = run_cli(capsys, "--rules", str(rules), "--input", str(path))
    assert code == 0 and rule_row(report, "velocity")["hits"]["new"] == 0
    monkeypatch.setenv("FRAUD_STATE_MAX_ENTRIES", "zero")
    code, _, err = run_cli(capsys, "--rules", str(rules), "--input", str(path))
    assert code == 2 and "FRAUD_STATE_MAX_ENTRIES" in err


def test_a_fraud_label_scores_every_rule_against_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bodies = [
        record(0, "12000", fraud=True, expected_rules=["high_amount"]),  # caught
        record(1, "9000", fraud=True),  # missed at 10000, caught at 5000
        record(2, "11000", fraud=False),  # a legitimate big ticket: a false positive for both
        record(3, "100", fraud=False),
        record(4, "50", fraud=True),  # missed by every rule
    ]
    path = write_replay(tmp_path / "r.jsonl", bodies)
    rules = write_rules(tmp_path / "new.yaml", LOWER_THRESHOLD)
    code, report, _ = run_cli(capsys, "--rules", str(rules), "--input", str(path))
    assert code == 0
    labels = report["labels"]
    assert labels["field"] == "fraud" and labels["labelled"] == 5 and labels["fraud"] == 3
    assert labels["overall"]["baseline"] == {"precision": 0.5, "recall": round(1 / 3, 4)}
    assert labels["overall"]["new"] == {"precision": round(2 / 3, 4), "recall": round(2 / 3, 4)}
    row = rule_row(report, "high_amount")
    assert row["precision"] == {"new": round(2 / 3, 4), "baseline": 0.5}
    assert row["recall"] == {"new": round(2 / 3, 4), "baseline": round(1 / 3, 4)}
    assert rule_row(report, "velocity")["recall"]["new"] == 0.0


# -- a rule that raises -------------------------------------------------------------------------


def test_rule_errors_are_counted_beside_the_hits_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from consumer.backtest.report import render_table
    from consumer.rules import engine
    from consumer.rules.amount import high_amount
    from consumer.rules.ruleset import CustomRule, RuleSet
    from tests.unit.batch.test_rule_errors import fragile, raising_for

    poison = frozenset({"t1", "t4"})
    new = RuleSet(
        "fragile-1",
        default_ruleset().config,
        [CustomRule("fragile", "d", "high", fragile(poison))],
    )
    baseline = default_ruleset()
    # high_amount raises on t3: under both rule sets, though their contract parameters are equal.
    monkeypatch.setattr(engine, "high_amount", raising_for(frozenset({"t3"}), high_amount))
    amounts = ["50", "150", "20000", "20000", "600"]
    items = [(n, data(record(n, amount)).encode()) for n, amount in enumerate(amounts)]
    result = run_backtest(iter(items), new, baseline, keep_decisions=True)
    new_side, base_side = result.sides
    assert result.judged == 5
    assert new_side.errors == {"fragile": 2, "high_amount": 1}
    assert base_side.errors == {"high_amount": 1}
    assert result.decisions is not None
    by_txn = {txn_id: (n, b) for _, txn_id, n, b in result.decisions}
    assert by_txn["t0"] == ((), ())
    assert by_txn["t1"] == ((), ())  # fragile raised (150 would have fired)
    assert by_txn["t2"] == (("high_amount", "fragile"), ("high_amount",))
    assert by_txn["t3"] == (("fragile",), ())  # high_amount raised, under both rule sets
    assert by_txn["t4"] == ((), ())  # fragile raised

    report = to_dict(result, new, baseline, 1.0)
    assert rule_row(report, "fragile")["errors"] == {"new": 2, "baseline": 0}
    assert rule_row(report, "high_amount")["errors"] == {"new": 1, "baseline": 1}
    assert rule_row(report, "velocity")["errors"] == {"new": 0, "baseline": 0}
    assert report["rule_errors"] == {
        "new": {"count": 3, "examples": {"fragile": ["t1", "t4"], "high_amount": ["t3"]}},
        "baseline": {"count": 1, "examples": {"high_amount": ["t3"]}},
    }
    table = render_table(report)
    assert "errors" in table.splitlines()[4]  # the header of the rules table
    assert "  new fragile: t1, t4" in table and "  baseline high_amount: t3" in table

    # Parts add up to the whole.
    parts = [
        run_backtest(iter([i for i in items if i[0] % 2 == side]), new, baseline) for side in (0, 1)
    ]
    merged = merge(parts)
    assert merged.sides[0].errors == new_side.errors
    assert merged.sides[0].error_examples == new_side.error_examples
    assert merged.sides[1].errors == base_side.errors


def test_without_rule_errors_the_table_has_no_errors_column() -> None:
    from consumer.backtest.report import render_table

    items = [(0, data(record(0, "20000")).encode())]
    result = run_backtest(iter(items), default_ruleset(), default_ruleset())
    report = to_dict(result, default_ruleset(), default_ruleset(), 1.0)
    assert report["rule_errors"]["new"] == {"count": 0, "examples": {}}
    assert "errors" not in render_table(report)
