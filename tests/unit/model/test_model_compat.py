"""Models written before the profile features: they name fewer features, still load, and score
the columns they were trained on, picked out of today's row; features.json's label delay is
checked."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from consumer.model.features import CATEGORICAL_FEATURES, FEATURE_NAMES, PROFILE_FEATURES
from consumer.model.scorer import FORMAT_VERSION, Encoder, ModelLoadError, ModelScorer

OLD_FEATURES = [name for name in FEATURE_NAMES if name not in PROFILE_FEATURES]


def _write_model(
    out: Path, features: list[str], spec_features: list[str] | None = None, **spec_extra: object
) -> Path:
    import lightgbm

    rng = np.random.default_rng(4)
    rows = rng.normal(size=(400, len(features)))
    for name in CATEGORICAL_FEATURES:
        rows[:, features.index(name)] = rng.integers(0, 2, size=400)
    amount = features.index("amount")
    labels = (rows[:, amount] > 0.8).astype(float)
    booster = lightgbm.train(
        {"objective": "binary", "verbosity": -1, "num_threads": 1, "min_data_in_leaf": 5},
        lightgbm.Dataset(rows, label=labels, feature_name=features),
        num_boost_round=5,
    )
    text = booster.model_to_string()
    out.mkdir()
    (out / "model.txt").write_text(text)
    spec = {
        "format": FORMAT_VERSION,
        "features": features if spec_features is None else spec_features,
        "categorical": list(CATEGORICAL_FEATURES),
        "categories": {name: ["a", "b"] for name in CATEGORICAL_FEATURES},
        "threshold": None,
        "version": "old",
        "model_sha256": hashlib.sha256(text.encode()).hexdigest(),
        **spec_extra,
    }
    (out / "features.json").write_text(json.dumps(spec))
    return out


def test_a_model_from_before_the_profiles_scores_its_own_columns(tmp_path: Path) -> None:
    scorer = ModelScorer.load(_write_model(tmp_path / "old", OLD_FEATURES))
    assert scorer.label_delay_days == 7  # absent: the default, unused by such a model
    rng = np.random.default_rng(9)
    rows = []
    for _ in range(50):
        row: list[object] = [float(v) for v in rng.normal(size=len(FEATURE_NAMES))]
        for name in CATEGORICAL_FEATURES:
            row[FEATURE_NAMES.index(name)] = str(rng.choice(["a", "b", "c"]))
        rows.append(tuple(row))
    full = Encoder({name: ["a", "b"] for name in CATEGORICAL_FEATURES}).encode(rows)  # type: ignore[arg-type]
    picked = full[:, [FEATURE_NAMES.index(name) for name in OLD_FEATURES]]
    encoded = scorer.encode(rows)  # type: ignore[arg-type]
    assert encoded.shape == (50, len(OLD_FEATURES))
    assert np.array_equal(encoded, picked, equal_nan=True)
    scores = scorer.scores(rows)  # type: ignore[arg-type]
    assert scores.shape == (50,) and not any(math.isnan(s) for s in scores)


@pytest.mark.parametrize(
    ("features", "extra", "problem"),
    [
        (["amount", "no_such_feature", *CATEGORICAL_FEATURES], {}, "retrain"),
        (["amount", "amount", *CATEGORICAL_FEATURES], {}, "retrain"),
        (["amount", "txn_count_1h"], {}, "retrain"),
        (OLD_FEATURES, {"label_delay_days": 15}, "label_delay_days"),
        (OLD_FEATURES, {"label_delay_days": "7"}, "label_delay_days"),
        (OLD_FEATURES, {"label_delay_days": True}, "label_delay_days"),
    ],
)
def test_a_feature_list_or_delay_this_version_cannot_compute_is_refused(
    tmp_path: Path, features: list[str], extra: dict[str, object], problem: str
) -> None:
    directory = _write_model(tmp_path / "bad", OLD_FEATURES, features, **extra)
    with pytest.raises(ModelLoadError, match=problem):
        ModelScorer.load(directory)


def test_compare_model_reads_the_rows_training_read(tmp_path: Path) -> None:
    """`judged(..., label_delay_days)` (what compare-model scores) gives, row for row, what
    `load_dataset` trains on: the same labels reach the merchant profiles at the same time;
    without the delay the merchant features differ."""
    from consumer.model.dataset import judged, load_dataset
    from consumer.model.features import features_for
    from load_test.simulator import main as simulate

    path = tmp_path / "sim.jsonl"
    assert simulate([str(path), "--small", "--days", "12", "--no-progress"]) == 0
    trained = load_dataset(path, 2).rows
    compared = [features_for(t, h, 2) for _, t, h in judged(path, label_delay_days=2)]
    unlabelled = [features_for(t, h, 2) for _, t, h in judged(path)]

    def same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
        return all(x == y or (x != x and y != y) for x, y in zip(a, b, strict=True))

    assert len(trained) == len(compared) > 1000
    assert all(same(a, b) for a, b in zip(trained, compared, strict=True))
    assert not all(same(a, b) for a, b in zip(trained, unlabelled, strict=True))


def test_training_from_a_label_file_is_training_from_the_records_labels(tmp_path: Path) -> None:
    """The records' frauds written as a label file, each labelled the delay after it: the same
    rows, the same labels, so the same trees, byte for byte; a file naming fewer frauds trains
    another model."""
    from consumer.model.train import train
    from load_test.simulator import main as simulate

    path = tmp_path / "sim.jsonl"
    assert simulate([str(path), "--small", "--days", "10", "--no-progress"]) == 0
    records = [json.loads(json.loads(line)["data"]) for line in path.read_text().splitlines()]
    frauds = [r for r in records if r["fraud"]]
    from datetime import datetime

    lines = []
    for r in frauds:
        at = datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp()
        lines.append(
            json.dumps(
                {
                    "transaction_id": r["transaction_id"],
                    "account_id": r["account_id"],
                    "merchant_id": r["merchant_id"],
                    "event_time": int(at * 1000),
                    "labelled_at": int((at + 2 * 86400) * 1000),
                    "is_fraud": True,
                }
            )
        )
    labels = tmp_path / "labels.jsonl"
    labels.write_text("\n".join(lines) + "\n")
    fewer = tmp_path / "fewer.jsonl"
    fewer.write_text("\n".join(lines[::2]) + "\n")

    train(path, tmp_path / "from_records", label_delay_days=2)
    train(path, tmp_path / "from_file", label_delay_days=2, labels_path=labels)
    train(path, tmp_path / "from_fewer", label_delay_days=2, labels_path=fewer)
    model = "model.txt"
    assert (tmp_path / "from_file" / model).read_bytes() == (
        tmp_path / "from_records" / model
    ).read_bytes()
    assert (tmp_path / "from_fewer" / model).read_bytes() != (
        tmp_path / "from_records" / model
    ).read_bytes()
