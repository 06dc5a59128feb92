"""Rules alone against rules OR model score, on a later time slice than the model saw.

    fraudstream compare-model --input labelled.jsonl.gz --model model/

The model directory must come from `fraudstream train --holdout-fraction F` on the same file:
its report says where validation ends. Every record is judged in stream order with the same
history (consumer.model.dataset.stream_history: the backtest's builder) by the default rule set
(`judge_with_ruleset`: flagged = any of the seven contract rules) and scored by the model. On
the validation slice the model threshold is the lowest score at which "rules or score >=
threshold" still has the rules' own precision there; that threshold is then applied, unchanged,
to the held-out slice, where both
are measured: recall at (about) equal precision.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from consumer.model import metrics
from consumer.model.dataset import judged, label_of
from consumer.model.features import features_for
from consumer.model.scorer import ModelScorer
from consumer.rules.ruleset import judge_with_ruleset
from consumer.rules.ruleset_load import default_ruleset

BATCH = 10_000


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def pick_threshold(labels: Any, ruled: Any, scores: Any, precision: float) -> float:
    """The model threshold giving "rules or score >= t" the most recall while its precision
    stays >= `precision`; among thresholds of equal recall the highest (flags that catch
    nothing more only cost precision). 100 when none keeps the precision."""
    import numpy as np

    rules_tp = int((labels & ruled).sum())
    rules_flagged = int(ruled.sum())
    extra = ~ruled
    order = np.argsort(-scores[extra], kind="mergesort")
    s = scores[extra][order]
    positive = labels[extra][order]
    if s.size == 0:
        return 100.0
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of each distinct score
    tp = rules_tp + np.cumsum(positive)[last]
    flagged = rules_flagged + last + 1
    ok = tp / flagged >= precision
    if not ok.any():
        return 100.0
    best = tp[ok].max()
    # Descending thresholds: the first that reaches the best recall is the highest.
    index = int(np.flatnonzero(ok & (tp == best))[0])
    return float(s[last[index]])


def compare(input_path: Path, model_dir: Path) -> dict[str, Any]:
    import numpy as np

    report = json.loads((model_dir / "report.json").read_text(encoding="utf-8"))
    if not report["split"].get("valid_end"):
        raise ValueError(f"{model_dir}: trained without --holdout-fraction; nothing held out")
    train_end = _time(report["split"]["train_end"])
    valid_end = _time(report["split"]["valid_end"])
    scorer = ModelScorer.load(model_dir)
    ruleset = default_ruleset()
    rows = []
    archetypes: list[str | None] = []
    labels: list[bool] = []
    rules: list[bool] = []
    times: list[float] = []
    delay = scorer.label_delay_days
    for where, txn, history in judged(input_path, label_delay_days=delay):
        label = label_of(txn)
        if label is None:
            raise ValueError(f"{where}: no label")
        labels.append(label)
        archetype = txn.raw.get("fraud_archetype")
        archetypes.append(archetype if isinstance(archetype, str) else None)
        rules.append(judge_with_ruleset(txn, history, ruleset).flagged)
        rows.append(features_for(txn, history, delay))
        times.append(float(txn.event_time))
    scores = np.concatenate(
        [scorer.scores(rows[i : i + BATCH]) for i in range(0, len(rows), BATCH)]
    )
    y = np.asarray(labels, dtype=bool)
    ruled = np.asarray(rules, dtype=bool)
    t = np.asarray(times)
    valid = (t >= train_end) & (t < valid_end)
    held = t >= valid_end
    rules_precision, _ = metrics.precision_recall_at(y[valid], ruled[valid])
    threshold = pick_threshold(y[valid], ruled[valid], scores[valid], rules_precision)

    def measure(mask: Any, flagged: Any) -> dict[str, Any]:
        precision, recall = metrics.precision_recall_at(y[mask], flagged[mask])
        return {
            "flagged": int(flagged[mask].sum()),
            # None (JSON null) when nothing is flagged or there is no fraud to find.
            "precision": None if math.isnan(precision) else round(precision, 4),
            "recall": None if math.isnan(recall) else round(recall, 4),
        }

    combined = ruled | (scores >= threshold)
    kinds = np.asarray([a or "" for a in archetypes])
    result: dict[str, Any] = {
        "input": str(input_path),
        "model": str(model_dir),
        "threshold": round(threshold, 4),
        "validation": {
            "rows": int(valid.sum()),
            "frauds": int(y[valid].sum()),
            "rules": measure(valid, ruled),
            "rules_or_model": measure(valid, combined),
        },
        "holdout": {
            "from": report["split"]["valid_end"],
            "rows": int(held.sum()),
            "frauds": int(y[held].sum()),
            "rules": measure(held, ruled),
            "rules_or_model": measure(held, combined),
            "model_alone": measure(held, scores >= threshold),
            "recall_by_archetype": {
                name: {
                    "frauds": int((held & (kinds == name)).sum()),
                    "rules": measure(held & (kinds == name), ruled)["recall"],
                    "rules_or_model": measure(held & (kinds == name), combined)["recall"],
                }
                for name in sorted({a for a in archetypes if a is not None})
            },
            "model_roc_auc": round(metrics.roc_auc(y[held], scores[held]), 4),
            "model_pr_auc": round(metrics.average_precision(y[held], scores[held]), 4),
        },
    }
    return result
