"""`fraudstream backtest --model`: the model's rows are the ones training and compare-model
build (same profiles, same labels at the same time), so its flags are the scores of those rows
at the threshold; it refuses a split run and a missing model with a message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from consumer.cli import main


@pytest.fixture(scope="module")
def sim_and_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from consumer.model.train import train
    from load_test.simulator import main as simulate

    where = tmp_path_factory.mktemp("backtest_model")
    path = where / "sim.jsonl"
    assert simulate([str(path), "--small", "--days", "14", "--no-progress"]) == 0
    model = where / "model"
    train(path, model, label_delay_days=3)
    return path, model


def test_the_model_flags_what_its_training_rows_score(
    sim_and_model: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from consumer.model.dataset import judged
    from consumer.model.features import features_for
    from consumer.model.scorer import ModelScorer

    path, model = sim_and_model
    rules = Path(__file__).parents[3] / "docs" / "rules.example.yaml"
    assert (
        main(
            [
                "backtest",
                "--rules",
                str(rules),
                "--input",
                str(path),
                "--model",
                str(model),
                "--json",
                "--no-progress",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    scorer = ModelScorer.load(model)
    assert scorer.label_delay_days == 3
    rows = [features_for(t, h, 3) for _, t, h in judged(path, label_delay_days=3)]
    scores = np.concatenate([scorer.scores(rows[i : i + 5000]) for i in range(0, len(rows), 5000)])
    section = report["model"]
    assert section["label_delay_days"] == 3
    assert section["scored"] == len(rows) == report["judged"]
    assert section["flagged"] == int((scores >= section["threshold"]).sum()) > 0
    assert 0 < section["recall"] <= section["rules_or_model"]["recall"] <= 1

    # Another delay: other rows, other flags (the labels reach the profiles at another time).
    assert (
        main(
            [
                "backtest",
                "--rules",
                str(rules),
                "--input",
                str(path),
                "--model",
                str(model),
                "--label-delay-days",
                "0",
                "--json",
                "--no-progress",
            ]
        )
        == 0
    )
    other = json.loads(capsys.readouterr().out)["model"]
    assert other["label_delay_days"] == 0 and other["flagged"] != section["flagged"]


def test_a_split_run_or_a_missing_model_is_refused(
    sim_and_model: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, model = sim_and_model
    rules = Path(__file__).parents[3] / "docs" / "rules.example.yaml"
    base = ["backtest", "--rules", str(rules), "--input", str(path), "--no-progress"]
    assert main([*base, "--model", str(model), "--jobs", "2"]) == 2
    assert "one process" in capsys.readouterr().err
    assert main([*base, "--model", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
