"""One batch of records: decode, judge, route to the sinks; the shapes of the lines."""
