"""The synchronous scoring API (`fraudstream serve`): one transaction judged now, by the engine
the stream uses, over HTTP (docs/api.md)."""
