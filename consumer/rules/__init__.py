"""The pure rules core: judge(transaction, history, config) -> Decision.

It knows nothing of Redis, boto3 or the KCL, so the same code serves the stream, an offline
backtest and the benchmarks, and it is tested exhaustively with plain data.
"""

from consumer.rules.engine import Decision, History, Reason, judge, severity_at_least

__all__ = ["Decision", "History", "Reason", "judge", "severity_at_least"]
