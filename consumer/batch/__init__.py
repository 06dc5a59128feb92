"""One batch of records: decode, judge, route to the sinks; the shapes of the lines.

judge.py judges (the per-record sequence the backtest shares, and the pure batch judge),
ports.py says what the pipeline needs of the world, pipeline.py puts them in order.
"""
