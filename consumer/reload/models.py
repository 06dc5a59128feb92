"""The model in force, and its hot reload from a directory or an S3 prefix (FRAUD_MODEL_DIR).

A retrained model reaches running workers without a restart: every FRAUD_MODEL_CHECK_S seconds,
at the start of a batch, each processor checks the model's two files (a stat of each, or a
conditional GET by ETag of each object) and, when either changed, reads both and loads them
with the same checks as at start-up. A model that loads scores from that batch on; one that
does not is refused (`model_refused`, `model.refused` -> ModelRefused) and the model in force
goes on. A batch is scored by one model, which every line it scored names (`model_version`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from consumer.model.scorer import (
    FEATURES_FILE,
    MODEL_FILE,
    ModelIncomplete,
    ModelLoadError,
    ModelScorer,
)
from consumer.model.stage import BatchModel, batch_model
from consumer.reload.hot_source import Fetched, FileFetcher, FileSetFetcher, HotReload, S3Fetcher
from consumer.settings.config import Settings
from consumer.settings.s3_uri import is_s3, parse_s3

MODEL_FILES = (MODEL_FILE, FEATURES_FILE)


def model_fetcher(source: str, s3: Callable[[], Any]) -> FileSetFetcher:
    """The model's files in a directory or under `s3://bucket/prefix/`."""
    if is_s3(source):
        bucket, prefix = parse_s3(source)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        client = s3()
        return FileSetFetcher(
            f"s3://{bucket}/{prefix}",
            {name: S3Fetcher(client, bucket, prefix + name) for name in MODEL_FILES},
        )
    return FileSetFetcher(
        source, {name: FileFetcher(os.path.join(source, name)) for name in MODEL_FILES}
    )


class ModelSource:
    """Holds the model in force and swaps in a new one that loads when its files change."""

    def __init__(
        self,
        fetcher: FileSetFetcher,
        settings: Settings,
        check_every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self.name = fetcher.name
        try:
            fetched = fetcher.fetch(None)
        except Exception as exc:  # start-up names the model and why, whatever it was
            raise ModelLoadError(f"model {fetcher.name}: cannot be read ({exc})") from exc
        if fetched is None:  # cannot happen without a tag; keeps the types honest
            raise ModelLoadError(f"model {fetcher.name}: nothing to read")
        self._reload: HotReload[dict[str, bytes], BatchModel] = HotReload(
            "model",
            fetcher,
            settings.model_check_s if check_every_s is None else check_every_s,
            self._load,
            lambda model: model.model_version,
            self._load(fetched),
            fetched.tag,
            refusals=(ModelLoadError,),
            pending=(ModelIncomplete,),
            clock=clock,
        )

    @property
    def model(self) -> BatchModel:
        return self._reload.value

    @property
    def last_refusal(self) -> str | None:
        """Why the newest version was refused, if it was."""
        return self._reload.last_refusal

    def current(self) -> BatchModel:
        """The model for this batch: checks the source when the interval has passed."""
        return self._reload.current()

    def _load(self, fetched: Fetched[dict[str, bytes]]) -> BatchModel:
        try:
            return batch_model(ModelScorer.from_files(fetched.data, self.name), self._settings)
        except ModelLoadError:
            raise
        except Exception as exc:  # a model that breaks the loader is refused, not fatal
            raise ModelLoadError(f"model {self.name}: {exc!r}") from exc


def model_source(settings: Settings, s3: Callable[[], Any]) -> ModelSource | None:
    """The model FRAUD_MODEL_DIR names, hot-reloaded; None when none is configured. Raises
    ModelLoadError naming the source when it cannot be used at start-up."""
    if settings.model_dir is None:
        return None
    return ModelSource(model_fetcher(settings.model_dir, s3), settings)
