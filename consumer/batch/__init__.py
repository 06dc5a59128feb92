"""One batch of records: decode, judge, route to the sinks; the shapes of the lines.

ports.py says what the pipeline needs of the world (the state store, line and alert sinks, the
rule set and model in force, its narrow settings); pipeline.py puts decoding, judging (the
per-record sequence of consumer/judging/, shared with the backtest) and routing in order;
lines.py shapes what is written; timeliness.py refuses timestamps too far ahead.
"""
