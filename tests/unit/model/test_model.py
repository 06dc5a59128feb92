"""The model score: features against a naive computation, the in-memory history, training,
the scorer's determinism and explanations, loading errors, and the metrics."""

from __future__ import annotations

import json
import math
import random
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import pytest

from consumer.cli import main as cli_main
from consumer.model import metrics
from consumer.model.compare import compare, pick_threshold
from consumer.model.dataset import DatasetError, load_dataset, stream_history
from consumer.model.features import FEATURE_NAMES, features_for
from consumer.model.scorer import ModelIncomplete, ModelLoadError, ModelScorer
from consumer.model.train import train
from consumer.records import Transaction, parse_transaction
from consumer.rules.geo import haversine_km
from consumer.rules.profile import LabelMark, day_of

BASE_MS = 1795510800000  # 2026-11-24T09:00:00Z


def txn(tid: str, at_s: float, amount: str, **fields: Any) -> Transaction:
    obj: dict[str, Any] = {
        "transaction_id": tid,
        "account_id": "acct-1",
        "timestamp": BASE_MS + int(at_s * 1000),
        "amount": Decimal(amount),
        **fields,
    }
    text = json.dumps({k: float(v) if isinstance(v, Decimal) else v for k, v in obj.items()})
    parsed = parse_transaction(text.encode())
    assert isinstance(parsed, Transaction), parsed
    return parsed


