"""Files into the stream (`fraudstream ingest`): CSV or JSON Lines rows validated as the stream
would, put to Kinesis with the producer's retry and per-account order (docs/ingest.md)."""
