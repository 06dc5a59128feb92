"""What the model does, per interval (issue #21 item 6): the pipeline counts each batch's scores
into a histogram by whole point and the decisions to alert, in its one pass over the outcomes,
and reports them with a fixed number of metric calls per batch; the CloudWatch publisher turns
them into ModelScoreBand{Band}, ModelScore, ModelScored and RecordsAlerted."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest

from consumer.batch.ports import FixedModel
from consumer.infra import metrics as metrics_module
from consumer.infra.cloudwatch import SCORE_BANDS, to_datums
from consumer.infra.metrics import METRICS
from consumer.model.stage import Scored
from consumer.records import Transaction
from consumer.rules.engine import Decision
from consumer.rules.history import AccountHistory
from tests.unit.batch.test_pipeline_ports import NOW, Rig, record


class ScriptedModel:
    """A ScoringModel whose score per transaction is given by the test. Its rule is off
    (`rule_for` None), so scores are reported and the rules alone decide."""

    model_version = "scripted-1"

    def __init__(self, scores: dict[str, float], fail_row: frozenset[str] = frozenset()) -> None:
        self.scores = scores
        self.fail_row = fail_row

    def rule_for(self, entry: Any) -> None:
        return None

    def row(self, txn: Transaction, history: AccountHistory) -> Any:
        if txn.transaction_id in self.fail_row:
            raise ValueError("no row")
        return txn.transaction_id

    def score(self, rows: Sequence[Any], rule: Any = None) -> list[Scored]:
        return [Scored(self.scores[row], ()) for row in rows]

    def apply(self, decision: Decision, scored: Scored, rule: Any = None) -> Decision:
        raise AssertionError("the rule is off: never applied")


def scored_rig(scores: dict[str, float], **model: Any) -> Rig:
    return Rig(model=FixedModel(ScriptedModel(scores, **model)))


def histogram(counts: dict[str, float]) -> dict[int, float]:
    return {
        int(name.rsplit(".", 1)[1]): value
        for name, value in counts.items()
        if name.startswith("model.score.")
    }


def bands(counts: dict[str, float]) -> dict[str, float]:
    return {
        d["Dimensions"][1]["Value"]: d["Value"]
        for d in to_datums(counts, "app", NOW)
        if d["MetricName"] == "ModelScoreBand"
    }


# Scores on and around every band edge, in two batches (accounts apart: no velocity).
EDGES = {
    "t-1": 0.0,
    "t-2": 0.4,
    "t-3": 9.999,
    "t-4": 10.0,
    "t-5": 10.5,
    "t-6": 19.99,
    "t-7": 49.5,
    "t-8": 50.0,
    "t-9": 89.999,
    "t-10": 90.0,
    "t-11": 99.99,
    "t-12": 100.0,
}


def test_every_score_lands_in_its_whole_point_and_its_band() -> None:
    rig = scored_rig(EDGES)
    counts = rig.run(
        [record(n, account=f"a-{n}") for n in range(1, 7)],
        [record(n, account=f"a-{n}") for n in range(7, 13)],
    )
    assert histogram(counts) == {
        0: 2, 9: 1, 10: 2, 19: 1, 49: 1, 50: 1, 89: 1, 90: 1, 99: 1, 100: 1
    }  # fmt: skip
    assert counts["model.scored"] == 12
    assert bands(counts) == {
        "00-10": 3,
        "10-20": 3,
        "20-30": 0,
        "30-40": 0,
        "40-50": 1,
        "50-60": 1,
        "60-70": 0,
        "70-80": 0,
        "80-90": 1,
        "90-100": 3,  # 90, 99.99 and exactly 100
    }
    assert list(bands(counts)) == list(SCORE_BANDS)
    [scored] = [d for d in to_datums(counts, "app", NOW) if d["MetricName"] == "ModelScored"]
    assert scored["Value"] == 12


def test_the_distribution_datum_carries_each_whole_point_once_with_its_count() -> None:
    rig = scored_rig({f"t-{n}": n * 7.5 for n in range(1, 14)} | {"t-14": 7.9})
    counts = rig.run([record(n, account=f"a-{n}") for n in range(1, 15)])
    [datum] = [d for d in to_datums(counts, "app", NOW) if d["MetricName"] == "ModelScore"]
    assert datum["Values"] == [7.0, 15.0, 22.0, 30.0, 37.0, 45.0, 52.0, 60.0, 67.0, 75.0, 82.0,
                               90.0, 97.0]  # fmt: skip
    assert datum["Counts"] == [2.0] + [1.0] * 12
    assert "Value" not in datum and datum["Unit"] == "None"


def test_unscored_records_are_judged_but_not_in_the_distribution() -> None:
    scores = {"t-1": 55.0, "t-2": 65.0, "t-3": math.nan, "t-4": 75.0}
    rig = scored_rig(scores, fail_row=frozenset({"t-2"}))
    counts = rig.run([record(n, account=f"a-{n}") for n in range(1, 5)])
    assert counts["records.judged"] == 4
    # t-2: its row failed (a model_score rule error); t-3: a NaN score fits no band.
    assert histogram(counts) == {55: 1, 75: 1}
    assert counts["model.scored"] == 2
    assert counts["rule_errors.model_score"] == 1
    assert sum(bands(counts).values()) == 2


def test_a_model_in_force_that_scores_nothing_still_reports_its_empty_bands() -> None:
    rig = scored_rig({}, fail_row=frozenset({"t-1"}))
    counts = rig.run([record(1)])
    assert counts["model.scored"] == 0 and histogram(counts) == {}
    assert bands(counts) == dict.fromkeys(SCORE_BANDS, 0.0)
    assert not [d for d in to_datums(counts, "app", NOW) if d["MetricName"] == "ModelScore"]


def test_without_a_model_nothing_of_the_model_is_reported() -> None:
    counts = Rig().run([record(1, "20000"), record(2, account="b")])
    assert not [name for name in counts if name.startswith("model.")]
    names = {d["MetricName"] for d in to_datums(counts, "app", NOW)}
    assert names.isdisjoint({"ModelScored", "ModelScoreBand", "ModelScore"})
    assert counts["records.alerted"] == 1


def test_alerted_counts_the_decisions_to_alert_a_replay_included() -> None:
    batch = [
        record(1, "20000"),  # high_amount: high, alerted
        record(2, account="b"),
        record(3, account="b"),
        record(4, account="b"),
        record(5, account="b"),  # velocity: medium, at the default alert severity
        record(6, account="c"),  # clean
    ]
    first = Rig()
    counts = first.run(batch)
    assert (counts["records.judged"], counts["records.alerted"]) == (6, 2)
    assert len(first.alerts.sent) == 2
    # A new worker replays the batch over the saved state: the same decisions, none sent again.
    again = Rig(first.store)
    counts = again.run(batch)
    assert again.alerts.sent == []
    assert (counts["records.judged"], counts["records.alerted"]) == (6, 2)
    [datum] = [d for d in to_datums(counts, "app", NOW) if d["MetricName"] == "RecordsAlerted"]
    assert datum["Value"] == 2


def test_a_quiet_batch_reports_zero_alerted() -> None:
    counts = Rig().run([record(1)])
    assert counts["records.alerted"] == 0
    assert any(d["MetricName"] == "RecordsAlerted" for d in to_datums(counts, "app", NOW))


def test_metric_calls_per_batch_do_not_grow_with_its_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    real_incr, real_many = METRICS.incr, METRICS.incr_many

    def incr(name: str, value: float = 1) -> None:
        calls.append(name)
        real_incr(name, value)

    def incr_many(counts: Any) -> None:
        calls.append("incr_many")
        real_many(counts)

    monkeypatch.setattr(METRICS, "incr", incr)
    monkeypatch.setattr(METRICS, "incr_many", incr_many)

    def calls_for(records: int) -> int:
        scores = {f"t-{n}": (n * 0.37) % 100 for n in range(1, records + 1)}
        rig = scored_rig(scores)
        calls.clear()
        rig.run([record(n, account=f"a-{n}") for n in range(1, records + 1)])
        return len(calls)

    assert calls_for(10) == calls_for(400)
    assert calls.count("incr_many") == 1


def test_incr_many_adds_every_counter_at_once() -> None:
    metrics = metrics_module.Metrics()
    metrics.incr("model.score.3", 2)
    metrics.incr_many({"model.score.3": 1, "model.score.97": 4, "model.scored": 7})
    assert metrics.snapshot_and_reset() == {"model.score.3": 3, "model.score.97": 4,
                                            "model.scored": 7}  # fmt: skip
