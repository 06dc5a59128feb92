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

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consumer.errors import FraudstreamError
from consumer.model.features import (
    CATEGORICAL_FEATURES,
    FEATURE_NAMES,
    NUMERIC_FEATURES,
    STREAM_UNAVAILABLE,
    FeatureRow,
)
from consumer.rules.profile import DEFAULT_LABEL_DELAY_DAYS, MAX_LABEL_DELAY_DAYS

MODEL_FILE = "model.txt"
FEATURES_FILE = "features.json"
FORMAT_VERSION = 1


class ModelLoadError(FraudstreamError, ValueError):
    """A model directory that cannot be used; the message names the path."""


class ModelIncomplete(ModelLoadError):
    """Files that look like a copy still under way: a model.txt cut short, or not the one
    features.json was written with (`model_sha256`). A hot reload waits one check for the rest
    of the copy before it refuses them."""


def model_version(model_bytes: bytes, spec_bytes: bytes, spec: Mapping[str, Any]) -> str:
    """The model's identity on every scored line: the training's `version` (a UTC time) and the
    first 12 hex digits of a sha256 over model.txt and features.json, e.g.
    `20261128T101500Z-3f2a9c1b7d4e`. The same files give the same identity on every worker;
    any change to either file (a retraining, an edited threshold) gives a new one."""
    digest = hashlib.sha256()
    for part in (model_bytes, spec_bytes):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    short = digest.hexdigest()[:12]
    trained = spec.get("version")
    return f"{trained}-{short}" if isinstance(trained, str) and trained else short


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

    def __init__(
        self,
        categories: dict[str, list[str]],
        masked: Sequence[str] = (),
        features: Sequence[str] = FEATURE_NAMES,
    ) -> None:
        numpy, _ = _import_numpy_lightgbm()
        self._np = numpy
        # A model trained before some features existed (e.g. the profiles) names fewer: its
        # columns are picked out of the full row, in its order.
        self._columns = (
            None
            if tuple(features) == FEATURE_NAMES
            else [FEATURE_NAMES.index(name) for name in features]
        )
        # Features the model was trained without (always NaN): features.json "masked" (e.g. the
        # country features: docs/model.md, "Country features").
        self._masked = [FEATURE_NAMES.index(name) for name in masked]
        self._codes: list[tuple[int, dict[str, int]]] = [
            (
                FEATURE_NAMES.index(name),
                {value: code for code, value in enumerate(categories[name])},
            )
            for name in CATEGORICAL_FEATURES
        ]
        # FEATURE_NAMES lists the numeric features first: a row's numeric values are its
        # leading slice, which numpy converts in one call (no per-value Python indexing).
        self._numeric = len(NUMERIC_FEATURES)
        assert FEATURE_NAMES[: self._numeric] == NUMERIC_FEATURES

    def encode(self, rows: list[FeatureRow]) -> Any:
        np = self._np
        matrix = np.empty((len(rows), len(FEATURE_NAMES)), dtype=np.float64)
        if not rows:
            return matrix if self._columns is None else matrix[:, self._columns]
        numeric = self._numeric
        matrix[:, :numeric] = np.array([row[:numeric] for row in rows], dtype=np.float64)
        nan = math.nan
        for column, codes in self._codes:
            get = codes.get
            matrix[:, column] = [get(row[column], nan) for row in rows]  # type: ignore[arg-type]
        if self._masked:
            matrix[:, self._masked] = nan
        if self._columns is not None:
            return matrix[:, self._columns]
        return matrix


