"""A retrained model swapped in under the running daemon (issue #8): the lines scored after the
swap carry the new `model_version`, with no restart and nothing lost; a broken model is refused
and the one in force keeps scoring. Its own stack: what scores a record depends on when the
files changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from consumer.infra.readback import read_jsonl_objects
from consumer.local.stack import running_pids
from consumer.model.train import train
from load_test.labelled import write_labelled
from tests.integration.conftest import Stack, stack_started_in_process
from tests.integration.test_hot_reload import burst, caught_up, wait_for_events, worker_events
from tests.unit.reload.test_model_source import put_model, version_of

pytestmark = pytest.mark.integration

# high_amount flags every record of a burst, so every one has a flagged line with its score.
FLAGGED_AMOUNT = 20000


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two models of the same data: the second another split, so other trees and version."""
    scratch = tmp_path_factory.mktemp("models")
    labelled = scratch / "labelled.jsonl"
    with labelled.open("w", encoding="utf-8") as handle:
        write_labelled(handle, 6000, rate=3.0, accounts=300, seed=5, realistic=True)
    train(labelled, scratch / "first")
    train(labelled, scratch / "second", valid_fraction=0.3, holdout_fraction=0.4)
    return scratch / "first", scratch / "second"


@pytest.fixture(scope="module")
def reloading(
    tmp_path_factory: pytest.TempPathFactory, models: tuple[Path, Path]
) -> Iterator[tuple[Stack, Path]]:
    state_dir = tmp_path_factory.mktemp("model-reload") / ".fraudstream"
    state_dir.mkdir(parents=True)
    live = state_dir / "model"
    put_model(models[0], live)
    worker_env = {
        "FRAUD_FLUSH_MAX_AGE_S": "1",
        "FRAUD_MODEL_DIR": str(live),
        "FRAUD_MODEL_CHECK_S": "1",
    }
    with stack_started_in_process(state_dir, worker_env) as stack:
        yield stack, live


def model_versions(stack: Stack) -> dict[str, str]:
    lines = read_jsonl_objects(stack.client("s3"), stack.env["FRAUD_BUCKET"], "flagged/")
    return {line["transaction_id"]: line["model_version"] for _, line in lines}


def test_a_retrained_model_scores_the_next_batches_and_a_broken_one_is_refused(
    reloading: tuple[Stack, Path], models: tuple[Path, Path]
) -> None:
    stack, live = reloading
    first, second = version_of(models[0]), version_of(models[1])
    assert first != second
    worker_pid = running_pids(stack.options)["worker-1"]

    before = burst(stack, "before", amount=FLAGGED_AMOUNT)
    caught_up(stack)
    assert {tid: model_versions(stack).get(tid) for tid in before} == dict.fromkeys(before, first)

    put_model(models[1], live)  # model.txt, then features.json: a moment of a half upload
    wait_for_events(stack, "model_loaded", 2)  # one processor per shard
    after = burst(stack, "after", amount=FLAGGED_AMOUNT)
    caught_up(stack)
    versions = model_versions(stack)
    assert {tid: versions.get(tid) for tid in after} == dict.fromkeys(after, second)
    assert {tid: versions.get(tid) for tid in before} == dict.fromkeys(before, first)

    text = (live / "model.txt").read_bytes()
    (live / "model.txt").write_bytes(text[: len(text) // 2])  # cut short: never given to LightGBM
    wait_for_events(stack, "model_refused", 2)
    still = burst(stack, "still", amount=FLAGGED_AMOUNT)
    caught_up(stack)
    versions = model_versions(stack)
    assert {tid: versions.get(tid) for tid in still} == dict.fromkeys(still, second)

    assert running_pids(stack.options)["worker-1"] == worker_pid  # no restart at any point
    dead = read_jsonl_objects(stack.client("s3"), stack.env["FRAUD_BUCKET"], "dead-letter/")
    assert dead == []
    refused = worker_events(stack, "model_refused")[0]
    assert refused["in_force"] == second