def naive(t: Transaction, everything: list[Transaction], horizon_s: int = 86400) -> dict[str, Any]:
    """The features written from their definitions: `everything` is the account's earlier
    transactions; amounts, windows and places read those within the history horizon, devices,
    countries and "first" the whole run."""
    now = Fraction(t.event_time)
    earlier = [e for e in everything if now - horizon_s < Fraction(e.event_time)]

    def within(seconds: int) -> list[Transaction]:
        return [e for e in earlier if now - seconds < Fraction(e.event_time) <= now]

    out: dict[str, Any] = {"amount": float(t.amount)}
    out["account_balance"] = math.nan if t.account_balance is None else float(t.account_balance)
    out["amount_to_balance"] = (
        math.nan if t.account_balance is None else float(t.amount) / float(t.account_balance)
    )
    for suffix, seconds in (("1m", 60), ("10m", 600), ("1h", 3600), ("24h", 86400)):
        inside = within(seconds)
        out[f"txn_count_{suffix}"] = len(inside) + 1
        out[f"amount_sum_{suffix}"] = float(sum(e.amount for e in inside) + t.amount)
        if suffix in ("1h", "24h"):
            countries = {e.destination_country for e in inside} | {t.destination_country}
            out[f"distinct_countries_{suffix}"] = len(countries - {None})
    out["small_count_10m"] = sum(1 for e in [*within(600), t] if e.amount <= 5)
    amounts = [float(e.amount) for e in earlier]
    out["earlier_count"] = len(amounts)
    out["amount_to_mean"] = float(t.amount) / (sum(amounts) / len(amounts)) if amounts else None
    out["amount_to_median"] = float(t.amount) / median(amounts) if amounts else None
    out["seconds_since_last"] = (
        float(now - max(Fraction(e.event_time) for e in earlier)) if earlier else None
    )
    located = [e for e in earlier if e.latitude is not None]
    if t.latitude is not None and located:
        last = located[-1]
        km = haversine_km(last.latitude, last.longitude, t.latitude, t.longitude)  # type: ignore[arg-type]
        out["km_from_last"] = km
        out["speed_kmh_from_last"] = km / (float(now - Fraction(last.event_time)) / 3600)
    else:
        out["km_from_last"] = out["speed_kmh_from_last"] = None
    out["located"] = int(t.latitude is not None)
    out["new_device"] = int(
        bool(everything)
        and t.device_id is not None
        and t.device_id not in {e.device_id for e in everything}
    )
    out["new_country"] = int(
        bool(everything)
        and t.destination_country is not None
        and t.destination_country not in {e.destination_country for e in everything}
    )
    out["first_transaction"] = int(not everything)
    out["cross_border"] = int(
        t.origin_country is not None
        and t.destination_country is not None
        and t.origin_country != t.destination_country
    )
    out["hour_of_day"] = (int(now) // 3600) % 24
    out["account_age_days"] = (
        None
        if t.account_created_at is None
        else float(now - Fraction(t.account_created_at)) / 86400
    )
    out.update(naive_profile(t, everything, []))
    out["channel"] = t.channel
    out["merchant_category"] = t.merchant_category
    return out


def naive_profile(
    t: Transaction,
    earlier: list[Transaction],
    labels: list[tuple[Transaction, float, bool]],
    delay_days: int = 7,
) -> dict[str, Any]:
    """The profile features from their definitions (consumer/rules/profile.py): `earlier` is
    every transaction before `t` in the stream (any account, any merchant), `labels` the
    (labelled transaction, labelled_at, verdict) delivered so far, the latest labelled_at
    of a transaction winning."""
    day = int(Fraction(t.event_time) // 86400)

    def day_of(e: Transaction) -> int:
        return int(Fraction(e.event_time) // 86400)

    out: dict[str, Any] = {}
    mine = [e for e in earlier if e.account_id == t.account_id]
    for w in (1, 7, 30):
        amounts = [Fraction(e.amount) for e in mine if day - w <= day_of(e) <= day - 1]
        n = len(amounts)
        mean = float(sum(amounts) / n) if n else math.nan
        std = float(sum((a - sum(amounts) / n) ** 2 for a in amounts) / n) ** 0.5 if n else math.nan
        out[f"account_count_{w}d"] = n
        out[f"account_mean_{w}d"] = mean
        out[f"account_std_{w}d"] = std
        out[f"amount_to_account_mean_{w}d"] = float(t.amount) / mean if n and mean > 0 else None
        out[f"amount_zscore_{w}d"] = (float(t.amount) - mean) / std if n and std > 1e-9 else None
    latest: dict[str, tuple[float, bool, Transaction]] = {}
    for labelled, at, verdict in labels:
        kept = latest.get(labelled.transaction_id)
        if kept is None or (at, verdict) > (kept[0], kept[1]):
            latest[labelled.transaction_id] = (at, verdict, labelled)
    now = float(t.event_time)
    frauds_known = [
        e
        for at, verdict, e in latest.values()
        if verdict and at <= now and e.merchant_id == t.merchant_id
    ]
    at_merchant = [e for e in earlier if e.merchant_id == t.merchant_id]
    for w in (1, 7, 30):
        first, last = day - delay_days - w + 1, day - delay_days
        count = sum(1 for e in at_merchant if first <= day_of(e) <= last)
        frauds = sum(1 for e in frauds_known if first <= day_of(e) <= last)
        out[f"merchant_count_{w}d"] = count
        out[f"merchant_frauds_{w}d"] = frauds
        out[f"merchant_risk_{w}d"] = frauds / count if count else None
    out["merchant_known_frauds_30d"] = sum(1 for e in frauds_known if day - 29 <= day_of(e) <= day)
    fraud_days = [day_of(e) for e in frauds_known if day_of(e) <= day]
    out["merchant_days_since_known_fraud"] = day - max(fraud_days) if fraud_days else None
    return out


def same(a: Any, b: Any) -> bool:
    if b is None or (isinstance(b, float) and math.isnan(b)):
        return a is None or (isinstance(a, float) and math.isnan(a))
    if isinstance(b, str):
        return a == b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


def hand_made_stream() -> list[Transaction]:
    paris = {"latitude": 48.8566, "longitude": 2.3522}
    berlin = {"latitude": 52.52, "longitude": 13.405}
    common = {
        "origin_country": "FR",
        "account_created_at": "2026-01-01T00:00:00Z",
        "channel": "card_present",
        "merchant_category": "grocery",
    }
    return [
        txn("a", 0, "20.00", device_id="d1", destination_country="FR", **common, **paris),
        txn("b", 30, "4.50", device_id="d1", destination_country="FR", **common),
        txn("c", 50, "3.00", device_id="d2", destination_country="DE", **common, **berlin),
        txn("d", 59, "2.00", device_id="d2", destination_country="DE", account_balance=1000),
        txn("e", 700, "900.00", device_id="d3", destination_country="ES", **common, **paris),
        txn("f", 4000, "55.55", destination_country="FR", channel="online"),
        txn("g", 90000, "1.00", device_id="d1", destination_country="FR", **common, **paris),
    ]


def test_features_equal_a_naive_computation_over_hand_made_histories() -> None:
    stream = hand_made_stream()
    history = stream_history()
    for index, t in enumerate(stream):
        seen = history.observe(t)
        assert seen is not None
        row = dict(zip(FEATURE_NAMES, features_for(t, seen), strict=True))
        expected = naive(t, stream[:index])
        assert set(expected) == set(FEATURE_NAMES)
        wrong = {n: (row[n], expected[n]) for n in FEATURE_NAMES if not same(row[n], expected[n])}
        assert wrong == {}, (t.transaction_id, wrong)


def test_profile_features_equal_a_naive_computation_over_forty_random_days() -> None:
    """Accounts and merchants over 40 days, with labels delivered late, twice, out of order
    and reversed: every profile feature as its definition says, for delays 7 and 2."""
    rng = random.Random(21)
    stream: list[Transaction] = []
    at = 0.0
    for n in range(1500):
        at += rng.expovariate(1 / 2300)
        stream.append(
            txn(
                f"t{n}",
                at,
                f"{rng.choice([1, 5, 20, 60, 300])}.{rng.randrange(100):02d}",
                account_id=f"acct-{rng.randrange(12)}",
                merchant_id=f"m-{rng.randrange(6)}",
            )
        )
    # (index of the labelled transaction, labelled_at offset in days, verdict)
    deliveries = []
    for index in rng.sample(range(len(stream)), 300):
        later = rng.uniform(0.5, 12)
        deliveries.append((index, later, rng.random() < 0.7))
        if rng.random() < 0.3:  # delivered again, or reversed later
            deliveries.append((index, later + rng.choice([0.0, 3.0]), rng.random() < 0.5))
    for delay in (7, 2):
        history = stream_history()
        given: list[tuple[Transaction, float, bool]] = []
        for index, t in enumerate(stream):
            now = float(t.event_time)
            for labelled, offset, verdict in deliveries:
                # Labels are handed over as soon as their transaction is (the profile hides
                # those not yet known): what evaluate does with the records' own labels.
                if labelled == index - 1:
                    e = stream[labelled]
                    labelled_at = float(e.event_time) + offset * 86400
                    given.append((e, labelled_at, verdict))
                    mark = LabelMark(day_of(e.event_time), Decimal(repr(labelled_at)), verdict)
                    assert e.merchant_id is not None
                    history.apply_label(e.transaction_id, e.merchant_id, mark)
            seen = history.observe(t)
            assert seen is not None
            row = dict(zip(FEATURE_NAMES, features_for(t, seen, delay), strict=True))
            expected = naive_profile(t, stream[:index], given, delay)
            wrong = {n: (row[n], v) for n, v in expected.items() if not same(row[n], v)}
            assert wrong == {}, (delay, t.transaction_id, now, wrong)


def test_the_history_builder_drops_duplicates_and_never_shows_later_records() -> None:
    stream = hand_made_stream()
    history = stream_history()
    first = history.observe(stream[0])
    assert first is not None and not first.has_earlier and first.recent == ()
    second = history.observe(stream[1])
    assert second is not None and second.has_earlier and second.device_seen_before
    assert [e.amount for e in second.recent] == [Decimal("20.00")]
    assert history.observe(stream[1]) is None  # the same transaction id again
    assert history.duplicates == 1
    third = history.observe(stream[2])
    assert third is not None and not third.device_seen_before and not third.country_seen_before
    assert len(third.recent) == 2  # the duplicate added nothing
    # A day later: the builder holds what the worker's store would load (24 h and its lateness
    # allowance), the features read the 24 h alone.
    last = history.observe(stream[-1])
    assert last is not None and last.device_seen_before
    assert [e.amount for e in last.recent] == [Decimal("20.00"), Decimal("4.50"), Decimal("3.00")]
    row = dict(zip(FEATURE_NAMES, features_for(stream[-1], last), strict=True))
    assert row["earlier_count"] == 0.0 and math.isnan(row["amount_to_mean"])
    assert math.isnan(row["km_from_last"])  # Paris and Berlin lie beyond 24 h too


def test_training_writes_the_model_its_features_and_a_sane_report(model_dir: Path) -> None:
    assert {p.name for p in model_dir.iterdir()} == {
        "model.txt",
        "features.json",
        "report.json",
        "report.md",
    }
    report = json.loads((model_dir / "report.json").read_text())
    for key in (
        "roc_auc",
        "pr_auc",
        "precision",
        "recall",
        "threshold",
        "rows",
        "positives",
        "training_seconds",
        "split",
    ):
        assert key in report
    assert report["rows"] == 6000
    assert 0 < report["positives"] < report["rows"]
    split = report["split"]
    assert split["train_rows"] + split["valid_rows"] + split["holdout_rows"] == report["rows"]
    assert split["holdout_rows"] > 0 and split["train_end"] < split["valid_end"]
    assert report["roc_auc"] > 0.9
    assert report["pr_auc"] > 0.5
    spec = json.loads((model_dir / "features.json").read_text())
    assert spec["features"] == list(FEATURE_NAMES)
    assert "grocery" in spec["categories"]["merchant_category"]
    assert spec["threshold"] == report["threshold"]
    assert "ROC AUC" in (model_dir / "report.md").read_text()


def test_the_threshold_precision_is_kept_on_validation(labelled: Path, tmp_path: Path) -> None:
    report = train(labelled, tmp_path / "m", threshold_precision=0.95)
    assert report["precision"] >= 0.95


def rows_of(labelled: Path, count: int = 500) -> tuple[list[Any], list[bool]]:
    data = load_dataset(labelled)
    return data.rows[-count:], data.labels[-count:]


def test_scoring_is_deterministic_and_explains_itself(model_dir: Path, labelled: Path) -> None:
    rows, labels = rows_of(labelled)
    scorer = ModelScorer.load(model_dir)
    scores, tops = scorer.score_batch(rows)
    again, tops_again = ModelScorer.load(model_dir).score_batch(rows)
    assert np.array_equal(scores, again) and tops == tops_again
    # One at a time gives the same as the whole batch.
    assert all(
        scorer.score_batch([row])[0][0] == pytest.approx(score, abs=1e-9)
        for row, score in zip(rows[:20], scores[:20], strict=True)
    )
    assert scores.shape == (len(rows),) and ((scores >= 0) & (scores <= 100)).all()
    explained = scorer.explain_batch(rows)
    contributions = explained.contributions
    assert contributions.shape == (len(rows), len(FEATURE_NAMES) + 1)
    # Every feature's contribution plus the bias (last column) is the raw score.
    raw = scorer._booster.predict(scorer.encode(rows), raw_score=True)
    assert np.allclose(contributions.sum(axis=1), raw)
    assert np.allclose(scores, 100 / (1 + np.exp(-raw)))
    for row_index, top in enumerate(tops):
        assert len(top) <= 3
        values = [c.value for c in top]
        assert values == sorted(values, reverse=True) and all(v > 0 for v in values)
        assert all(c.feature in FEATURE_NAMES for c in top)
        assert len({c.feature for c in top}) == len(top)
        # They are the row's largest contributions.
        largest = sorted(contributions[row_index, :-1], reverse=True)[: len(top)]
        assert np.allclose(values, largest)
    # High scores are explained by three features; the frauds score higher than the rest.
    assert all(len(top) == 3 for top, score in zip(tops, scores, strict=True) if score > 50)
    fraud = np.asarray(labels)
    assert scores[fraud].mean() > scores[~fraud].mean()


def test_explaining_only_high_scores_gives_the_same_scores(model_dir: Path, labelled: Path) -> None:
    rows, _ = rows_of(labelled)
    scorer = ModelScorer.load(model_dir)
    scores, tops = scorer.score_batch(rows)
    cut = float(np.quantile(scores, 0.9))
    partial_scores, partial_tops = scorer.score_batch(rows, explain_from=cut)
    assert np.allclose(scores, partial_scores)
    for score, top, partial in zip(scores, tops, partial_tops, strict=True):
        assert partial == (top if score >= cut else ())
    assert any(partial_tops) and not all(partial_tops)


def test_unknown_categories_and_absent_values_score_as_missing(model_dir: Path) -> None:
    scorer = ModelScorer.load(model_dir)
    t = txn("x", 0, "12.00", channel="online", merchant_category="never-seen-before")
    row = features_for(t, stream_history().observe(t))  # type: ignore[arg-type]
    matrix = scorer.encode([row])
    assert math.isnan(matrix[0, FEATURE_NAMES.index("merchant_category")])
    assert not math.isnan(matrix[0, FEATURE_NAMES.index("channel")])
    scores, _ = scorer.score_batch([row])
    assert 0 <= scores[0] <= 100
    empty_scores, empty_tops = scorer.score_batch([])
    assert empty_scores.shape == (0,) and empty_tops == []


def copy_model(model_dir: Path, to: Path) -> Path:
    to.mkdir()
    for name in ("model.txt", "features.json"):
        (to / name).write_bytes((model_dir / name).read_bytes())
    return to


def test_a_missing_or_corrupt_model_dir_fails_naming_the_path(
    model_dir: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ModelLoadError, match=str(missing)):
        ModelScorer.load(missing)

    no_spec = copy_model(model_dir, tmp_path / "no_spec")
    (no_spec / "features.json").unlink()
    with pytest.raises(ModelLoadError, match=rf"{no_spec}.*features\.json is missing"):
        ModelScorer.load(no_spec)

    bad_model = copy_model(model_dir, tmp_path / "bad_model")
    (bad_model / "model.txt").write_text("this is not a model\n")
    # features.json names the sha256 of its model.txt: another file is refused before parsing.
    with pytest.raises(ModelIncomplete, match=rf"{bad_model}: model\.txt is not the one"):
        ModelScorer.load(bad_model)
    spec = json.loads((bad_model / "features.json").read_text())
    del spec["model_sha256"]  # as written before train bound the two files
    (bad_model / "features.json").write_text(json.dumps(spec))
    with pytest.raises(ModelLoadError, match=rf"{bad_model / 'model.txt'}: not a LightGBM model"):
        ModelScorer.load(bad_model)

    bad_json = copy_model(model_dir, tmp_path / "bad_json")
    (bad_json / "features.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=rf"{bad_json / 'features.json'}: not valid JSON"):
        ModelScorer.load(bad_json)

    other_features = copy_model(model_dir, tmp_path / "other_features")
    spec = json.loads((other_features / "features.json").read_text())
    spec["features"] = spec["features"][:-1]
    (other_features / "features.json").write_text(json.dumps(spec))
    with pytest.raises(ModelLoadError, match="retrain"):
        ModelScorer.load(other_features)


def test_the_comparison_measures_a_later_slice_with_one_threshold(
    labelled: Path, model_dir: Path
) -> None:
    result = compare(labelled, model_dir)
    report = json.loads((model_dir / "report.json").read_text())
    held = result["holdout"]
    assert held["rows"] == report["split"]["holdout_rows"]
    validation = result["validation"]
    # The threshold keeps the rules' precision where it was chosen.
    assert validation["rules_or_model"]["precision"] >= validation["rules"]["precision"]
    assert validation["rules_or_model"]["recall"] >= validation["rules"]["recall"]
    assert held["rules_or_model"]["flagged"] >= held["rules"]["flagged"]


def test_pick_threshold_matches_a_brute_force_search() -> None:
    rng = random.Random(3)
    for _ in range(30):
        n = 60
        labels = np.array([rng.random() < 0.3 for _ in range(n)])
        ruled = np.array([rng.random() < 0.2 for _ in range(n)])
        scores = np.array([round(rng.random() * 100, 1) for _ in range(n)])
        target = rng.choice([0.3, 0.5, 0.7])
        best: tuple[float, float] | None = None  # (recall, threshold)
        for t in sorted(set(scores[~ruled].tolist())):
            flagged = ruled | (scores >= t)
            p, r = metrics.precision_recall_at(labels, flagged)
            if p >= target and (best is None or r > best[0] or (r == best[0] and t > best[1])):
                best = (r, t)
        expected = 100.0 if best is None else best[1]
        assert pick_threshold(labels, ruled, scores, target) == expected


def test_metrics_equal_their_definitions() -> None:
    rng = random.Random(9)
    labels = np.array([rng.random() < 0.3 for _ in range(200)])
    scores = np.array([rng.randint(0, 40) + (15 if y else 0) for y in labels], dtype=float)
    pos, neg = scores[labels], scores[~labels]
    pairs = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    assert metrics.roc_auc(labels, scores) == pytest.approx(pairs / (len(pos) * len(neg)))
    # Average precision: the mean over positives of the precision at their own score.
    expected_ap = np.mean([metrics.precision_recall_at(labels, scores >= s)[0] for s in pos])
    assert metrics.average_precision(labels, scores) == pytest.approx(expected_ap)
    t = metrics.threshold_for_precision(labels, scores, 0.8)
    precision, recall = metrics.precision_recall_at(labels, scores >= t)
    assert precision >= 0.8
    for other in set(scores.tolist()):
        p, r = metrics.precision_recall_at(labels, scores >= other)
        assert not (p >= 0.8 and r > recall)


def test_train_command_writes_the_model_and_reports_bad_input(
    labelled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli-model"
    assert cli_main(["train", "--input", str(labelled), "--out", str(out)]) == 0
    assert "ROC AUC" in capsys.readouterr().out
    assert (out / "model.txt").is_file()
    assert cli_main(["train", "--input", str(tmp_path / "none.jsonl"), "--out", str(out)]) == 1
    assert "none.jsonl: no such file" in capsys.readouterr().err
    unlabelled = tmp_path / "unlabelled.jsonl"
    unlabelled.write_text(
        json.dumps({"transaction_id": "t", "account_id": "a", "amount": 5, "timestamp": BASE_MS})
        + "\n"
    )
    assert cli_main(["train", "--input", str(unlabelled), "--out", str(out)]) == 1
    assert f"{unlabelled}:1: no label" in capsys.readouterr().err


def test_dataset_reads_replay_lines_raw_records_and_gzip(tmp_path: Path) -> None:
    import gzip

    record = {"transaction_id": "t1", "account_id": "a", "amount": 5, "timestamp": BASE_MS}
    lines = [
        json.dumps({"data": json.dumps({**record, "expected_rules": ["velocity"]})}),
        "",
        json.dumps({**record, "transaction_id": "t2", "fraud": False, "expected_rules": ["x"]}),
        json.dumps({"data": "not json at all"}),
        json.dumps({"data": json.dumps({**record, "expected_rules": []})}),  # duplicate t1
    ]
    path = tmp_path / "in.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    data = load_dataset(path)
    assert data.labels == [True, False]  # `fraud` wins over expected_rules
    assert data.invalid == 1 and data.duplicates == 1
    broken = tmp_path / "broken.jsonl"
    broken.write_text(lines[0] + "\n{oops\n")
    with pytest.raises(DatasetError, match=rf"{broken}:2: not JSON"):
        load_dataset(broken)


def test_the_model_rule_fires_at_its_threshold_and_names_the_features() -> None:
    from consumer.model.rule import ModelRule, model_reason, with_model
    from consumer.model.scorer import Contribution
    from consumer.rules.engine import NOT_FLAGGED, Decision, Reason

    rule = ModelRule(threshold=80, severity="high")
    top = (
        Contribution("new_device", 2.31),
        Contribution("amount_to_mean", 1.4),
        Contribution("channel", 0.77),
    )
    assert model_reason(79.99, top, rule) is None
    reason = model_reason(80.0, top, rule)
    assert reason == Reason(
        "model_score", "score 80.0 >= 80: new_device +2.31, amount_to_mean +1.40, channel +0.77"
    )
    assert with_model(NOT_FLAGGED, reason, rule) == Decision((reason,), "high")
    low = Decision((Reason("cross_border", "x"),), "low")
    assert with_model(low, reason, rule) == Decision((low.reasons[0], reason), "high")
    assert with_model(low, None, rule) is low
    assert with_model(low, reason, ModelRule(80, "high", shadow=True)) is low
    with pytest.raises(ValueError, match=r"model_score\.threshold"):
        ModelRule(threshold=101)
    with pytest.raises(ValueError, match=r"model_score\.severity"):
        ModelRule(threshold=50, severity="urgent")


def test_the_worker_does_not_import_the_model_library() -> None:
    """A worker without a model starts without the `model` extra: nothing it imports at start
    pulls in LightGBM or numpy."""
    import subprocess
    import sys

    code = (
        "import sys, consumer.worker.processor, consumer.batch.pipeline, consumer.cli, "
        "consumer.model.rule, consumer.model.features\n"
        "loaded = sorted(m for m in ('lightgbm', 'numpy') if m in sys.modules)\n"
        "assert not loaded, loaded"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_snapshot_never_holds_its_own_transaction_after_the_account_forgot_everything() -> None:
    """An account quiet for longer than the horizon has an empty view that is still live; the
    snapshot `observe` returns must not grow with the transaction added after it (training rows
    once counted that transaction in its own history, which the stream never does)."""
    history = stream_history()
    first = txn("a", 0, "10.00")
    later = txn("b", 3 * 86400, "20.00")
    assert history.observe(first) is not None
    seen = history.observe(later)
    assert seen is not None
    assert list(seen.recent) == []
    row = dict(zip(FEATURE_NAMES, features_for(later, seen), strict=True))
    assert row["txn_count_24h"] == 1.0 and row["earlier_count"] == 0.0
