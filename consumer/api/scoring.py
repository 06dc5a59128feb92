"""Judging transactions now: the stream's validation, state and engine, and no write anywhere.

- **Validation** is the stream's: `parse_transaction` on the bytes as received, then the
  future-timestamp check of consumer/batch/timeliness.py with the request's arrival as the
  record's arrival time (a record posted now would reach the stream about now; one the stream
  would dead-letter is refused here with the dead letter's reason rather than judged as the
  stream never would).
- **State** comes from the workers' Redis through their own store (`AccountStateStore.load`,
  one pipelined round trip for the whole request), with its in-process cache off: the workers
  write those accounts while the API reads them.
- **Judging** is `consumer.judging.sequence.judge`, the very function the stream's pipeline
  calls, over the loaded view. Its `add` changes only the in-memory view (so the transactions of
  one batch request see each other, in order, as they would in the stream); nothing is saved:
  the stream stays the one writer of the state, and a transaction scored here and streamed later
  counts once.
- **Position.** A transaction judged here sits at API_SEQUENCE, above every Kinesis sequence
  number (at most 129 digits), so it sees every fact stored and none is hidden from it as
  "later"; batch items take sub-positions 0, 1, ... in request order.
- **Duplicates.** A transaction id the stream has seen (at another position, within
  FRAUD_DEDUP_TTL_S) is a producer retry to the stream, which would not judge it: the API
  answers `duplicate: true`, not flagged, no reasons (docs/api.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from consumer.api.models import Contribution, Reason, ScoreResponse
from consumer.batch.timeliness import too_far_ahead
from consumer.infra.metrics import METRICS
from consumer.judging.sequence import DUPLICATE, Decided, judge
from consumer.judging.views import ScoringModel
from consumer.model.features import MODEL_HORIZON_S
from consumer.records import InvalidRecord, Position, Transaction, parse_transaction
from consumer.reload.models import ModelSource
from consumer.reload.rulesets import RuleSetSource
from consumer.rules.ruleset import RuleSet
from consumer.settings.config import Settings
from consumer.state.store import AccountStateStore

__all__ = ["API_SEQUENCE", "Invalid", "Judged", "Scorer", "max_horizon"]

API_SEQUENCE = 10**130
"""The sequence number of every transaction the API judges: above any Kinesis sequence number
(the API's pattern allows at most 129 digits), so the whole stored history comes before it."""


@dataclass(frozen=True, slots=True)
class Invalid:
    """A transaction the stream would dead-letter: the dead letter's reason."""

    reason: str


@dataclass(frozen=True, slots=True)
class Failed:
    """A transaction that could not be judged (a bug): the error, logged, never shown."""

    error: Exception


@dataclass(frozen=True, slots=True)
class Judged:
    """A decision, with the transaction it is on (its account for the partition key)."""

    response: ScoreResponse
    transaction: Transaction


Outcome = Judged | Invalid | Failed


def max_horizon(rulesets: RuleSetSource, model: ModelSource | None) -> Decimal:
    """The history a load reads back, as the worker sizes it (consumer/worker/wiring.py): the
    rule set's envelope, and 24 h when a model reads its features."""
    if model is None:
        return rulesets.max_horizon_s
    return max(rulesets.max_horizon_s, Decimal(MODEL_HORIZON_S))


class Scorer:
    """Judges requests' transactions against Redis with the rule set and model in force."""

    def __init__(
        self,
        settings: Settings,
        redis_conn: Any,
        rulesets: RuleSetSource,
        model: ModelSource | None,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._rulesets = rulesets
        self._model = model
        self._max_ahead_s = settings.timestamp_max_ahead_s
        self._clock_ms = clock_ms
        read_back: int | Callable[[], int] = (
            0 if model is None else (lambda: model.model.scorer.label_delay_days)
        )
        self._store = AccountStateStore(
            redis_conn,
            settings.state,
            max_horizon(rulesets, model),
            merchant_days_read_back=read_back,
            cache=False,
        )
        # The sources' checks (a stat, or a conditional GET) run from whichever request thread
        # comes first after the interval; one at a time.
        self._sources_lock = threading.Lock()

    def in_force(self) -> tuple[RuleSet, ScoringModel | None]:
        """The rule set and model for one request (checked for a new version as the workers
        check theirs: every FRAUD_RULESET_CHECK_S / FRAUD_MODEL_CHECK_S)."""
        with self._sources_lock:
            ruleset = self._rulesets.current()
            model = self._model.current() if self._model is not None else None
        return ruleset, model

    @property
    def versions(self) -> tuple[str, str | None]:
        model = self._model.model.model_version if self._model is not None else None
        return self._rulesets.ruleset.version, model

    def validate(self, data: bytes, arrival_ms: int) -> Transaction | Invalid:
        """The stream's checks, in the stream's order (docs/contract.md, 'Invalid records')."""
        parsed = parse_transaction(data)
        if isinstance(parsed, InvalidRecord):
            return Invalid(parsed.reason)
        ahead = too_far_ahead(parsed, arrival_ms, self._max_ahead_s)
        if ahead is not None:
            return Invalid(ahead)
        return parsed

    def score(self, items: Sequence[bytes]) -> list[Outcome]:
        """Each item's outcome, the valid ones judged together (one Redis round trip)."""
        started = time.perf_counter()
        arrival_ms = self._clock_ms()
        outcomes: list[Outcome | None] = []
        batch: list[tuple[Position, Transaction]] = []
        where: list[int] = []
        for data in items:
            checked = self.validate(data, arrival_ms)
            if isinstance(checked, Invalid):
                outcomes.append(checked)
                continue
            where.append(len(outcomes))
            outcomes.append(None)
            batch.append(((API_SEQUENCE, len(batch)), checked))
        if batch:
            ruleset, model = self.in_force()
            view = self._store.load(batch)
            judgement = judge(batch, view, ruleset, model)
            latency_ms = round((time.perf_counter() - started) * 1000, 3)
            for index, (_, txn), outcome in zip(where, batch, judgement.outcomes, strict=True):
                outcomes[index] = self._answer(txn, outcome, ruleset, model, latency_ms)
            METRICS.incr("api.judged", len(batch))
        return [outcome for outcome in outcomes if outcome is not None]

    @staticmethod
    def _answer(
        txn: Transaction,
        outcome: object,
        ruleset: RuleSet,
        model: ScoringModel | None,
        latency_ms: float,
    ) -> Outcome:
        model_version = model.model_version if model is not None else None
        if outcome is DUPLICATE:
            METRICS.incr("api.duplicate")
            response = ScoreResponse(
                txn.transaction_id, False, None, [], ruleset.version, model_version, duplicate=True
            )
            return Judged(response, txn)
        if not isinstance(outcome, Decided):
            error = getattr(outcome, "error", None)
            return Failed(error if isinstance(error, Exception) else RuntimeError(repr(outcome)))
        decision = outcome.decision
        score = outcome.score
        contributions: list[Contribution] = []
        if score is not None:  # empty below the threshold: only a firing score is explained
            contributions = [Contribution(c.feature, round(c.value, 4)) for c in score.top]
        if decision.flagged:
            METRICS.incr("api.flagged")
        response = ScoreResponse(
            transaction_id=txn.transaction_id,
            flagged=decision.flagged,
            severity=decision.severity,  # type: ignore[arg-type]
            reasons=[Reason(r.rule, r.detail) for r in decision.reasons],
            rules_version=ruleset.version,
            model_version=model_version if score is not None else None,
            model_score=round(score.score, 2) if score is not None else None,
            model_contributions=contributions,
            latency_ms=latency_ms,
        )
        return Judged(response, txn)
