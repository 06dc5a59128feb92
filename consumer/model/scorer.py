"""Scores a whole batch at once with a trained model, and says which features drove each score.

`ModelScorer.load(dir)` reads a model directory written by `fraudstream train`: `model.txt`
(LightGBM's text format: no pickle, nothing executed on load) and `features.json` (the feature
list in column order, the categorical vocabularies, the threshold). Any problem with it is a
ModelLoadError naming the path and what is wrong, so a worker configured with a bad model stops
at start-up instead of scoring nonsense.

`score_batch(rows)` makes one matrix of the batch and one LightGBM call with
`pred_contrib=True`: per row the contribution of every feature to the raw score (TreeSHAP, in
log-odds) plus the bias; their sum is the raw score, the score is 100 * sigmoid(raw). The top
three contributions are the features that pushed that score up the most.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consumer.model.features import (
    CATEGORICAL_FEATURES,
    FEATURE_NAMES,
    STREAM_UNAVAILABLE,
    FeatureRow,
)

MODEL_FILE = "model.txt"
FEATURES_FILE = "features.json"
FORMAT_VERSION = 1


class ModelLoadError(ValueError):
    """A model directory that cannot be used; the message names the path."""


@dataclass(frozen=True, slots=True)
class Contribution:
    """One feature's push on a score, in log-odds (positive: towards fraud)."""

    feature: str
    value: float

    def __str__(self) -> str:
        return f"{self.feature} {self.value:+.2f}"


Top = tuple[Contribution, ...]


@dataclass(frozen=True)
class Explained:
    """Everything score_batch computes, for tests and tools: raw scores, bias, contributions."""

    scores: Any  # numpy float64 array, 0-100
    raw: Any  # numpy float64 array, log-odds
    contributions: Any  # numpy array (rows, features + 1): the last column is the bias


def _import_numpy_lightgbm() -> tuple[Any, Any]:
    try:
        import lightgbm
        import numpy
    except ImportError as exc:  # the `model` extra is not installed
        raise ModelLoadError(
            f"the model score needs LightGBM and numpy: pip install 'fraudstream[model]' ({exc})"
        ) from exc
    return numpy, lightgbm


class Encoder:
    """Feature rows -> a float matrix: categorical strings as their codes in the model's own
    vocabulary (features.json), unknown or absent ones as NaN (LightGBM's "missing")."""

    def __init__(self, categories: dict[str, list[str]], masked: Sequence[str] = ()) -> None:
        numpy, _ = _import_numpy_lightgbm()
        self._np = numpy
        # Features the model was trained without (always NaN): features.json "masked", e.g.
        # the country features of models trained before the state store kept countries.
        self._masked = [FEATURE_NAMES.index(name) for name in masked]
        self._codes: list[tuple[int, dict[str, int]]] = [
            (
                FEATURE_NAMES.index(name),
                {value: code for code, value in enumerate(categories[name])},
            )
            for name in CATEGORICAL_FEATURES
        ]
        categorical = {column for column, _ in self._codes}
        self._numeric = [c for c in range(len(FEATURE_NAMES)) if c not in categorical]

    def encode(self, rows: list[FeatureRow]) -> Any:
        np = self._np
        matrix = np.empty((len(rows), len(FEATURE_NAMES)), dtype=np.float64)
        if not rows:
            return matrix
        numeric = self._numeric
        matrix[:, numeric] = np.array([[row[c] for c in numeric] for row in rows], dtype=np.float64)
        nan = math.nan
        for column, codes in self._codes:
            matrix[:, column] = [codes.get(row[column], nan) for row in rows]  # type: ignore[arg-type]
        if self._masked:
            matrix[:, self._masked] = nan
        return matrix


