"""Per-account history in Redis, and its saves off the critical path."""
