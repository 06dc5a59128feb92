"""The model in force: hot reload from a directory or an S3 prefix, refusals, `model_version` on
every scored line, FRAUD_MODEL_CHECK_S."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from moto import mock_aws

from consumer.batch.pipeline import BatchPipeline
from consumer.infra.metrics import METRICS
from consumer.model import scorer as scorer_module
from consumer.model.scorer import ModelLoadError, ModelScorer
from consumer.model.stage import BatchModel, batch_model
from consumer.model.train import train
from consumer.reload import hot_source
from consumer.reload.models import ModelSource, model_fetcher, model_source
from consumer.settings.config import ConfigError, Settings, StateConfig, load_settings
from consumer.state.store import AccountStateStore
from consumer.worker.wiring import assemble_pipeline, pipeline_settings
from tests.support.fakes import CollectingAlerts, CollectingBatch, ManualClock
from tests.unit.model.test_model_stage import Record, records

FILES = ("model.txt", "features.json")


class Events:
    """Stands in for the reload's structlog logger: the events it logged, with their fields."""

    def __init__(self) -> None:
        self.logged: list[tuple[str, str, dict[str, Any]]] = []

    def _log(self, level: str) -> Any:
        return lambda event, **fields: self.logged.append((level, event, fields))

    def __getattr__(self, level: str) -> Any:
        return self._log(level)

    def named(self, event: str) -> list[dict[str, Any]]:
        return [fields for _, name, fields in self.logged if name == event]


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> Events:
    recorder = Events()
    monkeypatch.setattr(hot_source, "log", recorder)
    return recorder


