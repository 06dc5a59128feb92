"""A bad published rule set never reduces capacity (issue #19, item 5).

A processor that starts while the published rule set is refused judges with the fleet's last
good version (kept beside the rule set by every processor that accepts a version) instead of
failing its initialisation; only when no version was ever accepted does start-up stop, in
`fraudstream worker`'s preflight (exit 78: tests/unit/worker/test_startup_config.py runs the
command).
The stores are exercised on files and on a moto-less fake S3 client; the preflight on a fake
client too, so nothing here needs a server.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from cfnlint.decode import cfn_yaml

from consumer.infra.cloudwatch import to_datums
from consumer.infra.metrics import METRICS
from consumer.reload import hot_source
from consumer.reload import rulesets as ruleset_source
from consumer.reload.rulesets import (
    FileFetcher,
    FileLastGoodStore,
    LastGoodUnusable,
    NoUsableRuleSet,
    RuleSetSource,
    S3Fetcher,
    S3LastGoodStore,
    last_good_location,
    starting_ruleset,
)
from consumer.settings.config import ConfigError, Settings, load_settings
from consumer.worker import preflight
from consumer.worker.preflight import PreflightConfigError, PreflightError, Report
from consumer.worker.wiring import ruleset_source as wired_ruleset_source
from tests.support.fakes import ManualClock
from tests.unit.reload.test_ruleset_source import ruleset_text, write

REPO = Path(__file__).resolve().parents[3]
CUSTOM = "[{id: lucky_777, description: lucky, severity: high, when: 'amount == 777'}]"
BROKEN = "version: bad-2\nrules: {high_amount: {threshold: -5}}\n"


class Events:
    """Stands in for a module's structlog logger: the events it logged, with their fields."""

    def __init__(self) -> None:
        self.logged: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: self.logged.append((level, event, fields))

    def named(self, event: str) -> list[dict[str, Any]]:
        return [fields for _, name, fields in self.logged if name == event]


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> Events:
    recorder = Events()
    monkeypatch.setattr(ruleset_source, "log", recorder)
    monkeypatch.setattr(hot_source, "log", recorder)
    return recorder


@pytest.fixture(autouse=True)
def _fresh_metrics() -> Iterator[None]:
    METRICS.snapshot_and_reset()
    yield
    METRICS.snapshot_and_reset()


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    write(path, ruleset_text("good-1", custom=CUSTOM))
    return path


