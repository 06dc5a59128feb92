"""The one root of every exception fraudstream raises on purpose.

Each package raises its own subclasses (rules: RuleSetError, ExpressionError, EvaluationError;
settings: ConfigError, RulesConfigError; reload: RuleSetRefused; sinks and infra: OutputGaveUp;
worker: PreflightError, LeaseGone, CheckpointFailed; model: ModelLoadError, DatasetError,
TrainError; backtest: UnreadableInput, PartitionError; local: StackError), each also keeping the
built-in base it had (ValueError, RuntimeError, OSError, ArithmeticError), so existing `except`
clauses still hold. `except FraudstreamError` catches what the package meant to raise and nothing
else: a bug stays a traceback in tests and a logged `internal` error in the worker.
"""

from __future__ import annotations

__all__ = ["FraudstreamError"]


class FraudstreamError(Exception):
    """Raised on purpose by fraudstream; the message says what and where, for a person."""
