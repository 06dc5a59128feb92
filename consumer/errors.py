"""The one root of every exception fraudstream raises on purpose.

Each package raises its own subclasses (rules: RuleSetError, ExpressionError, EvaluationError;
settings: ConfigError, RulesConfigError; reload: RuleSetRefused, LastGoodUnusable; infra (and the
sinks through it): OutputGaveUp, PartialFailure; worker: PreflightError, LeaseGone,
CheckpointFailed; model: ModelLoadError, DatasetError, TrainError; backtest: UnreadableInput,
PartitionError; local: StackError; cli: ScaleError), most also deriving from a built-in base
(ValueError, RuntimeError, OSError, ArithmeticError), so an `except` clause naming that base
catches them too. `except FraudstreamError` catches what the package meant to raise and nothing
else: a bug stays a traceback in tests and a logged `internal` error in the worker.
"""

from __future__ import annotations

__all__ = ["FraudstreamError"]


class FraudstreamError(Exception):
    """Raised on purpose by fraudstream; the message says what and where, for a person."""