@pytest.fixture(scope="module")
def other_model_dir(labelled: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A retrained model: other trees, another threshold, another training time."""
    out = tmp_path_factory.mktemp("other") / "model"
    train(labelled, out, valid_fraction=0.3, holdout_fraction=0.4)
    return out


@pytest.fixture
def stream(labelled: Path) -> list[Record]:
    return records(labelled, 600)


def settings_for(model_dir: str | Path, **env: str) -> Settings:
    return load_settings(
        {
            "FRAUD_BUCKET": "b",
            "FRAUD_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t",
            "FRAUD_MODEL_DIR": str(model_dir),
            **env,
        }
    )


def put_model(source: Path, live: Path, names: tuple[str, ...] = FILES) -> None:
    """Copy a model's files over the live directory's, each with a new mtime."""
    live.mkdir(exist_ok=True)
    for name in names:
        target = live / name
        target.write_bytes((source / name).read_bytes())
        stat = target.stat()
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def version_of(model_dir: Path) -> str:
    return ModelScorer.load(model_dir).model_version


def local_source(live: Path, clock: ManualClock, **env: str) -> ModelSource:
    settings = settings_for(live, **env)
    return ModelSource(model_fetcher(str(live), lambda: None), settings, clock=clock)


class Run:
    """One shard's pipeline over Redis; each batch's audit-trail lines (every judged record)."""

    def __init__(
        self, model: BatchModel | ModelSource, settings: Settings, redis_conn: redis.Redis
    ) -> None:
        redis_conn.flushall()
        self.flagged = CollectingBatch()
        self.decisions = CollectingBatch()
        self.alerts = CollectingAlerts()
        self.pipeline = BatchPipeline(
            "shardId-0",
            pipeline_settings(settings),
            self.flagged,  # type: ignore[arg-type]
            CollectingBatch(),  # type: ignore[arg-type]
            self.alerts,  # type: ignore[arg-type]
            AccountStateStore(redis_conn, StateConfig(), Decimal(90000)),
            decisions=self.decisions,  # type: ignore[arg-type]
            model=model,
        )

    def batch(self, batch: list[Record]) -> list[dict[str, Any]]:
        before = len(self.decisions.lines)
        self.pipeline.process(batch)
        self.pipeline.settle_in_flight()
        return self.decisions.lines[before:]


def scores(lines: list[dict[str, Any]]) -> dict[str, float]:
    return {line["transaction_id"]: line["model_score"] for line in lines}


def test_a_retrained_model_scores_from_the_first_batch_after_the_interval(
    model_dir: Path,
    other_model_dir: Path,
    stream: list[Record],
    tmp_path: Path,
    redis_conn: redis.Redis,
    events: Events,
) -> None:
    old, new = version_of(model_dir), version_of(other_model_dir)
    assert old != new
    live = tmp_path / "live"
    put_model(model_dir, live)
    clock = ManualClock()
    source = local_source(live, clock, FRAUD_MODEL_CHECK_S="60")
    settings = settings_for(live)
    batches = [stream[0:200], stream[200:400], stream[400:600]]
    # What each model alone gives each batch (the history, hence the features, is the same).
    alone = {}
    for name, directory in (("old", model_dir), ("new", other_model_dir)):
        run = Run(batch_model(ModelScorer.load(directory), settings), settings, redis_conn)
        alone[name] = [scores(run.batch(b)) for b in batches]
    assert alone["old"][2] != alone["new"][2]

    METRICS.snapshot_and_reset()
    run = Run(source, settings, redis_conn)
    first = run.batch(batches[0])
    put_model(other_model_dir, live)  # a retraining lands
    clock.now = 59
    second = run.batch(batches[1])  # not checked yet: the old model still scores
    clock.now = 61
    third = run.batch(batches[2])
    assert first and second and third
    assert {line["model_version"] for line in first + second} == {old}
    assert scores(first) == alone["old"][0] and scores(second) == alone["old"][1]
    assert {line["model_version"] for line in third} == {new}
    assert scores(third) == alone["new"][2]
    assert METRICS.snapshot_and_reset()["model.loaded"] == 1
    assert events.named("model_loaded") == [{"source": str(live), "version": new, "previous": old}]
    # Flagged lines and alerts name the model too.
    scored_flagged = [line for line in run.flagged.lines if "model_score" in line]
    assert scored_flagged and all(line["model_version"] in (old, new) for line in scored_flagged)
    assert run.alerts.sent
    assert all(json.loads(a.message)["model_version"] in (old, new) for a in run.alerts.sent)


def test_the_threshold_follows_the_new_model_unless_the_worker_sets_one(
    model_dir: Path, other_model_dir: Path, tmp_path: Path
) -> None:
    old_threshold = ModelScorer.load(model_dir).threshold
    new_threshold = ModelScorer.load(other_model_dir).threshold
    assert old_threshold is not None and new_threshold is not None
    assert old_threshold != new_threshold
    for env, before, after in (
        ({}, old_threshold, new_threshold),
        ({"FRAUD_MODEL_THRESHOLD": "90", "FRAUD_MODEL_SEVERITY": "low"}, 90.0, 90.0),
    ):
        live = tmp_path / f"live-{len(env)}"
        put_model(model_dir, live)
        clock = ManualClock()
        source = local_source(live, clock, FRAUD_MODEL_CHECK_S="0", **env)
        assert source.current().rule.threshold == before
        put_model(other_model_dir, live)
        reloaded = source.current()
        assert reloaded.scorer.threshold == new_threshold
        assert reloaded.rule.threshold == after
        assert reloaded.rule.severity == env.get("FRAUD_MODEL_SEVERITY", "high")


def truncate_model(live: Path) -> None:
    text = (live / "model.txt").read_bytes()
    (live / "model.txt").write_bytes(text[: len(text) // 2])


def unbound_and_truncated(live: Path) -> None:
    """A model from before `model_sha256`, its model.txt cut short: never handed to LightGBM
    (which aborts the process on it)."""
    spec = json.loads((live / "features.json").read_text())
    del spec["model_sha256"]
    (live / "features.json").write_text(json.dumps(spec))
    truncate_model(live)


def wrong_features(live: Path) -> None:
    spec = json.loads((live / "features.json").read_text())
    spec["features"] = spec["features"][::-1]
    (live / "features.json").write_text(json.dumps(spec))


def not_json(live: Path) -> None:
    (live / "features.json").write_text("{not json")


@pytest.mark.parametrize(
    ("breaks", "why", "checks_to_refuse"),
    [
        # Files that look mid-copy wait one check for the rest, then are refused.
        (truncate_model, "model.txt is not the one features.json was written with", 2),
        (unbound_and_truncated, "cut short", 2),
        (wrong_features, "are not those of features.json", 1),
        (not_json, "not valid JSON", 1),
    ],
)
def test_a_broken_model_is_refused_and_the_old_one_keeps_scoring(
    model_dir: Path,
    other_model_dir: Path,
    stream: list[Record],
    tmp_path: Path,
    redis_conn: redis.Redis,
    events: Events,
    breaks: Any,
    why: str,
    checks_to_refuse: int,
) -> None:
    live = tmp_path / "live"
    put_model(model_dir, live)
    old = version_of(model_dir)
    clock = ManualClock()
    source = local_source(live, clock, FRAUD_MODEL_CHECK_S="10")
    run = Run(source, settings_for(live), redis_conn)
    METRICS.snapshot_and_reset()
    breaks(live)
    for check in range(1, 4):  # the same bad version is refused once, however often checked
        clock.now = 11 * check
        lines = run.batch(stream[100 * check : 100 * (check + 1)])
        assert lines and {line["model_version"] for line in lines} == {old}
    counts = METRICS.snapshot_and_reset()
    assert counts["model.refused"] == 1 and "model.loaded" not in counts
    assert counts.get("model.incomplete", 0) == (1 if checks_to_refuse == 2 else 0)
    refused = events.named("model_refused")
    assert len(refused) == 1 and why in refused[0]["error"]
    assert refused[0]["source"] == str(live) and refused[0]["in_force"] == old
    assert source.last_refusal is not None and why in source.last_refusal
    # A good model after the bad one is loaded at the next check.
    put_model(other_model_dir, live)
    clock.now = 100
    assert source.current().model_version == version_of(other_model_dir)
    assert source.last_refusal is None


def test_a_model_needing_features_the_worker_lacks_is_refused(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, events: Events
) -> None:
    live = tmp_path / "live"
    put_model(model_dir, live)
    source = local_source(live, ManualClock(), FRAUD_MODEL_CHECK_S="0")
    monkeypatch.setattr(scorer_module, "STREAM_UNAVAILABLE", ("new_country",))
    put_model(model_dir, live)  # the same files again: a new tag, re-read and checked
    METRICS.snapshot_and_reset()
    assert source.current().model_version == version_of(model_dir)
    assert METRICS.snapshot_and_reset()["model.refused"] == 1
    assert "new_country" in events.named("model_refused")[0]["error"]


def test_the_same_files_again_change_nothing(
    model_dir: Path, tmp_path: Path, events: Events
) -> None:
    live = tmp_path / "live"
    put_model(model_dir, live)
    source = local_source(live, ManualClock(), FRAUD_MODEL_CHECK_S="0")
    before = source.current()
    put_model(model_dir, live)  # touched, same content: same model_version
    METRICS.snapshot_and_reset()
    assert source.current() is before
    assert METRICS.snapshot_and_reset() == {} and events.logged == []


class CountingFetcher:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls = 0

    def fetch(self, tag: str | None) -> Any:
        self.calls += 1
        return self.inner.fetch(tag)


@pytest.mark.parametrize(
    ("every", "checked_at"), [(60.0, [60, 125]), (0.0, [0, 1, 59, 60, 61, 100, 125])]
)
def test_the_source_is_checked_only_once_the_interval_has_passed(
    model_dir: Path, tmp_path: Path, every: float, checked_at: list[int]
) -> None:
    live = tmp_path / "live"
    put_model(model_dir, live)
    clock = ManualClock()
    fetcher = CountingFetcher(model_fetcher(str(live), lambda: None))
    source = ModelSource(fetcher, settings_for(live), every, clock)  # type: ignore[arg-type]
    assert fetcher.calls == 1  # the start-up read
    seen = []
    for now in (0, 1, 59, 60, 61, 100, 125):
        clock.now = now
        before = fetcher.calls
        source.current()
        if fetcher.calls > before:
            seen.append(now)
    assert seen == checked_at


def test_the_worker_checks_every_60_s_by_default_and_0_means_every_batch() -> None:
    assert settings_for("m").model_check_s == 60.0
    assert settings_for("m", FRAUD_MODEL_CHECK_S="0").model_check_s == 0.0
    assert settings_for("m", FRAUD_MODEL_CHECK_S="2.5").model_check_s == 2.5


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"FRAUD_MODEL_CHECK_S": "-1"}, "FRAUD_MODEL_CHECK_S"),
        ({"FRAUD_MODEL_CHECK_S": "soon"}, "FRAUD_MODEL_CHECK_S"),
        ({"FRAUD_MODEL_CHECK_S": "inf"}, "FRAUD_MODEL_CHECK_S"),
        ({"FRAUD_MODEL_DIR": "s3:///models/"}, "FRAUD_MODEL_DIR"),
    ],
)
def test_bad_model_settings_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=f"^{key}: "):
        settings_for("m", **env)


def test_a_model_that_cannot_be_read_at_start_up_stops_it_naming_the_source(
    tmp_path: Path,
) -> None:
    with pytest.raises(ModelLoadError, match=str(tmp_path / "absent")):
        model_source(settings_for(tmp_path / "absent"), lambda: None)


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="models")
        yield client


def upload(s3: Any, model: Path, names: tuple[str, ...] = FILES) -> None:
    for name in names:
        s3.put_object(Bucket="models", Key=f"live/{name}", Body=(model / name).read_bytes())


class Spy:
    """The S3 client, counting GETs and the 304s they got."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3
        self.gets: list[dict[str, Any]] = []

    def get_object(self, **request: Any) -> Any:
        self.gets.append(request)
        return self.s3.get_object(**request)


def test_an_s3_model_is_fetched_again_only_when_an_etag_changes(
    s3: Any, model_dir: Path, other_model_dir: Path, events: Events
) -> None:
    upload(s3, model_dir)
    spy = Spy(s3)
    clock = ManualClock()
    settings = settings_for("s3://models/live", FRAUD_MODEL_CHECK_S="30")
    source = ModelSource(model_fetcher("s3://models/live", lambda: spy), settings, clock=clock)
    assert source.name == "s3://models/live/"
    old = source.current()
    assert old.model_version == version_of(model_dir)
    METRICS.snapshot_and_reset()
    gets = len(spy.gets)
    clock.now = 31
    assert source.current() is old  # both ETags unchanged: two 304s, nothing read or parsed
    assert len(spy.gets) == gets + 2 and all("IfNoneMatch" in g for g in spy.gets[gets:])
    assert METRICS.snapshot_and_reset() == {}
    # An upload under way: model.txt is new, features.json still the old one.
    upload(s3, other_model_dir, ("model.txt",))
    clock.now = 62
    assert source.current() is old
    counts = METRICS.snapshot_and_reset()
    assert counts["model.incomplete"] == 1 and "model.refused" not in counts
    assert events.named("model_incomplete")[0]["source"] == "s3://models/live/"
    upload(s3, other_model_dir, ("features.json",))
    clock.now = 93
    new = source.current()
    assert new.model_version == version_of(other_model_dir)
    assert METRICS.snapshot_and_reset() == {"model.loaded": 1}


def test_an_unreadable_s3_model_keeps_the_one_in_force(
    s3: Any, model_dir: Path, events: Events
) -> None:
    upload(s3, model_dir)
    source = model_source(settings_for("s3://models/live/", FRAUD_MODEL_CHECK_S="0"), lambda: s3)
    assert source is not None
    s3.delete_object(Bucket="models", Key="live/features.json")
    METRICS.snapshot_and_reset()
    assert source.current().model_version == version_of(model_dir)
    assert METRICS.snapshot_and_reset()["model.check_failed"] == 1
    assert events.named("model_check_failed")[0]["source"] == "s3://models/live/"


def test_an_s3_model_missing_at_start_up_stops_it_naming_the_object(s3: Any) -> None:
    with pytest.raises(ModelLoadError, match="s3://models/absent/"):
        model_source(settings_for("s3://models/absent/"), lambda: s3)


def test_model_version_is_the_content_of_both_files(model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    put_model(model_dir, copy)
    version = version_of(model_dir)
    assert version_of(copy) == version  # the same files anywhere: the same identity
    spec = json.loads((model_dir / "features.json").read_text())
    assert version.startswith(spec["version"] + "-") and len(version.split("-")[-1]) == 12
    spec["threshold"] = 12.5  # an edited threshold is another model
    (copy / "features.json").write_text(json.dumps(spec))
    assert version_of(copy) != version


def test_the_worker_wiring_reads_an_s3_model_through_the_shards_s3_client(
    s3: Any, model_dir: Path, redis_conn: redis.Redis
) -> None:
    upload(s3, model_dir)
    settings = settings_for("s3://models/live/", FRAUD_MODEL_CHECK_S="0")
    sns = boto3.client("sns", region_name="us-east-1")
    pipeline, _ = assemble_pipeline("shardId-0", settings, s3, sns, redis_conn)
    models = pipeline._models  # the wiring hands the pipeline a reloading source
    assert isinstance(models, ModelSource) and models.name == "s3://models/live/"
    assert models.current().model_version == version_of(model_dir)
