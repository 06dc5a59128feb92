"""Offline backtest: the stream's engine and history semantics over a file of records.

`fraudstream backtest` (consumer/cli/backtest.py) reads records in file order (stream order),
builds each transaction's history in memory exactly as the stream's state store would
(consumer.backtest.history), judges it with `judge_with_ruleset` for a new rule set and a
baseline in one pass (consumer.backtest.run) and reports per rule (consumer.backtest.report).
"""
