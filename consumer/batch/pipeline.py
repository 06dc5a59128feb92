"""One batch of Kinesis records in, outputs handed to the sinks: decode, judge, route.

Nothing here checkpoints: the CheckpointPolicy decides when handed-over outputs are durable.
Every record leaves this function in exactly one place: the dead letters (invalid), nowhere
(a producer-retry duplicate, counted), the flagged buffer and maybe the alert list, or nowhere
(judged and clean). Its effect on the account's history goes to the state store, once per batch.

The pipeline owns the order of things and nothing else. Judging is consumer/judging/sequence.py's
`judge` (pure: the same code judges a backtest, record by record); the world is reached through
the protocols of consumer/batch/ports.py (the state store, the line and alert sinks, the rule
set and model sources) and the few settings it reads (PipelineSettings), all handed in by
consumer/worker/wiring.py. So the pipeline can be driven with in-memory stand-ins, and the
outputs depend only on the records, the state and the rule set and model in force.

A rule that raises on a record (a custom rule's arithmetic, a bug, MemoryError) or a model that
fails on it costs that rule its say, not the record its verdict: the other rules decide and
alert, the failure is counted by rule (`rule_errors.<id>`, CloudWatch RuleErrors) and logged
(`rule_error`, at most one line per rule per RULE_ERROR_LOG_EVERY_S). Only a record that cannot
be judged at all goes to the dead letters as `internal`.
"""

from __future__ import annotations

import binascii
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from consumer.batch.lines import dead_letter_line, decision_line, flagged_line, to_json
from consumer.batch.ports import (
    AlertSink,
    BatchState,
    FixedRuleSet,
    LineSink,
    ModelProvider,
    PipelineSettings,
    RuleSetProvider,
    ScoringModel,
    StateStore,
    model_provider,
)
from consumer.batch.timeliness import too_far_ahead
from consumer.infra.cloudwatch import MODEL_SCORE, MODEL_SCORED
from consumer.infra.logs import get_logger
from consumer.infra.metrics import METRICS
from consumer.infra.retry import REDIS_ERRORS, call_with_retries
from consumer.judging.sequence import DUPLICATE, Decided, Judgement, NotJudged, judge
from consumer.model.rule import RULE_ID as MODEL_RULE_ID
from consumer.records import (
    InvalidRecord,
    Position,
    RecordPosition,
    Transaction,
    parse_transaction,
    position_of,
)
from consumer.reload.rulesets import builtin_ruleset
from consumer.rules import severity_at_least
from consumer.rules.config import SEVERITIES
from consumer.rules.engine import Decision, RuleErrors
from consumer.rules.ruleset import RuleSet, RuleSetDecision
from consumer.sinks.alert_dispatch import AlertDispatcher
from consumer.sinks.alerts import Alert, RejectedAlert
from consumer.state.writer import StateWriter

log = get_logger(__name__)

# A valid record on its way to the judge: where it is, its state position, the transaction, and
# its bytes as received (what a dead letter keeps if judging it fails).
_Valid = tuple[RecordPosition, Position, Transaction, bytes]

# The batch's view of the state: what the store's load gives and its save and marks take.
ViewT = TypeVar("ViewT", bound=BatchState)

# The in-process counter of a rule's failures, by rule id (consumer/infra/cloudwatch.py:
# RuleErrors).
RULE_ERRORS = "rule_errors."
# The score histogram's buckets: whole points 0..99, and 100 for a score of exactly 100.
SCORE_BUCKETS = 101
# At most one `rule_error` log line per rule (and one `model_score_failed`) per this many
# seconds, per shard; the next line says how many were held back meanwhile.
RULE_ERROR_LOG_EVERY_S = 60.0


