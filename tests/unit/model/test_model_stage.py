"""The model score in the worker's pipeline: scored per batch, `model_score` on flagged lines,
the rule's reason naming the features behind it, shadow mode, and models the worker refuses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy
import pytest
import redis

from consumer.batch.pipeline import BatchPipeline
from consumer.batch.ports import FixedModel
from consumer.infra.metrics import METRICS
from consumer.model import scorer as scorer_module
from consumer.model.dataset import open_text, record_bytes, stream_history
from consumer.model.features import FEATURE_NAMES, features_for
from consumer.model.rule import ModelRule
from consumer.model.scorer import ModelLoadError
from consumer.model.stage import BatchModel
from consumer.model.train import train
from consumer.records import Transaction, parse_transaction
from consumer.reload.models import model_source
from consumer.rules.ruleset import ModelScoreEntry, RuleSet
from consumer.settings.config import ConfigError, Settings, StateConfig, load_settings
from consumer.state.store import AccountStateStore
from consumer.worker.wiring import pipeline_settings
from tests.support.fakes import CollectingAlerts, CollectingBatch


def load_batch_model(settings: Settings) -> BatchModel:
    """The model FRAUD_MODEL_DIR names, as the worker loads it at start-up (model_source)."""
    source = model_source(settings, lambda: None)
    assert source is not None
    return source.current()


@dataclass
class Record:
    binary_data: bytes
    sequence_number: str
    sub_sequence_number: int = 0
    timestamp_millis: int = 1_795_910_400_000

    @property
    def data(self) -> str:
        return self.binary_data.decode()


def records(path: Path, limit: int) -> list[Record]:
    found: list[Record] = []
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            data = record_bytes(line, str(number))
            if data is not None:
                found.append(Record(data, f"{number:056d}"))
            if len(found) == limit:
                break
    return found


def settings_for(model_dir: Path, **model: str) -> Settings:
    env = {
        "FRAUD_BUCKET": "b",
        "FRAUD_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t",
        "FRAUD_MODEL_DIR": str(model_dir),
        **model,
    }
    return load_settings(env)


def pipeline_for(
    settings: Settings,
    model: BatchModel,
    flagged: CollectingBatch,
    redis_conn: redis.Redis,
    rulesets: object = None,
) -> BatchPipeline:
    redis_conn.flushall()
    return BatchPipeline(
        "shardId-0",
        pipeline_settings(settings),
        flagged,
        CollectingBatch(),
        CollectingAlerts(),
        AccountStateStore(redis_conn, StateConfig(), Decimal(90000)),
        rulesets=rulesets,  # type: ignore[arg-type]
        model=FixedModel(model),
    )


def run(
    settings: Settings, model: BatchModel, batch: list[Record], redis_conn: redis.Redis
) -> CollectingBatch:
    flagged = CollectingBatch()
    pipeline = pipeline_for(settings, model, flagged, redis_conn)
    for start in range(0, len(batch), 250):
        pipeline.process(batch[start : start + 250])
    pipeline.settle_in_flight()
    return flagged


@pytest.fixture
def stream(labelled: Path) -> list[Record]:
    return records(labelled, 1500)


def test_flagged_lines_carry_the_score_and_its_reasons_name_real_features(
    model_dir: Path, stream: list[Record], redis_conn: redis.Redis
) -> None:
    settings = settings_for(model_dir, FRAUD_MODEL_SEVERITY="medium")
    model = load_batch_model(settings)
    assert model is not None and model.rule.threshold == model.scorer.threshold
    flagged = run(settings, model, stream, redis_conn)
    assert flagged.lines
    assert all(0 <= line["model_score"] <= 100 for line in flagged.lines)
    by_model = [
        (line, reason)
        for line in flagged.lines
        for reason in line["reasons"]
        if reason["rule"] == "model_score"
    ]
    assert by_model, "the model flagged nothing in 1,500 realistic records"
    for line, reason in by_model:
        assert line["model_score"] >= model.rule.threshold
        named = reason["detail"].split(": ", 1)[1].split(", ")
        assert 1 <= len(named) <= 3
        assert all(item.split(" ")[0] in FEATURE_NAMES for item in named)


def test_a_threshold_of_zero_flags_every_judged_transaction(
    model_dir: Path, stream: list[Record], redis_conn: redis.Redis
) -> None:
    settings = settings_for(model_dir, FRAUD_MODEL_THRESHOLD="0", FRAUD_MODEL_SEVERITY="low")
    model = load_batch_model(settings)
    assert model is not None
    METRICS.snapshot_and_reset()
    flagged = run(settings, model, stream[:300], redis_conn)
    assert len(flagged.lines) == METRICS.snapshot_and_reset()["records.judged"]
    assert all(
        any(reason["rule"] == "model_score" for reason in line["reasons"]) for line in flagged.lines
    )


def test_a_shadow_model_is_counted_and_never_flags(
    model_dir: Path, stream: list[Record], redis_conn: redis.Redis
) -> None:
    settings = settings_for(model_dir, FRAUD_MODEL_THRESHOLD="0", FRAUD_MODEL_SHADOW="true")
    model = load_batch_model(settings)
    assert model is not None
    METRICS.snapshot_and_reset()
    flagged = run(settings, model, stream[:300], redis_conn)
    assert not any(r["rule"] == "model_score" for line in flagged.lines for r in line["reasons"])
    assert METRICS.snapshot_and_reset()["shadow.rule.model_score"] > 0


def copy_model(model_dir: Path, to: Path, **spec_changes: object) -> Path:
    to.mkdir()
    for item in model_dir.iterdir():
        (to / item.name).write_bytes(item.read_bytes())
    spec = json.loads((to / "features.json").read_text())
    (to / "features.json").write_text(json.dumps({**spec, **spec_changes}))
    return to


def test_the_worker_refuses_a_model_trained_on_features_it_cannot_compute(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None are missing today; were the state store to lose one, a model using it is refused.
    monkeypatch.setattr(scorer_module, "STREAM_UNAVAILABLE", ("new_country",))
    with pytest.raises(ModelLoadError, match="new_country"):
        load_batch_model(settings_for(model_dir))
    masked = copy_model(model_dir, tmp_path / "masked", masked=["new_country"])
    assert load_batch_model(settings_for(masked)) is not None


def test_models_use_the_country_features_and_old_masked_ones_still_score(
    model_dir: Path, stream: list[Record], tmp_path: Path, redis_conn: redis.Redis
) -> None:
    countries = ["distinct_countries_1h", "distinct_countries_24h", "new_country"]
    current = load_batch_model(settings_for(model_dir))
    assert current is not None and current.scorer.masked == ()
    # A model trained before the state store kept countries: its features.json masks them.
    old_dir = copy_model(model_dir, tmp_path / "old", masked=countries)
    old = load_batch_model(settings_for(old_dir))
    assert old is not None and old.scorer.masked == tuple(countries)
    history = stream_history()
    rows = []
    for record in stream:
        parsed = parse_transaction(record.binary_data)
        assert isinstance(parsed, Transaction)
        seen = history.observe(parsed)
        if seen is not None:
            rows.append(features_for(parsed, seen))
    columns = [FEATURE_NAMES.index(name) for name in countries]
    new_matrix = current.scorer.encode(rows)[:, columns]
    old_matrix = old.scorer.encode(rows)[:, columns]
    assert not numpy.isnan(new_matrix).any() and new_matrix[:, 2].sum() > 0  # new countries seen
    assert numpy.isnan(old_matrix).all()
    # The old model runs in the worker (scored, flagged lines carry its score).
    flagged = run(settings_for(old_dir, FRAUD_MODEL_THRESHOLD="0"), old, stream[:200], redis_conn)
    assert flagged.lines and all(0 <= line["model_score"] <= 100 for line in flagged.lines)


def test_model_settings_are_checked_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="FRAUD_MODEL_THRESHOLD"):
        settings_for(tmp_path, FRAUD_MODEL_THRESHOLD="101")
    with pytest.raises(ConfigError, match="FRAUD_MODEL_SEVERITY"):
        settings_for(tmp_path, FRAUD_MODEL_SEVERITY="urgent")
    with pytest.raises(ModelLoadError, match=str(tmp_path / "absent")):
        load_batch_model(settings_for(tmp_path / "absent"))


def test_a_model_that_fails_leaves_the_batch_to_the_rules(
    model_dir: Path, stream: list[Record], redis_conn: redis.Redis
) -> None:
    settings = settings_for(model_dir, FRAUD_MODEL_THRESHOLD="0")
    model = load_batch_model(settings)
    assert model is not None

    def broken(rows: object) -> object:
        raise RuntimeError("the model file went bad")

    model.scorer.score_batch = broken  # type: ignore[method-assign]
    METRICS.snapshot_and_reset()
    flagged = run(settings, model, stream[:300], redis_conn)
    counts = METRICS.snapshot_and_reset()
    assert counts["records.judged"] > 0 and counts["records.internal_error"] == 2  # per batch
    assert all("model_score" not in line for line in flagged.lines)
    assert not any(r["rule"] == "model_score" for line in flagged.lines for r in line["reasons"])


def test_compare_model_prints_the_comparison_as_json(
    labelled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from consumer.cli import main as cli_main

    out = tmp_path / "model"
    train(labelled, out, holdout_fraction=0.25)
    assert cli_main(["compare-model", "--input", str(labelled), "--model", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {"rules", "rules_or_model"} <= set(printed["holdout"])
    assert cli_main(["compare-model", "--input", str(labelled), "--model", str(tmp_path)]) != 0


def test_the_rule_sets_model_score_entry_overrides_the_workers_rule_key_by_key(
    model_dir: Path,
) -> None:
    model = load_batch_model(
        settings_for(model_dir, FRAUD_MODEL_THRESHOLD="90", FRAUD_MODEL_SEVERITY="medium")
    )
    assert model is not None
    assert model.rule_for(None) == ModelRule(90.0, "medium", False)
    assert model.rule_for(ModelScoreEntry(threshold=40.0)) == ModelRule(40.0, "medium", False)
    assert model.rule_for(ModelScoreEntry(severity="high", shadow=True)) == ModelRule(
        90.0, "high", True
    )
    assert model.rule_for(ModelScoreEntry(enabled=False)) is None


class SwitchableRuleSets:
    """A rule-set source whose version the test replaces between batches, as a hot reload."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset

    def current(self) -> RuleSet:
        return self.ruleset


