"""Fixtures shared by the model tests: one labelled file and one model trained on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.model.train import train
from load_test.labelled import write_labelled


@pytest.fixture(scope="session")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6,000 realistic records: labels independent of the rules, frauds the rules miss."""
    path = tmp_path_factory.mktemp("labelled") / "labelled.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        write_labelled(handle, 6000, rate=3.0, accounts=300, seed=5, realistic=True)
    return path


@pytest.fixture(scope="session")
def model_dir(labelled: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "model"
    train(labelled, out, holdout_fraction=0.25)
    return out