class RateLimit:
    """At most one log line per key per `every_s` seconds (of `clock`, monotonic).

    `allow(key)` is None while the key is held back (counted), else the number held back since
    its last line. Keys are rule ids, a few dozen; past `max_keys` (rule sets renaming rules over
    months) the memory starts afresh."""

    def __init__(
        self,
        every_s: float = RULE_ERROR_LOG_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 1000,
    ) -> None:
        self._every_s = every_s
        self._clock = clock
        self._max_keys = max_keys
        self._last: dict[str, tuple[float, int]] = {}  # key -> (last line at, held back since)

    def allow(self, key: str) -> int | None:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self._every_s:
            self._last[key] = (last[0], last[1] + 1)
            return None
        if last is None and len(self._last) >= self._max_keys:
            self._last.clear()
        self._last[key] = (now, 0)
        return last[1] if last is not None else 0


class KinesisRecord(Protocol):
    """What the pipeline needs of a record (amazon_kclpy.messages.Record has it)."""

    @property
    def binary_data(self) -> bytes: ...
    @property
    def sequence_number(self) -> str: ...
    @property
    def sub_sequence_number(self) -> int | None: ...
    @property
    def timestamp_millis(self) -> int: ...
    @property
    def data(self) -> str: ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BatchPipeline(Generic[ViewT]):
    """Judges the records of one shard and routes every outcome to its sink."""

    def __init__(
        self,
        shard_id: str,
        settings: PipelineSettings,
        flagged: LineSink,
        dead_letters: LineSink,
        alerts: AlertSink,
        store: StateStore[ViewT],
        now: Callable[[], datetime] = _utc_now,
        rulesets: RuleSetProvider | None = None,
        shadow: LineSink | None = None,
        decisions: LineSink | None = None,
        model: ModelProvider | ScoringModel | None = None,
        error_log: RateLimit | None = None,
    ) -> None:
        """`rulesets` None: the contract rules as `settings.rules` configure them. `model`: a
        source (hot-reloaded), a model (fixed) or None (no score)."""
        self.shard_id = shard_id
        self._rulesets = rulesets or FixedRuleSet(builtin_ruleset(settings.rules))
        self._shadow = shadow
        self._decisions = decisions  # the optional audit trail: every judged transaction
        # The optional model score (consumer/model/stage.py), hot-reloaded when it comes from a
        # ModelSource (consumer/reload/models.py).
        self._models = model_provider(model)
        self._retry = settings.retry
        self._alert_severity = settings.alert_severity
        self._max_ahead_s = settings.timestamp_max_ahead_s
        self._flagged = flagged
        self._dead_letters = dead_letters
        self._alerts = alerts
        self._store = store
        self._now = now
        self._dispatch = AlertDispatcher()
        self._state_writer = StateWriter()
        # The `rule_error` and `model_score_failed` lines: a rule failing on every record must
        # not flood the logs (the counts are in the metrics).
        self._error_log = error_log or RateLimit()

    def process(self, records: Iterable[KinesisRecord]) -> RecordPosition | None:
        """Route every record; queue this batch's alerts; return the last record's position.

        Order: decode everything, decide everything in memory, hand the state save to the
        background writer and the alerts to the background dispatcher (publish, then mark the
        alerted transactions once SNS accepted them and the save is written);
        `settle_in_flight` waits for both before any checkpoint. Whatever part of that a crash
        interrupts, the replay decides the same: state writes are idempotent and hidden from
        earlier positions.
        """
        self._dead_letter_rejected(self._dispatch.poll())
        # Checked at every batch, empty ones too: a new version is in force (and logged) within
        # FRAUD_RULESET_CHECK_S on a quiet shard as well, and one version judges the whole batch.
        ruleset = self._rulesets.current()
        # Likewise the model: one model scores the whole batch.
        model = self._models.current()
        last: RecordPosition | None = None
        valid: list[_Valid] = []
        max_ahead_s = self._max_ahead_s
        for record in records:
            position = RecordPosition(
                self.shard_id,
                record.sequence_number,
                record.sub_sequence_number or 0,
                record.timestamp_millis,
            )
            last = position
            try:
                data = record.binary_data
            except (binascii.Error, ValueError) as exc:
                self._dead_letter(str(record.data).encode(), position, f"data: not base64 ({exc})")
                continue
            parsed = parse_transaction(data)
            if isinstance(parsed, InvalidRecord):
                self._dead_letter(data, position, parsed.reason)
                continue
            ahead = too_far_ahead(parsed, record.timestamp_millis, max_ahead_s)
            if ahead is not None:
                self._dead_letter(data, position, ahead)
                continue
            valid.append(
                (
                    position,
                    position_of(record.sequence_number, position.sub_sequence_number),
                    parsed,
                    data,
                )
            )
        if valid:
            self._judge(valid, ruleset, model)
        return last

    def _dead_letter(
        self, data: bytes, position: RecordPosition, reason: str, metric: str = "records.invalid"
    ) -> None:
        METRICS.incr(metric)
        self._dead_letters.add(to_json(dead_letter_line(data, position, reason)).encode(), position)
        log.info("record_dead_lettered", sequence_number=position.sequence_number, error=reason)

    def _judge(self, valid: list[_Valid], ruleset: RuleSet, model: ScoringModel | None) -> None:
        retry = self._retry
        batch = [(pos, txn) for _, pos, txn, _ in valid]
        # The previous batch's save may still be on its way: the load waits for it if it must.
        in_flight = self._state_writer.in_flight()
        view = call_with_retries(
            "redis_load",
            lambda: self._store.load(batch, in_flight),
            retry,
            retry_on=REDIS_ERRORS,
        )
        detected_at = self._now()
        judgement = judge(batch, view, ruleset, model)
        alerts = self._route(valid, judgement, view, ruleset, model, detected_at)
        # Both in the background: the state save (waited for before the next batch loads) and
        # the alerts (the alerted marks follow once SNS accepted them and the save is written).
        # Both are settled before the next checkpoint; a crash before that replays the records.
        prepared = self._store.prepare_save(view)
        saved = self._state_writer.submit(
            lambda: call_with_retries(
                "redis_save", lambda: self._store.write(prepared), retry, retry_on=REDIS_ERRORS
            ),
            prepared,
        )
        if alerts:
            self._dead_letter_rejected(
                self._dispatch.submit(lambda: self._publish_and_mark(alerts, view, saved))
            )

    def _route(
        self,
        valid: list[_Valid],
        judgement: Judgement,
        view: ViewT,
        ruleset: RuleSet,
        model: ScoringModel | None,
        detected_at: datetime,
    ) -> list[Alert]:
        """Every outcome to its sink, in stream order; the batch's alerts (not yet sent).

        Reported in the order they arose while judging: first each record's duplicate, failure
        to be judged, model row failure and rule errors; then a failed batch score; then, record
        by record, the model rule's failures and the outputs."""
        outcomes = judgement.outcomes
        duplicates = flagged = alerted = 0
        hits: Counter[str] = Counter()  # flagged.rule.<id>, flagged.severity.<top severity>
        # The batch's score histogram, by whole point (SCORE_BUCKETS): counted in this pass and
        # reported with one incr_many, never a metric call per record.
        scores = [0] * SCORE_BUCKETS
        decided: list[tuple[_Valid, Decided]] = []
        for record, outcome in zip(valid, outcomes, strict=True):
            record_position = record[0]
            if isinstance(outcome, Decided) and outcome.score is not None:
                value = outcome.score.score
                if 0.0 < value < 100.0:
                    scores[int(value)] += 1
                elif value <= 0.0:
                    scores[0] += 1
                elif value >= 100.0:
                    scores[100] += 1
                # NaN fits nowhere: not counted (a model does not give one; a bug must not
                # raise here).
            if outcome is DUPLICATE:
                duplicates += 1
                log.info("record_duplicate", sequence_number=record_position.sequence_number)
            elif isinstance(outcome, NotJudged):
                self._not_judged(record[3], record_position, outcome.error)
            elif isinstance(outcome, Decided):
                if outcome.row_error is not None and model is not None:
                    self._model_failed(model, "row", outcome.row_error, record_position)
                if outcome.verdict.rule_errors:
                    self._rule_errors(outcome.verdict.rule_errors, record_position, ruleset.version)
                decided.append((record, outcome))
        if judgement.score_error is not None and model is not None:
            self._score_failed(model, judgement.rows, judgement.score_error)
        alerts: list[Alert] = []
        for (record_position, _, txn, data), outcome in decided:
            score = outcome.score
            try:
                if outcome.apply_error is not None and model is not None:
                    self._model_failed(model, "apply", outcome.apply_error, record_position)
                verdict, decision = outcome.verdict, outcome.decision
                # With its score, every line names the model that gave it.
                model_fields = (
                    {}
                    if score is None or model is None
                    else {
                        "model_score": round(score.score, 2),
                        "model_version": model.model_version,
                    }
                )
                if verdict.shadow:
                    self._shadow_hits(txn, verdict, ruleset, record_position, detected_at)
                if self._decisions is not None:
                    line = decision_line(txn, decision, record_position, ruleset.version)
                    line.update(model_fields)
                    self._decisions.add(to_json(line).encode(), record_position)
                if not decision.flagged or decision.severity is None:
                    continue
                flagged_fields = flagged_line(
                    txn, decision, record_position, detected_at, ruleset.version
                )
                flagged_fields.update(model_fields)
                message = to_json(flagged_fields)
            except Exception as exc:
                self._not_judged(data, record_position, exc)
                continue
            flagged += 1
            hits.update(f"flagged.rule.{r.rule}" for r in decision.reasons)
            hits[f"flagged.severity.{decision.severity}"] += 1
            self._flagged.add(message.encode(), record_position)
            if not severity_at_least(decision.severity, self._alert_severity):
                continue
            # The decision to alert, counted whether or not this copy is sent (a replay's
            # transactions were alerted already): the alert rate is the judging's, not SNS's.
            alerted += 1
            if not view.already_alerted(txn.transaction_id):
                alerts.append(
                    Alert(
                        transaction_id=txn.transaction_id,
                        account_id=txn.account_id,
                        severity=decision.severity,
                        rules=tuple(r.rule for r in decision.reasons),
                        message=message,
                        position=record_position,
                    )
                )
        METRICS.incr("records.judged", len(valid) - duplicates)
        METRICS.incr("records.duplicate", duplicates)
        METRICS.incr("records.flagged", flagged)
        METRICS.incr("records.alerted", alerted)
        for name, hit_count in hits.items():
            METRICS.incr(name, hit_count)
        if model is not None:
            self._report_scores(scores)
        return alerts

    @staticmethod
    def _report_scores(scores: list[int]) -> None:
        """The batch's score histogram (`model.score.<n>`, records scored in [n, n+1)) and how
        many were scored (`model.scored`, 0 too: a model was in force but scored nothing); the
        CloudWatch publisher turns them into ModelScoreBand{Band}, ModelScore and ModelScored
        (consumer/infra/cloudwatch.py), so that drift in the scores shows per interval."""
        counts: dict[str, float] = {
            f"{MODEL_SCORE}{bucket}": records for bucket, records in enumerate(scores) if records
        }
        counts[MODEL_SCORED] = sum(scores)
        METRICS.incr_many(counts)

    def _score_failed(self, model: ScoringModel, rows: int, error: Exception) -> None:
        """The batch's score failed: the batch is left to the rules (logged and counted) rather
        than stopping the shard in a crash loop."""
        METRICS.incr("records.internal_error")
        METRICS.incr(f"{RULE_ERRORS}{MODEL_RULE_ID}", rows)  # records without a score
        suppressed = self._error_log.allow("model_score_failed")
        if suppressed is not None:
            log.exception(
                "model_score_failed",
                exc_info=error,
                rows=rows,
                model_version=model.model_version,
                suppressed=suppressed,
            )

    def _model_failed(
        self, model: ScoringModel, stage: str, exc: Exception, position: RecordPosition
    ) -> None:
        """The model failed on one record: counted and logged as a `model_score` rule error."""
        METRICS.incr(f"{RULE_ERRORS}{MODEL_RULE_ID}")
        suppressed = self._error_log.allow(MODEL_RULE_ID)
        if suppressed is not None:
            log.warning(
                "rule_error",
                rule=MODEL_RULE_ID,
                error=type(exc).__name__,
                stage=stage,
                model_version=model.model_version,
                shard_id=self.shard_id,
                sequence_number=position.sequence_number,
                suppressed=suppressed,
            )

    def _rule_errors(
        self, errors: RuleErrors, position: RecordPosition, rules_version: str
    ) -> None:
        """Rules that raised on a record (and so did not fire): counted by rule, and logged at
        most once per rule per interval. The exception's type only: its text may quote the
        record, and the record is found by its sequence number."""
        for rule, error in errors:
            METRICS.incr(f"{RULE_ERRORS}{rule}")
            suppressed = self._error_log.allow(rule)
            if suppressed is not None:
                log.warning(
                    "rule_error",
                    rule=rule,
                    error=error,
                    rules_version=rules_version,
                    shard_id=self.shard_id,
                    sequence_number=position.sequence_number,
                    suppressed=suppressed,
                )

    def _not_judged(self, data: bytes, position: RecordPosition, exc: Exception) -> None:
        """A record that breaks the judge must not stop the shard (a crash loop): it is kept
        with its reason, and the bug shows in the logs and the dead letters."""
        log.exception("record_not_judged", exc_info=exc, sequence_number=position.sequence_number)
        self._dead_letter(data, position, f"internal: {exc!r}", "records.internal_error")

    def _shadow_hits(
        self,
        txn: Transaction,
        verdict: RuleSetDecision,
        ruleset: RuleSet,
        position: RecordPosition,
        detected_at: datetime,
    ) -> None:
        """Shadow rules are watched, never acted on: counted, and written under `shadow/`."""
        for reason in verdict.shadow:
            METRICS.incr(f"shadow.rule.{reason.rule}")
        if self._shadow is None:
            return
        top = max((ruleset.severity(r.rule) for r in verdict.shadow), key=SEVERITIES.index)
        shadow_decision = Decision(reasons=verdict.shadow, severity=top)
        line = flagged_line(txn, shadow_decision, position, detected_at, verdict.rules_version)
        line["flagged_by_live_rules"] = verdict.decision.flagged
        self._shadow.add(to_json(line).encode(), position)

    def _publish_and_mark(
        self, alerts: list[Alert], view: ViewT, saved: Future[int]
    ) -> list[RejectedAlert]:
        """The background half of a batch: publish its alerts, then mark them, so a replay does
        not send them again (one SNS refused goes to the dead letters, also once). The marks
        update the transaction keys the batch's save creates: they wait for it."""
        rejected = self._alerts.publish(alerts)
        saved.result()
        alerted = [alert.transaction_id for alert in alerts]
        call_with_retries(
            "redis_mark_alerted",
            lambda: self._store.mark_alerted(view, alerted),
            self._retry,
            retry_on=REDIS_ERRORS,
        )
        return rejected

    def settle_in_flight(self) -> None:
        """Wait until the state save is written and every queued alert is published and marked
        (before a checkpoint); keep the alerts SNS refused in the dead letters. Raises if a
        save or a publish gave up."""
        self._state_writer.wait()
        self._dead_letter_rejected(self._dispatch.settle())

    def close(self, timeout_s: float = 5.0) -> None:
        """The shard's work here is over: end the alert sink (its process, if it has one);
        `timeout_s` 0 when the processor is giving up and nothing more may be published."""
        self._alerts.close(timeout_s)

    def discard_in_flight(self) -> None:
        """Lease lost: queued alerts are dropped; the new owner's replay judges them again. A
        state save in flight finishes: its writes are idempotent and position-tagged."""
        self._dispatch.discard()

    def _dead_letter_rejected(self, rejected: list[RejectedAlert]) -> None:
        for refusal in rejected:
            reason = f"alert rejected by SNS ({refusal.code}): {refusal.reason}"
            self._dead_letter(
                refusal.alert.message.encode(),
                refusal.alert.position,
                reason,
                "alerts.dead_lettered",
            )