class CountingStore(FileLastGoodStore):
    """The file store, counting its writes (and failing them while `fail` is set)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.writes = 0
        self.fail: Exception | None = None

    def _write(self, data: bytes) -> None:
        if self.fail is not None:
            raise self.fail
        self.writes += 1
        super()._write(data)


def store_beside(rules: Path) -> CountingStore:
    return CountingStore(last_good_location(str(rules)))


def source(
    rules: Path, store: FileLastGoodStore, clock: ManualClock | None = None
) -> RuleSetSource:
    return RuleSetSource(
        FileFetcher(str(rules)),
        check_every_s=1,
        clock=clock or ManualClock(),
        last_good=store,
        accepted_by="worker-test",
    )


def stored(store: FileLastGoodStore) -> dict[str, Any]:
    with open(store.path, encoding="utf-8") as handle:
        record: dict[str, Any] = json.load(handle)
    return record


# --- accepting a version keeps it ---------------------------------------------------------------


def test_a_version_accepted_at_start_is_kept_beside_the_rule_set(
    rules: Path, events: Events
) -> None:
    store = store_beside(rules)
    assert store.path == f"{rules}.last-good.json"
    rulesets = source(rules, store)
    assert rulesets.current().version == "good-1" and rulesets.from_last_good is None
    record = stored(store)
    body = rules.read_bytes()
    assert record["version"] == "good-1"
    assert record["sha256"] == hashlib.sha256(body).hexdigest()
    assert record["body"].encode() == body  # the published text, as it was
    assert record["source"] == str(rules) and record["accepted_by"] == "worker-test"
    assert record["accepted_at"].endswith("Z")
    assert [e["version"] for e in events.named("ruleset_last_good_saved")] == ["good-1"]
    # Another processor accepting the same version only reads: the hash is the same.
    source(rules, store)
    assert store.writes == 1


def test_a_version_accepted_at_a_hot_reload_replaces_the_record(rules: Path) -> None:
    clock = ManualClock()
    store = store_beside(rules)
    rulesets = source(rules, store, clock)
    write(rules, ruleset_text("good-2", threshold="500"))
    clock.now = 2
    assert rulesets.current().version == "good-2"
    assert stored(store)["version"] == "good-2"
    assert store.writes == 2


def test_a_refused_hot_reload_keeps_the_version_in_force_and_the_stored_one(
    rules: Path, events: Events
) -> None:
    clock = ManualClock()
    store = store_beside(rules)
    rulesets = source(rules, store, clock)
    before = Path(store.path).read_bytes()
    for text in (BROKEN, ruleset_text("good-1", threshold="1")):  # broken; same version, new text
        write(rules, text)
        clock.now += 2
        assert rulesets.current().version == "good-1"
    assert len(events.named("ruleset_refused")) == 2
    assert Path(store.path).read_bytes() == before and store.writes == 1
    assert METRICS.snapshot_and_reset().get("ruleset.last_good_in_use") is None  # not a fallback


# --- starting while the published version is refused --------------------------------------------


def test_a_start_while_refused_judges_with_the_last_good_version(
    rules: Path, events: Events
) -> None:
    store = store_beside(rules)
    source(rules, store)  # a worker accepted good-1 earlier
    write(rules, BROKEN)
    METRICS.snapshot_and_reset()

    rulesets = source(rules, store)  # a worker started (or restarted) now

    ruleset = rulesets.current()
    assert ruleset.version == "good-1"
    assert [rule.id for rule in ruleset.custom] == ["lucky_777"]
    assert rulesets.from_last_good is not None
    assert rulesets.last_refusal is not None and "threshold" in rulesets.last_refusal
    [fallback] = events.named("ruleset_fallback_last_good")
    assert fallback["version"] == "good-1" and fallback["source"] == str(rules)
    assert fallback["sha256"] == stored(store)["sha256"]
    assert fallback["refused"].startswith("refused: ") and "threshold" in fallback["refused"]
    assert fallback["last_good"] == store.path and fallback["accepted_by"] == "worker-test"
    rulesets.current()
    counts = METRICS.snapshot_and_reset()
    assert counts["ruleset.refused"] == 1
    assert counts["ruleset.last_good_in_use"] == 3  # at start, then once per batch
    assert store.writes == 1  # the fallback writes nothing


def test_a_start_while_the_rule_set_cannot_be_read_uses_the_last_good_version_too(
    rules: Path,
) -> None:
    clock = ManualClock()
    store = store_beside(rules)
    source(rules, store)
    good = rules.read_text()
    rules.unlink()  # deleted by mistake
    rulesets = source(rules, store, clock)
    assert rulesets.current().version == "good-1"
    assert rulesets.last_refusal is not None and "cannot be read" in rulesets.last_refusal
    write(rules, good.replace("good-1", "good-2"))  # published again: read whole, applied
    clock.now = 2
    assert rulesets.current().version == "good-2" and rulesets.from_last_good is None


def test_a_fixed_version_ends_the_fallback_and_becomes_the_last_good_one(
    rules: Path, events: Events
) -> None:
    clock = ManualClock()
    store = store_beside(rules)
    source(rules, store)
    write(rules, BROKEN)
    rulesets = source(rules, store, clock)
    clock.now = 2
    assert rulesets.current().version == "good-1"  # the refused version is not read again
    write(rules, ruleset_text("good-3", threshold="700"))
    clock.now = 4
    assert rulesets.current().version == "good-3"
    assert rulesets.from_last_good is None and rulesets.last_refusal is None
    assert stored(store)["version"] == "good-3"
    [ended] = events.named("ruleset_fallback_ended")
    assert (ended["version"], ended["last_good_version"]) == ("good-3", "good-1")
    METRICS.snapshot_and_reset()
    rulesets.current()
    assert "ruleset.last_good_in_use" not in METRICS.snapshot_and_reset()


def test_publishing_the_last_good_version_again_is_a_rollback_not_a_refusal(
    rules: Path, events: Events
) -> None:
    clock = ManualClock()
    store = store_beside(rules)
    source(rules, store)
    good = rules.read_text()
    write(rules, BROKEN)
    rulesets = source(rules, store, clock)
    write(rules, good)  # the same version, the same bytes
    clock.now = 2
    assert rulesets.current().version == "good-1"
    assert rulesets.from_last_good is None and rulesets.last_refusal is None
    assert events.named("ruleset_refused") == []
    # The same version with other content is still refused: `version` must name the rules.
    write(rules, ruleset_text("good-1", threshold="1"))
    clock.now = 4
    assert rulesets.current().config.high_amount_threshold == Decimal(10000)
    assert "version is still 'good-1'" in str(rulesets.last_refusal)


def test_nothing_stored_means_no_version_was_ever_accepted(rules: Path) -> None:
    write(rules, BROKEN)
    with pytest.raises(NoUsableRuleSet) as raised:
        source(rules, store_beside(rules))
    message = str(raised.value)
    assert message.startswith(f"{rules} refused: ") and "threshold" in message
    assert "no version was ever accepted" in message and "none stored" in message
    assert not raised.value.transient


def record_of(rules: Path) -> dict[str, Any]:
    store = store_beside(rules)
    source(rules, store)
    return stored(store)


def tamper_hash(record: dict[str, Any]) -> None:
    record["body"] = record["body"].replace('"10000"', '"1"')  # the body edited, not its hash


def tamper_version(record: dict[str, Any]) -> None:
    record["body"] = record["body"].replace("good-1", "good-9")
    record["sha256"] = hashlib.sha256(record["body"].encode()).hexdigest()


def tamper_loading(record: dict[str, Any]) -> None:
    record["body"] = BROKEN
    record["sha256"] = hashlib.sha256(BROKEN.encode()).hexdigest()


def tamper_kind(record: dict[str, Any]) -> None:
    del record["kind"]


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        (tamper_hash, "does not match its sha256"),
        (tamper_version, "records version 'good-1', its body is 'good-9'"),
        (tamper_loading, "its body does not load"),
        (tamper_kind, "not a last-good record"),
    ],
)
def test_a_stored_record_that_does_not_check_out_is_treated_as_absent(
    rules: Path, tamper: Any, why: str
) -> None:
    record = record_of(rules)
    tamper(record)
    store = store_beside(rules)
    Path(store.path).write_text(json.dumps(record))
    write(rules, BROKEN)
    with pytest.raises(NoUsableRuleSet, match="no version was ever accepted") as raised:
        source(rules, store)
    assert why in str(raised.value)
    # And a worker that accepts a good version replaces it, whatever its hash field says.
    write(rules, ruleset_text("good-2"))
    source(rules, store)
    assert stored(store)["version"] == "good-2"


def test_a_record_that_is_not_json_is_absent_too(rules: Path) -> None:
    store = store_beside(rules)
    Path(store.path).write_text("{cut sho")
    with pytest.raises(LastGoodUnusable, match="not JSON"):
        store.load()


def test_a_record_nested_past_the_parser_is_absent_too(rules: Path) -> None:
    """A corrupt or hostile object under the key: RecursionError inside json.loads must not
    escape (it would crash the processor's start instead of falling back)."""
    store = store_beside(rules)
    Path(store.path).write_text("[" * 100_000)
    with pytest.raises(LastGoodUnusable, match="not JSON"):
        store.load()


def test_a_failed_save_never_stops_the_processor_and_is_tried_again_later(
    rules: Path, events: Events
) -> None:
    clock = ManualClock()
    store = store_beside(rules)
    store.fail = PermissionError("denied")
    rulesets = source(rules, store, clock)  # starts with the published version all the same
    assert rulesets.current().version == "good-1"
    [failed] = events.named("ruleset_last_good_save_failed")
    assert failed["version"] == "good-1" and failed["retry_in_s"] == 1
    assert METRICS.snapshot_and_reset()["ruleset.last_good_save_failed"] == 1
    clock.now = 1.5  # the next try after the wait, which doubles while it fails
    rulesets.current()
    assert events.named("ruleset_last_good_save_failed")[-1]["retry_in_s"] == 2
    store.fail = None
    clock.now = 2.5
    rulesets.current()
    assert store.writes == 0  # not due yet
    clock.now = 3.6
    rulesets.current()
    assert store.writes == 1 and stored(store)["version"] == "good-1"
    clock.now = 100
    rulesets.current()
    assert store.writes == 1


# --- S3 -----------------------------------------------------------------------------------------


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}},  # type: ignore[typeddict-item]
        "GetObject",
    )


