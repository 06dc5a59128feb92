"""The model score inside the worker: feature rows collected while a batch is judged, scored in
one vectorised call, and the `model_score` rule applied to each transaction's decision.

Off unless FRAUD_MODEL_DIR names a model directory (`fraudstream train`); LightGBM and numpy
are imported only then. The score needs the whole batch, so the pipeline judges every record
first and builds the outputs after (consumer/batch/pipeline.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from consumer.infra.metrics import METRICS
from consumer.model.features import FeatureRow, features_for
from consumer.model.rule import RULE_ID, ModelRule, model_reason, with_model
from consumer.model.scorer import ModelScorer, Top
from consumer.records import Transaction
from consumer.rules.engine import Decision
from consumer.rules.history import AccountHistory
from consumer.rules.ruleset import ModelScoreEntry
from consumer.settings.config import Settings


class Scored(msgspec.Struct, frozen=True, gc=False):
    """One transaction's score and the features behind it (empty below the threshold).

    A msgspec Struct, one per scored transaction: cheaper to build than a frozen dataclass
    (docs/model.md#cost-python--m-benchmodel_score)."""

    score: float
    top: Top


class BatchModel:
    """Collects rows for a batch, scores them at once, and applies the model_score rule.

    `rule` is the worker's own (FRAUD_MODEL_* settings, else the model's threshold); the rule
    set in force may override it per batch with its `rules.model_score` entry (`rule_for`).
    """

    def __init__(self, scorer: ModelScorer, rule: ModelRule) -> None:
        self.scorer = scorer
        self.rule = rule

    @property
    def model_version(self) -> str:
        """The identity every line this model scored carries (consumer.model.scorer)."""
        return self.scorer.model_version

    def rule_for(self, entry: ModelScoreEntry | None) -> ModelRule | None:
        """The model_score rule under a rule set's entry: its keys win, a key it leaves out
        keeps the worker's value; None when the entry switches the rule off (the score is
        still computed and written on flagged lines)."""
        if entry is None:
            return self.rule
        if not entry.enabled:
            return None
        return ModelRule(
            threshold=self.rule.threshold if entry.threshold is None else entry.threshold,
            severity=self.rule.severity if entry.severity is None else entry.severity,
            shadow=self.rule.shadow if entry.shadow is None else entry.shadow,
        )

    def row(self, txn: Transaction, history: AccountHistory) -> FeatureRow:
        """The transaction's feature row (consumer.model.features), built while it is judged."""
        return features_for(txn, history, self.scorer.label_delay_days)

    def score(self, rows: Sequence[FeatureRow], rule: ModelRule | None = None) -> list[Scored]:
        """Scores of the batch; the features behind a score are explained only where the rule
        can fire (pass the batch's rule; None: the worker's own)."""
        if not rows:
            return []
        rule = rule or self.rule
        scores, tops = self.scorer.score_batch(list(rows), explain_from=rule.threshold)
        # tolist() gives Python floats already.
        return [Scored(s, top) for s, top in zip(scores.tolist(), tops, strict=True)]

    def apply(self, decision: Decision, scored: Scored, rule: ModelRule | None = None) -> Decision:
        """The decision with `model_score` among its reasons when the score fires (a shadow
        rule is only counted). `rule`: the batch's (see rule_for); None: the worker's own."""
        rule = rule or self.rule
        reason = model_reason(scored.score, scored.top, rule)
        if reason is not None and rule.shadow:
            METRICS.incr(f"shadow.rule.{RULE_ID}")  # a live hit counts as flagged.rule.*
        return with_model(decision, reason, rule)


def batch_model(scorer: ModelScorer, settings: Settings) -> BatchModel:
    """A loaded model under the worker's FRAUD_MODEL_* settings: FRAUD_MODEL_THRESHOLD when set,
    else this model's own threshold (so a reloaded model brings its own), else 80. Raises
    ModelLoadError when the model needs features the worker cannot compute."""
    scorer.require_stream_features()
    threshold = settings.model_threshold
    if threshold is None:
        threshold = scorer.threshold if scorer.threshold is not None else 80.0
    rule = ModelRule(threshold, settings.model_severity, settings.model_shadow)
    return BatchModel(scorer, rule)