class ModelScorer:
    """A loaded model: score_batch(rows) -> (scores 0-100, top-3 contributions per row)."""

    def __init__(
        self, booster: Any, spec: dict[str, Any], source: str | Path, identity: str = ""
    ) -> None:
        numpy, _ = _import_numpy_lightgbm()
        self._np = numpy
        self._booster = booster
        self.path = str(source)  # the directory or S3 prefix it was read from
        # What every line it scored names as model_version (see model_version()).
        self.model_version = identity
        self.feature_names: tuple[str, ...] = tuple(spec["features"])
        self.threshold: float | None = spec.get("threshold")
        self.version: str = str(spec.get("version", ""))
        self.masked: tuple[str, ...] = tuple(spec.get("masked", ()))
        # How long after a transaction its label was known in training: the merchant
        # features' delay (consumer/rules/profile.py). Absent in models from before profiles,
        # which do not read them.
        self.label_delay_days: int = int(spec.get("label_delay_days", DEFAULT_LABEL_DELAY_DAYS))
        self._encoder = Encoder(spec["categories"], self.masked, self.feature_names)

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
        _import_numpy_lightgbm()
        if not path.is_dir():
            raise ModelLoadError(f"model directory {path}: not found or not a directory")
        files: dict[str, bytes] = {}
        for needed in (FEATURES_FILE, MODEL_FILE):
            if not (path / needed).is_file():
                raise ModelLoadError(f"model directory {path}: {needed} is missing")
            try:
                files[needed] = (path / needed).read_bytes()
            except OSError as exc:
                raise ModelLoadError(f"{path / needed}: cannot be read ({exc})") from exc
        return cls.from_files(files, str(path))

    @classmethod
    def from_files(cls, files: Mapping[str, bytes], source: str) -> ModelScorer:
        """A model from the bytes of its files (a directory, or objects under an S3 prefix);
        `source` names where they came from in every error."""
        _, lightgbm = _import_numpy_lightgbm()
        base = source.rstrip("/")
        spec_name, model_name = f"{base}/{FEATURES_FILE}", f"{base}/{MODEL_FILE}"
        for needed in (FEATURES_FILE, MODEL_FILE):
            if needed not in files:
                raise ModelLoadError(f"model {source}: {needed} is missing")
        spec_bytes, model_bytes = files[FEATURES_FILE], files[MODEL_FILE]
        try:
            spec = json.loads(spec_bytes.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ModelLoadError(f"{spec_name}: not valid JSON ({exc})") from exc
        problem = _spec_problem(spec)
        if problem is not None:
            raise ModelLoadError(f"{spec_name}: {problem}")
        digest = hashlib.sha256(model_bytes).hexdigest()
        expected = spec.get("model_sha256")
        if expected is not None and expected != digest:
            raise ModelIncomplete(
                f"model {source}: {MODEL_FILE} is not the one {FEATURES_FILE} was written with "
                f"(sha256 {digest[:12]}, expected {str(expected)[:12]}): files from two "
                "trainings, or an upload under way"
            )
        try:
            text = model_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModelLoadError(f"{model_name}: not a LightGBM model ({exc})") from exc
        _check_model_text(text, model_name)
        try:
            booster = lightgbm.Booster(model_str=text)
        except lightgbm.basic.LightGBMError as exc:
            raise ModelLoadError(f"{model_name}: not a LightGBM model ({exc})") from exc
        if list(booster.feature_name()) != list(spec["features"]):
            raise ModelLoadError(
                f"{model_name}: its features {booster.feature_name()} are not those of "
                f"{FEATURES_FILE}"
            )
        scorer = cls(booster, spec, source, model_version(model_bytes, spec_bytes, spec))
        try:  # a model that loads but cannot score (e.g. a truncated tree) is no model
            scorer.scores([tuple(None for _ in FEATURE_NAMES)])
        except Exception as exc:
            raise ModelLoadError(f"{model_name}: does not score ({exc})") from exc
        return scorer

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

        With `explain_from` (a score, e.g. the rule's threshold), the batch is scored with the raw
        score alone and the contributions (TreeSHAP, far costlier:
        docs/model.md#cost-python--m-benchmodel_score) are computed only for the rows scoring at
        least that; the others get an empty tuple. The scores are the same either way."""
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


def _check_model_text(text: str, name: str) -> None:
    """LightGBM 4.7 aborts or crashes the whole process (SIGABRT, SIGSEGV; measured: docs/model.md,
    "Why the cut-short check") on most model texts cut short, instead of raising: a worker must
    never hand it one. Its text format opens with `tree` and ends with the `end of trees` and
    `end of parameters` lines; a file cut after those loads intact. (Models written by this
    version are also bound to features.json by `model_sha256`, checked before this.)"""
    if not text.startswith("tree\n"):
        raise ModelLoadError(f"{name}: not a LightGBM model (it does not start with `tree`)")
    if "\nend of trees\n" not in text or "\nend of parameters\n" not in text:
        raise ModelIncomplete(
            f"{name}: cut short (no `end of trees` / `end of parameters` line): a copy or an "
            "upload under way, or a truncated file"
        )


def _spec_problem(spec: Any) -> str | None:
    if not isinstance(spec, dict):
        return "not a JSON object"
    if spec.get("format") != FORMAT_VERSION:
        return f"format {spec.get('format')!r} is not {FORMAT_VERSION}"
    features = spec.get("features")
    if (
        not isinstance(features, list)
        or not all(isinstance(name, str) and name in FEATURE_NAMES for name in features)
        or len(set(features)) != len(features)
        or not set(CATEGORICAL_FEATURES) <= set(features)
    ):
        return (
            "its feature list is not one this version computes (features it does not know, "
            "repeated, or without the categorical ones): retrain the model with this version "
            "of fraudstream"
        )
    delay = spec.get("label_delay_days", DEFAULT_LABEL_DELAY_DAYS)
    if not (isinstance(delay, int) and not isinstance(delay, bool)) or not (
        0 <= delay <= MAX_LABEL_DELAY_DAYS
    ):
        return f"label_delay_days: want a whole number of days 0-{MAX_LABEL_DELAY_DAYS}"
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
    digest = spec.get("model_sha256")
    if digest is not None and not (
        isinstance(digest, str) and len(digest) == 64 and set(digest) <= set("0123456789abcdef")
    ):
        return "model_sha256: want the sha256 of model.txt (64 lower-case hex digits)"
    threshold = spec.get("threshold")
    if threshold is not None and not (isinstance(threshold, int | float) and 0 <= threshold <= 100):
        return "threshold: want a number 0-100"
    return None
