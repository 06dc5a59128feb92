"""ROC AUC, PR AUC (average precision) and the threshold for a precision, in numpy: a dozen
lines each, not worth scikit-learn's weight in the worker's image."""

from __future__ import annotations

from typing import Any


def _np() -> Any:
    import numpy

    return numpy


def roc_auc(labels: Any, scores: Any) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    np = _np()
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size, dtype=np.float64)
    sorted_scores = scores[order]
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    above = ranks[labels].sum() - positives * (positives + 1) / 2.0
    return float(above / (positives * negatives))


def _curve(labels: Any, scores: Any) -> tuple[Any, Any, Any]:
    """Per distinct threshold (descending): precision, recall, threshold of `score >= t`."""
    np = _np()
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    s = scores[order]
    y = labels[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp = np.cumsum(y)[last_of_value]
    flagged = last_of_value + 1
    positives = max(int(labels.sum()), 1)
    return tp / flagged, tp / positives, s[last_of_value]


def average_precision(labels: Any, scores: Any) -> float:
    """PR AUC as the step-wise sum of precision x recall increments."""
    np = _np()
    if not np.asarray(labels, dtype=bool).any():
        return float("nan")
    precision, recall, _ = _curve(labels, scores)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def threshold_for_precision(labels: Any, scores: Any, precision: float) -> float:
    """The threshold t whose `score >= t` has the most recall while keeping at least
    `precision`; among thresholds of equal recall the highest (lower ones only add false
    alarms). When none reaches the precision, the highest score (flags the fewest)."""
    np = _np()
    p, r, thresholds = _curve(labels, scores)
    ok = p >= precision
    if not ok.any():
        return float(thresholds[0]) if thresholds.size else 100.0
    best = r[ok].max()
    return float(thresholds[int(np.flatnonzero(ok & (r == best))[0])])


def best_f1_threshold(labels: Any, scores: Any) -> float:
    np = _np()
    p, r, thresholds = _curve(labels, scores)
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
    return float(thresholds[int(np.argmax(f1))])


def precision_recall_at(labels: Any, flagged: Any) -> tuple[float, float]:
    np = _np()
    labels = np.asarray(labels, dtype=bool)
    flagged = np.asarray(flagged, dtype=bool)
    tp = int((labels & flagged).sum())
    n_flagged = int(flagged.sum())
    positives = int(labels.sum())
    return (
        tp / n_flagged if n_flagged else float("nan"),
        tp / positives if positives else float("nan"),
    )
