"""Judging records, defined once: the per-record sequence (duplicate check, history, judge, add)
over a history view, shared by the stream's pipeline, the backtest and what judges next.

Pure: no I/O, no logs, no metrics. It sits below both `batch/` and `backtest/` (and `model/`,
whose training replays the backtest's history), so each of them can call it.
"""