def test_a_reloaded_rule_set_changes_the_model_rule_from_the_next_batch(
    model_dir: Path, stream: list[Record], redis_conn: redis.Redis
) -> None:
    settings = settings_for(model_dir, FRAUD_MODEL_THRESHOLD="100")  # fires on nothing alone
    model = load_batch_model(settings)
    assert model is not None
    flagged = CollectingBatch()
    source = SwitchableRuleSets(RuleSet("v1"))
    pipeline = pipeline_for(settings, model, flagged, redis_conn, rulesets=source)

    def batch(records: list[Record]) -> tuple[list[dict[str, object]], int]:
        """The batch's flagged lines and how many records it judged."""
        before = len(flagged.lines)
        METRICS.snapshot_and_reset()
        pipeline.process(records)
        pipeline.settle_in_flight()
        return flagged.lines[before:], METRICS.snapshot_and_reset()["records.judged"]

    def by_model(lines: list[dict[str, object]]) -> list[dict[str, object]]:
        return [
            line
            for line in lines
            if any(r["rule"] == "model_score" for r in line["reasons"])  # type: ignore[attr-defined]
        ]

    lines, judged = batch(stream[:200])
    assert judged > 0 and by_model(lines) == []
    source.ruleset = RuleSet("v2", model=ModelScoreEntry(threshold=0.0, severity="low"))
    lines, judged = batch(stream[200:400])
    assert judged > 0 and len(by_model(lines)) == len(lines) == judged
    assert {line["rules_version"] for line in lines} == {"v2"}
    source.ruleset = RuleSet("v3", model=ModelScoreEntry(enabled=False, threshold=0.0))
    lines, judged = batch(stream[400:600])
    assert judged > 0 and by_model(lines) == []
    assert all("model_score" in line for line in lines)  # still scored, the rule is off
