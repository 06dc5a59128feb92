"""The benchmark's protocol (consumer.model.evaluate, `fraudstream evaluate`) on a small
labelled file of six days: periods split as asked, metrics in range, Card Precision@k equal to a
brute-force recomputation from the file, the CLI's JSON and PNG, clean errors."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from consumer.cli import main
from consumer.model import evaluate as evaluate_module
from consumer.model.evaluate import DAY_S, EvaluateError, Periods, evaluate
from consumer.model.labels import FileLabels

PERIODS = Periods(warmup_days=1, train_days=2, delay_days=1, test_days=2)
K = 10


@pytest.fixture(scope="module")
def days_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6,000 realistic records over six days (from 2026-11-01T00:00Z), 300 accounts."""
    from load_test.labelled import write_labelled

    path = tmp_path_factory.mktemp("evaluate") / "days.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        write_labelled(handle, 6000, rate=6000 / (6 * DAY_S), accounts=300, seed=5, realistic=True)
    return path


def _records(path: Path) -> list[dict[str, Any]]:
    """Every record of the file, parsed without the project's parser."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(json.loads(line)["data"])
        stamp = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
        record["_t"] = stamp.astimezone(UTC).timestamp()
        out.append(record)
    return out


def _day(t: float) -> int:
    return math.floor((t - datetime(2026, 11, 1, tzinfo=UTC).timestamp()) / DAY_S)


def test_periods_are_split_as_asked_and_training_sees_only_its_days(
    days_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[int, float] = {}  # id(row) -> event time of its transaction
    real_features = evaluate_module.features_for

    def spy_features(txn: Any, history: Any, delay_days: int) -> Any:
        row = real_features(txn, history, delay_days)
        seen[id(row)] = float(txn.event_time)
        return row

    trained_times: list[float] = []
    real_train = evaluate_module._train

    def spy_train(rows: Any, labels: Any) -> Any:
        trained_times.extend(seen[id(row)] for row in rows)
        return real_train(rows, labels)

    monkeypatch.setattr(evaluate_module, "features_for", spy_features)
    monkeypatch.setattr(evaluate_module, "_train", spy_train)
    result = evaluate(days_file, PERIODS, k=K)

    records = _records(days_file)
    by_period = {"warmup": 0, "train": 0, "delay": 0, "test": 0, "after": 0}
    for record in records:
        day = _day(record["_t"])
        name = ("warmup", "train", "train", "delay", "test", "test")[day] if day < 6 else "after"
        by_period[name] += 1
    assert result.rows == by_period
    assert result.period_dates == {
        "warmup": ("2026-11-01", "2026-11-01"),
        "train": ("2026-11-02", "2026-11-03"),
        "delay": ("2026-11-04", "2026-11-04"),
        "test": ("2026-11-05", "2026-11-06"),
    }
    # Point in time: every training row is from the two training days, and all of them train.
    assert len(trained_times) == by_period["train"]
    assert {_day(t) for t in trained_times} == {1, 2}
    assert result.test_days_present == 2
    assert result.trees > 0


def test_metrics_in_range(days_file: Path) -> None:
    result = evaluate(days_file, PERIODS, k=K)
    assert set(result.variants) == {"model", "rules", "rules_or_model"}
    for variant in result.variants.values():
        for value in (
            variant.roc_auc,
            variant.average_precision,
            variant.card_precision_at_k,
            *variant.card_precision_per_day,
        ):
            assert 0.0 <= value <= 1.0
        assert len(variant.scores) == result.test_rows_kept
    rules = result.variants["rules"].scores
    assert set(rules.tolist()) <= {0.0, 1.0}
    combined = result.variants["rules_or_model"].scores
    model = result.variants["model"].scores
    assert (combined == [max(m, r) for m, r in zip(model, rules, strict=True)]).all()


def _tie(card: str) -> bytes:
    return hashlib.blake2b(card.encode(), digest_size=8).digest()


def test_card_precision_and_known_compromised_match_a_brute_force(days_file: Path) -> None:
    result = evaluate(days_file, PERIODS, k=K)
    records = _records(days_file)
    delay = PERIODS.delay_days
    test = [r for r in records if _day(r["_t"]) in (4, 5)]
    # Known compromised on test day d: a fraud of the card from the training period on (day
    # PERIODS.train_start), on a day before d - delay; the warm-up's frauds do not count.
    frauds_days: dict[str, list[int]] = {}
    for r in records:
        if r["fraud"] and _day(r["_t"]) >= PERIODS.train_start:
            frauds_days.setdefault(r["account_id"], []).append(_day(r["_t"]))
    kept = [
        r
        for r in test
        if not any(f < _day(r["_t"]) - delay for f in frauds_days.get(r["account_id"], []))
    ]
    assert result.test_rows_kept == len(kept)
    assert result.test_rows_known_compromised == len(test) - len(kept)
    assert result.test_rows_known_compromised > 0
    assert result.test_labels.tolist() == [bool(r["fraud"]) for r in kept]
    for name, variant in result.variants.items():
        scores = variant.scores.tolist()
        detected: set[str] = set()
        per_day = []
        for day in (4, 5):
            best: dict[str, float] = {}
            defrauded: set[str] = set()
            for r, s in zip(kept, scores, strict=True):
                card = r["account_id"]
                if _day(r["_t"]) != day or card in detected:
                    continue
                best[card] = max(best.get(card, -1.0), s)
                if r["fraud"]:
                    defrauded.add(card)
            ranked = sorted(best, key=lambda c: (-best[c], _tie(c)))[:K]
            found = [c for c in ranked if c in defrauded]
            per_day.append(len(found) / K)
            detected.update(found)
        assert variant.card_precision_per_day == pytest.approx(per_day), name
        assert variant.card_precision_at_k == pytest.approx(sum(per_day) / 2), name


def test_cli_json_and_png(
    days_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "pr.png"
    args = ["evaluate", str(days_file), "--warmup-days", "1", "--train-days", "2"]
    args += ["--delay-days", "1", "--test-days", "2", "--k", str(K)]
    assert main([*args, "--json", "--png", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["k"] == K
    assert out["periods"] == {"warmup_days": 1, "train_days": 2, "delay_days": 1, "test_days": 2}
    assert set(out["variants"]) == {"model", "rules", "rules_or_model"}
    for variant in out["variants"].values():
        assert 0 <= variant["card_precision_at_k"] <= 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 1000
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "ROC AUC" in table and "CP@10" in table and "rules_or_model" in table


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--train-days", "0"], "must be at least 1"),
        (["--delay-days", "-1"], "must be at least 0"),
        (["--k", "0"], "must be at least 1"),
        (["--test-days", "two"], "not a whole number"),
    ],
)
def test_cli_usage_errors_exit_2(
    days_file: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(days_file), *extra])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_bad_inputs_exit_1_with_a_message(
    days_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("{not json\n", encoding="utf-8")
    cases = [
        ([str(tmp_path / "missing.jsonl")], "no such file"),
        ([str(garbage)], "not JSON"),
        ([str(days_file)], "no record in the test period"),  # 22 days asked of a 6-day file
    ]
    for argv, message in cases:
        assert main(["evaluate", *argv]) == 1
        err = capsys.readouterr().err
        assert err.startswith("fraudstream evaluate: ") and message in err
        assert "Traceback" not in err


def test_api_refuses_bad_periods_and_single_class_training(days_file: Path, tmp_path: Path) -> None:
    with pytest.raises(EvaluateError, match="at least one day"):
        evaluate(days_file, Periods(train_days=0))
    with pytest.raises(EvaluateError, match="negative"):
        evaluate(days_file, Periods(warmup_days=-1))
    with pytest.raises(EvaluateError, match="k must be"):
        evaluate(days_file, PERIODS, k=0)
    honest = tmp_path / "honest.jsonl"
    lines = []
    for line in days_file.read_text(encoding="utf-8").splitlines():
        record = json.loads(json.loads(line)["data"])
        record["fraud"] = False
        lines.append(json.dumps({"data": json.dumps(record)}))
    honest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(EvaluateError, match="needs both classes"):
        evaluate(honest, PERIODS)


def test_a_label_file_gives_what_the_records_own_labels_give(
    days_file: Path, tmp_path: Path
) -> None:
    """The records' frauds as a label file, each labelled the delay after its transaction
    (plus an older clean label for some, which the later verdict overrides, and a bad line):
    the same evaluation as the records' own labels; without the file's frauds, another."""
    delay_s = PERIODS.delay_days * DAY_S
    lines = ['{"transaction_id": "broken"}']
    frauds = [r for r in _records(days_file) if r["fraud"]]
    assert frauds
    for index, r in enumerate(frauds):
        label = {
            "transaction_id": r["transaction_id"],
            "account_id": r["account_id"],
            "merchant_id": r.get("merchant_id"),
            "event_time": int(r["_t"] * 1000),
            "labelled_at": int((r["_t"] + delay_s) * 1000),
            "is_fraud": True,
        }
        lines.append(json.dumps(label))
        if index % 3 == 0:
            older = label["event_time"] + 1  # type: ignore[operator]
            lines.append(json.dumps({**label, "is_fraud": False, "labelled_at": older}))
    labels_path = tmp_path / "labels.jsonl"
    labels_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    from_file = FileLabels(labels_path)
    assert from_file.bad == 1 and len(from_file) == len(frauds)
    expected = evaluate(days_file, PERIODS, k=K).summary()
    assert evaluate(days_file, PERIODS, k=K, labels=from_file).summary() == expected

    half = tmp_path / "half.jsonl"
    half.write_text("\n".join(lines[: len(lines) // 2]) + "\n", encoding="utf-8")
    fewer = evaluate(days_file, PERIODS, k=K, labels=FileLabels(half))
    assert fewer.summary()["frauds"] != expected["frauds"]

    code = main(
        [
            "evaluate",
            str(days_file),
            "--labels",
            str(labels_path),
            "--json",
            "--warmup-days",
            "1",
            "--train-days",
            "2",
            "--delay-days",
            "1",
            "--test-days",
            "2",
            "--k",
            str(K),
        ]
    )
    assert code == 0
