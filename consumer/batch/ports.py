"""What the batch pipeline needs of the world, as small protocols and one narrow settings object.

The pipeline (consumer/batch/pipeline.py) decides; everything with I/O or a life of its own is
handed to it by consumer/worker/wiring.py through these shapes: the account state (a Redis store
in production), the line sinks (S3 buffers that the checkpoint policy flushes), the alert sink
(SNS, in this process or a child), the rule set and the model in force (hot-reloaded sources),
and the few settings it reads. Tests drive the same pipeline with in-memory stand-ins that
satisfy the same protocols.

Invariants the protocols carry (each implementation must keep them, the pipeline relies on them):

- **A view is one batch's state.** `StateStore.load` returns a view over the accounts and
  transaction ids of the batch; `HistoryView` answers for a record only from positions strictly
  before its own (so a replay decides as the first pass did) and takes each judged record with
  `add`, in stream order. `prepare_save` hands the view's changes over on the batch's own
  thread; `write` may then run on another thread, and must be safe to repeat (idempotent).
- **Sources answer at batch starts.** `RuleSetProvider.current()` and `ModelProvider.current()`
  are asked once per batch: one rule set and one model (or none) judge the whole batch. A fixed
  rule set or model is a source that never changes (FixedRuleSet, FixedModel), so the pipeline
  has one code path whether or not anything is hot-reloaded.
- **Sinks take lines in stream order.** `LineSink.add` receives each line with the position of
  the record it is about; what is durable when is the checkpoint policy's business, not the
  pipeline's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from consumer.judging.views import HistoryView, ScoringModel
from consumer.records import Position, RecordPosition, Transaction
from consumer.settings.config import RetryConfig
from consumer.sinks.alerts import AlertSink

if TYPE_CHECKING:
    from consumer.rules.config import RulesConfig
    from consumer.rules.ruleset import RuleSet
    from consumer.state.store import PreparedSave, SaveInFlight

__all__ = [
    "NO_MODEL",
    "AlertSink",
    "BatchState",
    "FixedModel",
    "FixedRuleSet",
    "HistoryView",
    "LineSink",
    "ModelProvider",
    "PipelineSettings",
    "RuleSetProvider",
    "ScoringModel",
    "StateStore",
    "model_provider",
]

ViewT = TypeVar("ViewT")


class BatchState(HistoryView[Position], Protocol):
    """A batch's view of the stream's state: its histories, and which of its transactions were
    alerted already (a replay does not alert them again)."""

    def already_alerted(self, transaction_id: str) -> bool: ...


class StateStore(Protocol[ViewT]):
    """The account state: one load and one save per batch (consumer/state/store.py)."""

    def load(
        self,
        items: Sequence[tuple[Position, Transaction]],
        in_flight: SaveInFlight | None = None,
    ) -> ViewT:
        """The state the batch's valid records need; waits for `in_flight` (the previous
        batch's save) only where it must."""
        ...

    def prepare_save(self, view: ViewT) -> PreparedSave:
        """What the batch changed, ready to write from another thread."""
        ...

    def write(self, prepared: PreparedSave) -> int:
        """Write a prepared save (idempotent: a retry may send it again)."""
        ...

    def mark_alerted(self, view: ViewT, transaction_ids: Iterable[str]) -> int:
        """After the alert sink accepted these alerts: a replay must not send them again."""
        ...


class LineSink(Protocol):
    """Where the pipeline hands output lines: flagged, shadow, decisions, dead letters. The
    checkpoint policy makes them durable (consumer/worker/checkpointing.py)."""

    def add(self, line: bytes, position: RecordPosition) -> None: ...


class RuleSetProvider(Protocol):
    """The rule set in force (consumer/reload/rulesets.py RuleSetSource, or FixedRuleSet)."""

    def current(self) -> RuleSet: ...


@runtime_checkable
class ModelProvider(Protocol):
    """The model in force, None without one (consumer/reload/models.py ModelSource, or
    FixedModel)."""

    def current(self) -> ScoringModel | None: ...


class FixedRuleSet:
    """A rule set that never changes, as a source."""

    __slots__ = ("ruleset",)

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset

    def current(self) -> RuleSet:
        return self.ruleset


class FixedModel:
    """A model that never changes (or none), as a source."""

    __slots__ = ("model",)

    def __init__(self, model: ScoringModel | None) -> None:
        self.model = model

    def current(self) -> ScoringModel | None:
        return self.model


NO_MODEL = FixedModel(None)


def model_provider(model: ModelProvider | ScoringModel | None) -> ModelProvider:
    """`model` as a source: a source as it is, a bare model wrapped in a FixedModel, None as
    NO_MODEL. Decided once, where the pipeline is built, not at every batch."""
    if model is None:
        return NO_MODEL
    if isinstance(model, ModelProvider):
        return model
    return FixedModel(model)


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    """The settings the pipeline reads, built from the worker's Settings by
    consumer/worker/wiring.py (`pipeline_settings`). The field names are Settings' own."""

    # The retry budget of every state load, save and alerted mark.
    retry: RetryConfig
    # The lowest severity that is alerted.
    alert_severity: str
    # A record whose timestamp lies further than this after its arrival is dead-lettered.
    timestamp_max_ahead_s: int
    # The contract rules' parameters: what a pipeline given no rule-set source judges with.
    rules: RulesConfig