class FakeS3:
    """GetObject (with IfNoneMatch) and PutObject on a dict; `error` answers every GetObject."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.puts: list[str] = []
        self.error: ClientError | None = None

    def get_object(self, *, Bucket: str, Key: str, IfNoneMatch: str | None = None) -> Any:
        if self.error is not None:
            raise self.error
        if (Bucket, Key) not in self.objects:
            raise client_error("NoSuchKey", 404)
        body = self.objects[(Bucket, Key)]
        etag = '"' + hashlib.md5(body).hexdigest() + '"'
        if IfNoneMatch == etag:
            raise client_error("304", 304)
        return {"ETag": etag, "Body": io.BytesIO(body)}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        self.objects[(Bucket, Key)] = Body
        self.puts.append(Key)
        return {}


def s3_source(s3: FakeS3, clock: ManualClock | None = None) -> RuleSetSource:
    return RuleSetSource(
        S3Fetcher(s3, "rules", "live.yaml"),
        check_every_s=1,
        clock=clock or ManualClock(),
        last_good=S3LastGoodStore(s3, "rules", "live.yaml.last-good.json"),
    )


def test_s3_a_refused_rule_set_falls_back_to_the_object_beside_it() -> None:
    s3 = FakeS3()
    s3.objects[("rules", "live.yaml")] = ruleset_text("s3-1", custom=CUSTOM).encode()
    s3_source(s3)
    assert s3.puts == ["live.yaml.last-good.json"]
    record = json.loads(s3.objects[("rules", "live.yaml.last-good.json")])
    assert record["version"] == "s3-1" and record["source"] == "s3://rules/live.yaml"
    s3.objects[("rules", "live.yaml")] = BROKEN.encode()
    rulesets = s3_source(s3)
    assert rulesets.current().version == "s3-1" and rulesets.from_last_good is not None
    assert s3.puts == ["live.yaml.last-good.json"]


@pytest.mark.parametrize(
    ("error", "absent", "transient"),
    [
        (client_error("NoSuchKey", 404), True, False),
        (client_error("AccessDenied", 403), True, False),  # no s3:ListBucket: a missing key
        (client_error("InternalError", 500), False, True),
        (client_error("SlowDown", 503), False, True),
    ],
)
def test_s3_store_errors(error: ClientError, absent: bool, transient: bool) -> None:
    s3 = FakeS3()
    s3.error = error
    with pytest.raises(LastGoodUnusable) as raised:
        S3LastGoodStore(s3, "rules", "k.last-good.json").load()
    assert (raised.value.absent, raised.value.transient) == (absent, transient)


def test_s3_a_store_that_cannot_be_reached_is_not_overwritten_blindly() -> None:
    s3 = FakeS3()
    s3.objects[("rules", "live.yaml")] = ruleset_text("s3-1").encode()
    rulesets = s3_source(s3)
    s3.error = client_error("InternalError", 500)
    store = S3LastGoodStore(s3, "rules", "live.yaml.last-good.json")
    with pytest.raises(OSError, match="cannot be read"):
        store.remember(rulesets.ruleset, b"version: x\n", "s3://rules/live.yaml", "w")


def test_s3_unreachable_published_and_store_is_transient_not_a_config_problem() -> None:
    s3 = FakeS3()
    s3.error = client_error("InternalError", 500)
    with pytest.raises(NoUsableRuleSet) as raised:
        starting_ruleset(
            S3Fetcher(s3, "rules", "live.yaml"),
            S3LastGoodStore(s3, "rules", "live.yaml.last-good.json"),
        )
    assert raised.value.transient


class EndpointDown:
    def get_object(self, **_: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")


def test_s3_an_endpoint_that_does_not_answer_is_transient() -> None:
    with pytest.raises(LastGoodUnusable) as raised:
        S3LastGoodStore(EndpointDown(), "rules", "k").load()
    assert raised.value.transient


# --- the worker's preflight ---------------------------------------------------------------------


def ruleset_settings(rules: Path, **overrides: Any) -> Settings:
    return Settings(bucket="b", topic_arn="arn:aws:sns:us-east-1:1:t", redis_url="", **overrides)


def check(settings: Settings) -> Report:
    report = Report()
    preflight._check_ruleset(settings, lambda: None, report)
    return report


def test_preflight_warns_when_the_processors_will_start_with_the_last_good_version(
    rules: Path,
) -> None:
    settings = ruleset_settings(rules, ruleset=str(rules))
    assert check(settings) == Report()
    source(rules, store_beside(rules))
    write(rules, BROKEN)
    report = check(settings)
    assert report.problems == [] and report.config_problems == []
    [warning] = report.warnings
    assert warning.startswith(f"FRAUD_RULESET: {rules} refused: ")
    assert "the processors start with the last good version 'good-1'" in warning
    assert "by worker-test" in warning and f"from {rules}.last-good.json" in warning


def test_preflight_a_refused_rule_set_never_accepted_is_a_configuration_problem(
    rules: Path,
) -> None:
    write(rules, BROKEN)
    report = check(ruleset_settings(rules, ruleset=str(rules)))
    [problem] = report.config_problems
    assert problem.startswith(f"FRAUD_RULESET: {rules} refused: ")
    assert "no version was ever accepted" in problem and problem.endswith(
        "publish a version that loads"
    )
    assert report.problems == []


def test_preflight_an_unreachable_store_is_unavailable_not_configuration() -> None:
    s3 = FakeS3()
    s3.error = client_error("InternalError", 500)
    report = Report()
    settings = Settings(bucket="b", topic_arn="t", redis_url="", ruleset="s3://rules/live.yaml")
    preflight._check_ruleset(settings, lambda: s3, report)
    assert report.config_problems == [] and len(report.problems) == 1


def test_run_preflight_raises_a_configuration_error_for_it(
    rules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(rules, BROKEN)
    for name in ("_check_redis", "_check_bucket", "_check_topic"):
        monkeypatch.setattr(preflight, name, lambda *_: None)
    monkeypatch.setattr(preflight, "_check_stream", lambda *_: None)
    with pytest.raises(PreflightConfigError, match="no version was ever accepted") as raised:
        preflight.run_preflight(ruleset_settings(rules, ruleset=str(rules)), "s", lambda *_: None)
    assert isinstance(raised.value, PreflightError)  # still a failed start-up check


# --- wiring, settings, metric, IAM --------------------------------------------------------------


def test_the_wired_source_keeps_the_record_where_the_setting_says(
    rules: Path, tmp_path: Path
) -> None:
    settings = ruleset_settings(rules, ruleset=str(rules))
    wired_ruleset_source(settings, lambda: None)
    assert json.loads(Path(f"{rules}.last-good.json").read_text())["version"] == "good-1"
    elsewhere = tmp_path / "state" / "good.json"
    elsewhere.parent.mkdir()
    settings = ruleset_settings(rules, ruleset=str(rules), ruleset_last_good=str(elsewhere))
    write(rules, ruleset_text("good-2"))
    wired_ruleset_source(settings, lambda: None)
    assert json.loads(elsewhere.read_text())["version"] == "good-2"
    write(rules, BROKEN)
    assert wired_ruleset_source(settings, lambda: None).current().version == "good-2"


BASE_ENV = {"FRAUD_BUCKET": "b", "FRAUD_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t"}


def test_the_last_good_setting() -> None:
    env = {**BASE_ENV, "FRAUD_RULESET": "s3://b/rules/live.yaml"}
    assert load_settings(env).ruleset_last_good is None  # beside it
    assert last_good_location("s3://b/rules/live.yaml") == "s3://b/rules/live.yaml.last-good.json"
    env["FRAUD_RULESET_LAST_GOOD"] = "s3://b/state/rules.json"
    assert load_settings(env).ruleset_last_good == "s3://b/state/rules.json"
    assert last_good_location("s3://b/rules/live.yaml", "s3://b/state/rules.json") == (
        "s3://b/state/rules.json"
    )
    for bad, why in [
        ("s3://b/rules/live.yaml", "the rule set itself"),
        ("s3://b/", "must be s3://<bucket>/<key>"),
        ("s3://b/dir/", "must be s3://<bucket>/<key>"),
    ]:
        with pytest.raises(ConfigError, match=f"FRAUD_RULESET_LAST_GOOD: {why}"):
            load_settings({**env, "FRAUD_RULESET_LAST_GOOD": bad})
    with pytest.raises(ConfigError, match="FRAUD_RULESET_LAST_GOOD: set without FRAUD_RULESET"):
        load_settings({**BASE_ENV, "FRAUD_RULESET_LAST_GOOD": "/tmp/x.json"})


def test_the_metric_reaches_cloudwatch() -> None:
    datums = to_datums({"ruleset.last_good_in_use": 4}, "app", datetime.now(UTC))
    [datum] = [d for d in datums if d["MetricName"] == "RuleSetLastGoodInUse"]
    assert datum["Value"] == 4.0 and datum["Unit"] == "Count"


def test_the_task_role_writes_only_the_last_good_record_of_the_rule_set() -> None:
    template: dict[str, Any] = cfn_yaml.load(str(REPO / "deploy" / "ecs" / "fraudstream.yaml"))
    grants = [
        item["Fn::If"]
        for policy in template["Resources"]["TaskRole"]["Properties"]["Policies"]
        for item in policy["PolicyDocument"]["Statement"]
        if isinstance(item, dict) and "Fn::If" in item and item["Fn::If"][0] == "HasRuleSet"
    ]
    by_action = {grant[1]["Action"]: grant[1]["Resource"] for grant in grants}
    assert all(grant[2] == {"Ref": "AWS::NoValue"} for grant in grants)
    assert by_action["s3:PutObject"] == {"Fn::Sub": "${Bucket.Arn}/${RuleSetKey}.last-good.json"}
    assert by_action["s3:GetObject"] == [
        {"Fn::Sub": "${Bucket.Arn}/${RuleSetKey}"},
        {"Fn::Sub": "${Bucket.Arn}/${RuleSetKey}.last-good.json"},
    ]
    iam = (REPO / "docs" / "iam.md").read_text()
    assert "`<bucket>/<RuleSetKey>.last-good.json` only, and only when `RuleSetKey` is set" in iam
