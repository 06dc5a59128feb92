"""`fraudstream train`: features in stream order, a time-ordered split, LightGBM, a report.

The split is by event time, never at random: the model is trained on the earlier part and
judged on the later one, as it will be used. `--holdout-fraction` keeps the latest part of the
file out of training and validation altogether, for a later comparison with the rules
(`fraudstream compare-model`). Training is deterministic (fixed seed, deterministic
LightGBM).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from consumer.errors import FraudstreamError
from consumer.model import metrics
from consumer.model.dataset import Dataset, load_dataset
from consumer.model.features import CATEGORICAL_FEATURES, FEATURE_NAMES, STREAM_UNAVAILABLE
from consumer.model.scorer import FEATURES_FILE, FORMAT_VERSION, MODEL_FILE, Encoder
from consumer.rules.profile import DEFAULT_LABEL_DELAY_DAYS, MAX_LABEL_DELAY_DAYS

# Shallow trees on purpose: the per-prediction contributions (TreeSHAP) cost grows with the
# square of the depth, and depth 4 keeps the held-out AUC of LightGBM's default trees on the
# generator's data (measured: docs/model.md#training). A slower rate, larger leaves and a
# feature fraction of 0.7 suit the profile features' week of training rows (the protocol's,
# on simulator seeds 0-2: docs/model.md#on-the-simulator).
PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "max_depth": 4,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.7,
    "lambda_l2": 1.0,
    "max_cat_to_onehot": 8,
    "seed": 7,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbosity": -1,
}
MAX_ROUNDS = 150
# `fraudstream evaluate` trains a fixed number of rounds (the book's protocol has no
# validation slice to stop on): what the rate above reaches its best with on the simulator.
FIXED_ROUNDS = 100
EARLY_STOPPING = 30


class TrainError(FraudstreamError, ValueError):
    """Training cannot go on; the message says why."""


@dataclass(frozen=True)
class Split:
    train_end: float  # event time: training rows have t < train_end
    valid_end: float  # validation rows have train_end <= t < valid_end; holdout the rest


def time_split(times: list[float], valid_fraction: float, holdout_fraction: float) -> Split:
    """Cut the event-time span: the last `holdout_fraction` is held out, the `valid_fraction`
    before it validates, the rest trains."""
    start, end = min(times), max(times)
    span = end - start
    valid_end = end - span * holdout_fraction if holdout_fraction > 0 else end + 1.0
    train_end = start + span * (1.0 - holdout_fraction - valid_fraction)
    return Split(train_end, valid_end)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def train(
    input_path: Path,
    out: Path,
    *,
    threshold_precision: float | None = None,
    valid_fraction: float = 0.2,
    holdout_fraction: float = 0.0,
    label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS,
    labels_path: Path | None = None,
) -> dict[str, Any]:
    """Train on `input_path`, write the model directory `out`; returns the report.
    `label_delay_days`: how long after a transaction its label is known (the merchant
    features' delay; the worker computes them with the model's own, from features.json)."""
    import lightgbm
    import numpy as np

    if not 0 < valid_fraction < 1 or not 0 <= holdout_fraction < 1:
        raise TrainError("valid and holdout fractions must be within (0, 1)")
    if valid_fraction + holdout_fraction >= 0.9:
        raise TrainError("valid + holdout fractions leave less than 10% to train on")
    started = time.monotonic()
    if not 0 <= label_delay_days <= MAX_LABEL_DELAY_DAYS:
        raise TrainError(f"label delay: want 0-{MAX_LABEL_DELAY_DAYS} days, not {label_delay_days}")
    label_source = None
    if labels_path is not None:
        from consumer.model.labels import FileLabels

        try:
            label_source = FileLabels(labels_path)
        except OSError as exc:
            raise TrainError(f"{labels_path}: cannot be read ({exc})") from exc
    data: Dataset = load_dataset(input_path, label_delay_days, label_source)
    built = time.monotonic()
    split = time_split(data.event_times, valid_fraction, holdout_fraction)
    times = np.asarray(data.event_times)
    labels = np.asarray(data.labels, dtype=bool)
    in_train = times < split.train_end
    in_valid = (times >= split.train_end) & (times < split.valid_end)
    for name, mask in (("training", in_train), ("validation", in_valid)):
        positives = int(labels[mask].sum())
        if positives == 0 or positives == int(mask.sum()):
            raise TrainError(
                f"{input_path}: the {name} slice has {positives} frauds in {int(mask.sum())} "
                "records; it needs both classes"
            )
    categories = {
        name: sorted({str(row[FEATURE_NAMES.index(name)]) for row in data.rows} - {"None"})
        for name in CATEGORICAL_FEATURES
    }
    spec: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "features": list(FEATURE_NAMES),
        "categorical": list(CATEGORICAL_FEATURES),
        "categories": categories,
        "threshold": None,
        "version": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
        "masked": list(STREAM_UNAVAILABLE),
        "label_delay_days": label_delay_days,
    }
    matrix = Encoder(categories, STREAM_UNAVAILABLE).encode(data.rows)
    train_set = lightgbm.Dataset(
        matrix[in_train],
        label=labels[in_train].astype(np.float64),
        feature_name=list(FEATURE_NAMES),
        categorical_feature=list(CATEGORICAL_FEATURES),
        free_raw_data=False,
    )
    valid_set = lightgbm.Dataset(
        matrix[in_valid], label=labels[in_valid].astype(np.float64), reference=train_set
    )
    booster = lightgbm.train(
        {**PARAMS, "metric": ["average_precision", "auc"]},
        train_set,
        num_boost_round=MAX_ROUNDS,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[lightgbm.early_stopping(EARLY_STOPPING, first_metric_only=True, verbose=False)],
    )
    trained = time.monotonic()
    best = booster.best_iteration
    raw: Any = booster.predict(matrix[in_valid], raw_score=True, num_iteration=best)
    scores = 100.0 / (1.0 + np.exp(-raw))
    y = labels[in_valid]
    if threshold_precision is not None:
        threshold = metrics.threshold_for_precision(y, scores, threshold_precision)
        chosen = f"most recall at precision >= {threshold_precision} on validation"
    else:
        threshold = metrics.best_f1_threshold(y, scores)
        chosen = "best F1 on validation"
    precision, recall = metrics.precision_recall_at(y, scores >= threshold)
    out.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(out / MODEL_FILE), num_iteration=booster.best_iteration)
    spec["threshold"] = round(threshold, 6)
    # Binds features.json to its model.txt: a worker refuses a pair from two trainings, and a
    # hot reload waits when it reads one file of a copy still under way (docs/model.md).
    spec["model_sha256"] = hashlib.sha256((out / MODEL_FILE).read_bytes()).hexdigest()
    (out / FEATURES_FILE).write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    report: dict[str, Any] = {
        "input": str(input_path),
        "model_version": spec["version"],
        "library": f"lightgbm {lightgbm.__version__}",
        "rows": len(data.rows),
        "positives": int(labels.sum()),
        "invalid_skipped": data.invalid,
        "duplicates_skipped": data.duplicates,
        "split": {
            "train_end": _iso(split.train_end),
            "valid_end": _iso(split.valid_end) if holdout_fraction > 0 else None,
            "train_rows": int(in_train.sum()),
            "train_positives": int(labels[in_train].sum()),
            "valid_rows": int(in_valid.sum()),
            "valid_positives": int(y.sum()),
            "holdout_rows": int((~in_train & ~in_valid).sum()),
        },
        "trees": booster.best_iteration or booster.current_iteration(),
        "roc_auc": round(metrics.roc_auc(y, scores), 6),
        "pr_auc": round(metrics.average_precision(y, scores), 6),
        "threshold": round(threshold, 6),
        "threshold_rule": chosen,
        "precision": round(precision, 6),
        "recall": round(recall, 6),
        "feature_seconds": round(built - started, 3),
        "training_seconds": round(trained - built, 3),
        "top_features_by_gain": _top_by_gain(booster),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    return report


def _top_by_gain(booster: Any, count: int = 10) -> list[str]:
    gains = booster.feature_importance(importance_type="gain").tolist()
    ranked = sorted(zip(gains, FEATURE_NAMES, strict=True), reverse=True)
    return [name for _, name in ranked[:count]]


def render_markdown(report: dict[str, Any]) -> str:
    split = report["split"]
    lines = [
        f"# Model {report['model_version']} ({report['library']})",
        "",
        f"Trained on `{report['input']}`: {report['rows']} records, {report['positives']} frauds "
        f"({report['invalid_skipped']} invalid and {report['duplicates_skipped']} duplicates "
        "skipped).",
        "",
        f"Time-ordered split: training before {split['train_end']} ({split['train_rows']} rows, "
        f"{split['train_positives']} frauds), validation after it ({split['valid_rows']} rows, "
        f"{split['valid_positives']} frauds)"
        + (
            f", held out from {split['valid_end']} ({split['holdout_rows']} rows)."
            if split["valid_end"]
            else "."
        ),
        "",
        "| validation | |",
        "| --- | --- |",
        f"| ROC AUC | {report['roc_auc']:.4f} |",
        f"| PR AUC | {report['pr_auc']:.4f} |",
        f"| threshold (score 0-100) | {report['threshold']:.3f} ({report['threshold_rule']}) |",
        f"| precision at threshold | {report['precision']:.4f} |",
        f"| recall at threshold | {report['recall']:.4f} |",
        f"| trees | {report['trees']} |",
        f"| feature building | {report['feature_seconds']} s |",
        f"| training | {report['training_seconds']} s |",
        "",
        "Top features by gain: " + ", ".join(report["top_features_by_gain"]) + ".",
        "",
    ]
    return "\n".join(lines)
