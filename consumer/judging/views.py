"""What judging a record needs from around it, as protocols: the state in stream order
(`HistoryView`) and a loaded model (`ScoringModel`). The stream's batch view and the backtest's
replay history are both HistoryViews; consumer/model/stage.py's BatchModel is a ScoringModel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from consumer.records import Transaction
from consumer.rules.history import AccountHistory

if TYPE_CHECKING:
    from consumer.model.features import FeatureRow
    from consumer.model.rule import ModelRule
    from consumer.model.stage import Scored
    from consumer.rules.engine import Decision
    from consumer.rules.ruleset import ModelScoreEntry

__all__ = ["HistoryView", "ScoringModel"]

P_contra = TypeVar("P_contra", contravariant=True)


class HistoryView(Protocol[P_contra]):
    """What judging a record needs of the state, in stream order (consumer/judging/sequence.py).

    Implemented by the stream's BatchView (consumer/state/store.py; positions are (sequence
    number, sub-sequence number)) and the backtest's ReplayHistory (consumer/backtest/history.py;
    positions are record numbers in the file). Per valid record: `is_duplicate` (a producer
    retry: not judged, not added); else `history`, valid until the next `add`; then `add`."""

    def is_duplicate(self, txn: Transaction, position: P_contra, /) -> bool: ...

    def history(self, txn: Transaction, position: P_contra, /) -> AccountHistory: ...

    def add(self, txn: Transaction, position: P_contra, /) -> None: ...


class ScoringModel(Protocol):
    """A loaded model as the pipeline uses it (consumer/model/stage.py BatchModel): a feature
    row per record while it is judged, one vectorised score per batch, then its rule."""

    @property
    def model_version(self) -> str: ...

    def rule_for(self, entry: ModelScoreEntry | None) -> ModelRule | None: ...

    def row(self, txn: Transaction, history: AccountHistory) -> FeatureRow: ...

    def score(self, rows: Sequence[FeatureRow], rule: ModelRule | None = None) -> list[Scored]: ...

    def apply(
        self, decision: Decision, scored: Scored, rule: ModelRule | None = None
    ) -> Decision: ...
