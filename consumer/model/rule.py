"""The `model_score` rule: a score at or above the threshold flags the transaction, and its
detail names the three features behind the score (the model's own contributions).

Pure (no numpy): the pipeline scores the batch with ModelScorer.score_batch, then asks this
module, per transaction, whether the score fires and how the decision changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consumer.model.scorer import Contribution
from consumer.rules.config import SEVERITIES
from consumer.rules.engine import Decision, Reason

RULE_ID = "model_score"
_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


@dataclass(frozen=True, slots=True)
class ModelRule:
    """Threshold (a score 0-100) and severity of the model_score rule; shadow rules are
    counted, never flag."""

    threshold: float
    severity: str = "medium"
    shadow: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= 100:
            raise ValueError(f"model_score.threshold: {self.threshold} is not within 0..100")
        if self.severity not in SEVERITIES:
            raise ValueError(f"model_score.severity: {self.severity!r} is not one of {SEVERITIES}")


def model_detail(score: float, threshold: float, top: Sequence[Contribution]) -> str:
    """E.g. `score 91.2 >= 80: new_device +2.31, amount_to_mean +1.40, channel +0.77`."""
    because = ", ".join(str(c) for c in top) or "no single feature stands out"
    return f"score {score:.1f} >= {threshold:g}: {because}"


def model_reason(score: float, top: Sequence[Contribution], rule: ModelRule) -> Reason | None:
    if score < rule.threshold:
        return None
    return Reason(RULE_ID, model_detail(score, rule.threshold, top))


def with_model(decision: Decision, reason: Reason | None, rule: ModelRule) -> Decision:
    """The decision with the model's reason added after the rules' (no change when it did not
    fire or is shadow); the severity is the highest."""
    if reason is None or rule.shadow:
        return decision
    severity = decision.severity
    if severity is None or _RANK[rule.severity] > _RANK[severity]:
        severity = rule.severity
    return Decision(reasons=(*decision.reasons, reason), severity=severity)
