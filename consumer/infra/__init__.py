"""The plumbing every part shares: AWS clients, retries, logs, metrics."""