class ModelScorer:
    """A loaded model: score_batch(rows) -> (scores 0-100, top-3 contributions per row)."""

    def __init__(self, booster: Any, spec: dict[str, Any], path: Path) -> None:
        numpy, _ = _import_numpy_lightgbm()
        self._np = numpy
        self._booster = booster
        self.path = path
        self.feature_names: tuple[str, ...] = tuple(spec["features"])
        self.threshold: float | None = spec.get("threshold")
        self.version: str = str(spec.get("version", ""))
        self.masked: tuple[str, ...] = tuple(spec.get("masked", ()))
        self._encoder = Encoder(spec["categories"], self.masked)

    def require_stream_features(self) -> None:
        """A worker can only score a model trained without what its state store cannot give
        (STREAM_UNAVAILABLE). A model that masked more (an older one) is fine: it scores those
        as missing, as it learned."""
        missing = [name for name in STREAM_UNAVAILABLE if name not in self.masked]
        if missing:
            raise ModelLoadError(
                f"model {self.path}: trained with {', '.join(missing)}, which the worker's state "
                "does not keep; retrain it with this version of `fraudstream train`"
            )

    @classmethod
    def load(cls, directory: str | Path) -> ModelScorer:
        path = Path(directory)
        _, lightgbm = _import_numpy_lightgbm()
        if not path.is_dir():
            raise ModelLoadError(f"model directory {path}: not found or not a directory")
        spec_path = path / FEATURES_FILE
        model_path = path / MODEL_FILE
        for needed in (spec_path, model_path):
            if not needed.is_file():
                raise ModelLoadError(f"model directory {path}: {needed.name} is missing")
        try:
            spec = json.loads(spec_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ModelLoadError(f"{spec_path}: not valid JSON ({exc})") from exc
        problem = _spec_problem(spec)
        if problem is not None:
            raise ModelLoadError(f"{spec_path}: {problem}")
        try:
            booster = lightgbm.Booster(model_file=str(model_path))
        except lightgbm.basic.LightGBMError as exc:
            raise ModelLoadError(f"{model_path}: not a LightGBM model ({exc})") from exc
        if list(booster.feature_name()) != list(spec["features"]):
            raise ModelLoadError(
                f"{model_path}: its features {booster.feature_name()} are not those of "
                f"{spec_path.name}"
            )
        return cls(booster, spec, path)

    def encode(self, rows: list[FeatureRow]) -> Any:
        return self._encoder.encode(rows)

    def scores(self, rows: list[FeatureRow]) -> Any:
        """Scores 0-100 alone (no contributions): the cheapest call."""
        np = self._np
        if not rows:
            return np.empty(0)
        raw = self._booster.predict(self.encode(rows), raw_score=True, num_threads=1)
        return 100.0 / (1.0 + np.exp(-raw))

    def explain_batch(self, rows: list[FeatureRow]) -> Explained:
        np = self._np
        if not rows:
            empty = np.empty(0)
            return Explained(empty, empty, np.empty((0, len(self.feature_names) + 1)))
        contributions = self._booster.predict(self.encode(rows), pred_contrib=True, num_threads=1)
        raw = contributions.sum(axis=1)
        scores = 100.0 / (1.0 + np.exp(-raw))
        return Explained(scores, raw, contributions)

    def score_batch(
        self, rows: list[FeatureRow], k: int = 3, explain_from: float | None = None
    ) -> tuple[Any, list[Top]]:
        """Scores 0-100 (numpy array) and, per row, the k features that pushed it up most
        (positive contributions only, largest first).

        With `explain_from` (a score, e.g. the rule's threshold), the batch is scored with the
        raw score alone and the contributions (TreeSHAP, several times the cost) are computed
        only for the rows scoring at least that; the others get an empty tuple. The scores are
        the same either way."""
        if explain_from is None:
            explained = self.explain_batch(rows)
            return explained.scores, self.top(explained.contributions, k)
        np = self._np
        if not rows:
            return np.empty(0), []
        matrix = self.encode(rows)
        scores = 100.0 / (
            1.0 + np.exp(-self._booster.predict(matrix, raw_score=True, num_threads=1))
        )
        tops: list[Top] = [()] * len(rows)
        chosen = np.flatnonzero(scores >= explain_from)
        if chosen.size:
            contributions = self._booster.predict(matrix[chosen], pred_contrib=True, num_threads=1)
            for index, top in zip(chosen.tolist(), self.top(contributions, k), strict=True):
                tops[index] = top
        return scores, tops

    def top(self, contributions: Any, k: int = 3) -> list[Top]:
        np = self._np
        names = self.feature_names
        features = contributions[:, :-1]
        if features.shape[0] == 0:
            return []
        k = min(k, features.shape[1])
        # argpartition then sort the k: O(n * f) for the batch, no per-row Python sort.
        best = np.argpartition(-features, k - 1, axis=1)[:, :k]
        picked = np.take_along_axis(features, best, axis=1)
        order = np.argsort(-picked, axis=1, kind="stable")
        best = np.take_along_axis(best, order, axis=1)
        picked = np.take_along_axis(picked, order, axis=1)
        return [
            tuple(
                Contribution(names[int(c)], float(v))
                for c, v in zip(cols, values, strict=True)
                if v > 0.0
            )
            for cols, values in zip(best.tolist(), picked.tolist(), strict=True)
        ]


def _spec_problem(spec: Any) -> str | None:
    if not isinstance(spec, dict):
        return "not a JSON object"
    if spec.get("format") != FORMAT_VERSION:
        return f"format {spec.get('format')!r} is not {FORMAT_VERSION}"
    features = spec.get("features")
    if features != list(FEATURE_NAMES):
        return (
            "its feature list is not the one this version computes "
            "(retrain the model with this version of fraudstream)"
        )
    categories = spec.get("categories")
    if not isinstance(categories, dict) or any(
        not isinstance(categories.get(name), list)
        or not all(isinstance(v, str) for v in categories[name])
        for name in CATEGORICAL_FEATURES
    ):
        return f"categories: want a list of strings for each of {', '.join(CATEGORICAL_FEATURES)}"
    masked = spec.get("masked", [])
    if not isinstance(masked, list) or not all(name in FEATURE_NAMES for name in masked):
        return "masked: want a list of feature names"
    threshold = spec.get("threshold")
    if threshold is not None and not (isinstance(threshold, int | float) and 0 <= threshold <= 100):
        return "threshold: want a number 0-100"
    return None
