"""ROC AUC, PR AUC (average precision) and the threshold for a precision, in numpy: a dozen
lines each, not worth scikit-learn's weight in the worker's image. Card Precision@k (the
benchmark's protocol, consumer/model/evaluate.py) in plain Python."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
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


def precision_recall_curve(labels: Any, scores: Any) -> tuple[Any, Any, Any]:
    """Precision, recall and threshold of `score >= t` at each distinct score, the highest
    threshold first (the points of the step curve whose area is `average_precision`)."""
    return _curve(labels, scores)


@dataclass(frozen=True)
class CardDay:
    """One day of transactions for Card Precision@k: per transaction its card, score and
    whether it was a fraud. `known`: cards known to be compromised before the day began (a
    fraud labelled by then): dropped from the day, as a bank would have blocked them."""

    cards: Sequence[str]
    scores: Sequence[float]
    frauds: Sequence[bool]
    known: frozenset[str] = frozenset()


def _tie_key(card: str) -> bytes:
    return hashlib.blake2b(card.encode("utf-8"), digest_size=8).digest()


def card_ranking(cards: Sequence[str], scores: Sequence[float]) -> list[tuple[str, float]]:
    """Each card once with its highest score, highest first. Cards of equal score are ordered
    by a fixed hash of the card id: reproducible, whatever the input order, and unrelated to
    how ids are made (the order of the ids or of their first transaction could favour the
    fraudsters' fresh accounts)."""
    best: dict[str, float] = {}
    for card, score in zip(cards, scores, strict=True):
        value = float(score)
        if card not in best or value > best[card]:
            best[card] = value
    return sorted(best.items(), key=lambda item: (-item[1], _tie_key(item[0])))


def card_precision_per_day(days: Sequence[CardDay], k: int) -> list[float]:
    """Card Precision@k of each day (Le Borgne et al., Reproducible Machine Learning for Credit
    Card Fraud Detection, chapter 4): the day's transactions without the `known` cards and the
    cards already detected on an earlier day; the cards ranked by their highest score that
    day (`card_ranking`); the top k; the number of those with a fraud that day, divided by k
    (as the book: a day with fewer than k cards cannot reach 1, and a day without any card
    counts 0). The cards so detected (top k and a fraud that day) leave the later days."""
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    detected: set[str] = set()
    result: list[float] = []
    for day in days:
        if not len(day.cards) == len(day.scores) == len(day.frauds):
            raise ValueError("a day's cards, scores and frauds differ in length")
        dropped = day.known | detected
        keep = [i for i, card in enumerate(day.cards) if card not in dropped]
        cards = [day.cards[i] for i in keep]
        defrauded = {card for card, i in zip(cards, keep, strict=True) if day.frauds[i]}
        top = card_ranking(cards, [day.scores[i] for i in keep])[:k]
        found = {card for card, _ in top if card in defrauded}
        result.append(len(found) / k)
        detected |= found
    return result


def card_precision_at_k(days: Sequence[CardDay], k: int) -> float:
    """The mean over `days` of `card_precision_per_day` (NaN for no day)."""
    per_day = card_precision_per_day(days, k)
    return sum(per_day) / len(per_day) if per_day else float("nan")
