"""The consumer's outputs: S3 batches of flagged transactions, dead letters, SNS alerts."""
