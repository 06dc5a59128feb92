"""`python -m load_test.scaleout`: when the leases count as balanced after a join, the lease
moves, and each worker's records/s from checkpoint progress."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from load_test import scaleout
from load_test.report import parse_time
from load_test.run import _worker_counters

SHARDS = ["s0", "s1", "s2", "s3"]
ONE = ["worker-1"]
TWO = ["worker-1", "worker-2"]


def row(t: float, owners: str, workers: list[str], done: tuple[int, ...] = (0, 0, 0, 0)) -> dict:
    """A timeline row; `owners` one character a shard: 1 or 2 for worker-1/-2, - for none."""
    return {
        "t": t,
        "workers": workers,
        "owners": {
            s: "" if o == "-" else f"worker-{o}" for s, o in zip(SHARDS, owners, strict=True)
        },
        "done": dict(zip(SHARDS, done, strict=True)),
    }


def test_leases_are_balanced_when_every_shard_is_owned_and_counts_differ_by_one_at_most() -> None:
    owners = {"s0": "worker-1", "s1": "worker-1", "s2": "worker-2", "s3": "worker-2"}
    assert scaleout.is_balanced(owners, TWO, SHARDS)
    assert not scaleout.is_balanced(
        {**owners, "s2": "worker-1", "s3": "worker-1"}, TWO, SHARDS
    )  # 4 and 0 (worker-2 idle)
    assert not scaleout.is_balanced({**owners, "s3": ""}, TWO, SHARDS)  # a shard unowned
    # A shard held by a worker this run does not count as running (a dead one, say).
    assert not scaleout.is_balanced({**owners, "s3": "worker-9"}, TWO, SHARDS)
    assert scaleout.lease_counts({**owners, "s3": "worker-9"}, ["worker-1", "worker-2", "w3"]) == {
        "worker-1": 2,
        "worker-2": 1,
        "w3": 0,
        "worker-9": 1,
    }


def test_three_and_one_counts_as_unbalanced() -> None:
    owners = {"s0": "worker-1", "s1": "worker-1", "s2": "worker-1", "s3": "worker-2"}
    assert not scaleout.is_balanced(owners, TWO, SHARDS)


def test_balance_reached_lost_and_reached_again_counts_from_the_stretch_that_held() -> None:
    timeline = [
        row(0, "1111", ONE),
        row(100, "1111", TWO),  # worker-2 joins at 100
        row(104, "1122", TWO),  # balanced ...
        row(108, "1122", TWO),
        row(110, "1112", TWO),  # ... lost after 6 s, shorter than the settle time
        row(115, "1122", TWO),  # balanced again
        row(120, "1212", TWO),  # a lease moved but still 2 and 2: still balanced
        row(125, "1122", TWO),
        row(130, "1122", TWO),
    ]
    assert scaleout.balanced_since(timeline, 100, 130, SHARDS, settle_s=10) == 115
    assert scaleout.balanced_since(timeline, 100, 130, SHARDS, settle_s=4) == 104
    # Not seen out: the window ends before the settle time has passed.
    assert scaleout.balanced_since(timeline, 100, 122, SHARDS, settle_s=10) is None
    summary = scaleout.summarize_join(
        timeline,
        scaleout.attribute(timeline),
        {"t": 100, "worker": "worker-2", "workers": TWO},
        130,
        SHARDS,
        settle_s=10,
        target_s=12,
    )
    assert summary["balanced_after_s"] == 15 and not summary["within_target"]
    assert summary["leases_at_end"] == {"worker-1": 2, "worker-2": 2}
    # 104: s2, s3 to worker-2; 110: s2 back; 115: s2 again; 120: s1 to 2 and s2 to 1; 125: back.
    assert summary["lease_moves"] == 8
    assert [(m["t"], m["shard"], m["to"]) for m in summary["moves"][:3]] == [
        (104, "s2", "worker-2"),
        (104, "s3", "worker-2"),
        (110, "s2", "worker-1"),
    ]


def test_the_workers_running_in_each_row_decide_balance_not_those_that_join_later() -> None:
    timeline = [row(0, "1111", ONE), row(10, "1111", ONE), row(20, "1111", ONE)]
    assert scaleout.balanced_since(timeline, 0, 20, SHARDS, settle_s=10) == 0


def test_a_first_owner_is_not_a_move_and_a_spell_without_owner_does_not_hide_one() -> None:
    timeline = [
        row(0, "--11", ONE),
        row(1, "1111", ONE),  # s0, s1 assigned: no moves
        row(2, "-111", TWO),  # s0 expired ...
        row(3, "2111", TWO),  # ... and taken by worker-2: one move
        row(4, "2111", TWO),
    ]
    moves = scaleout.lease_moves(timeline, 0, 4)
    assert moves == [{"t": 3, "shard": "s0", "from": "worker-1", "to": "worker-2"}]
    assert scaleout.lease_moves(timeline, 3, 4) == []  # only moves after the window's start


def test_progress_goes_to_the_owner_at_the_start_of_the_interval_when_a_lease_moves() -> None:
    timeline = [
        row(0, "1111", TWO, (0, 0, 0, 0)),
        row(1, "1111", TWO, (100, 100, 100, 100)),
        # s3 moved to worker-2 within this second; its hand-off checkpoint is worker-1's.
        row(2, "1112", TWO, (200, 200, 200, 250)),
        row(3, "1112", TWO, (300, 300, 300, 260)),
    ]
    intervals = scaleout.attribute(timeline)
    assert intervals[0]["records"] == {"worker-1": 400}
    assert intervals[1]["records"] == {"worker-1": 450}  # s3's 150 still worker-1's
    assert intervals[2]["records"] == {"worker-1": 300, "worker-2": 10}
    assert scaleout.records_per_s(intervals, 0, 3) == {"worker-1": 383.3, "worker-2": 3.3}
    assert scaleout.records_per_s(intervals, 2, 3) == {"worker-1": 300.0, "worker-2": 10.0}


def test_progress_of_a_shard_without_an_owner_goes_to_the_next_owner() -> None:
    timeline = [
        row(0, "111-", TWO, (0, 0, 0, 0)),
        row(1, "1112", TWO, (0, 0, 0, 40)),
        row(2, "1112", TWO, (0, 0, 0, 40)),  # no progress: no credit
    ]
    intervals = scaleout.attribute(timeline)
    assert intervals[0]["records"] == {"worker-2": 40}
    assert intervals[1]["records"] == {}


def test_the_rate_series_averages_each_window() -> None:
    timeline = [row(float(t), "1122", TWO, (10 * t, 10 * t, 5 * t, 5 * t)) for t in range(21)]
    series = scaleout.rate_series(scaleout.attribute(timeline), 10, 20)
    assert series == [
        {"t": 10.0, "rates": {"worker-1": 20.0, "worker-2": 10.0}},
        {"t": 20.0, "rates": {"worker-1": 20.0, "worker-2": 10.0}},
    ]


def test_nothing_is_lost_when_every_checkpoint_is_at_or_past_the_last_put() -> None:
    targets = {"s0": "200", "s1": "300", "s2": "400"}
    reached = {"s0": "200", "s1": "350", "s2": "399"}
    assert scaleout.nothing_lost(targets, reached) == ["s2"]
    assert scaleout.nothing_lost(targets, {**reached, "s2": "SHARD_END"}) == []


class FakeDynamo:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def scan(self, **_: Any) -> dict[str, Any]:
        return {"Items": self.items}


def test_a_lease_in_graceful_hand_off_belongs_to_its_checkpoint_owner() -> None:
    dynamodb = FakeDynamo(
        [
            {
                "leaseKey": {"S": "s0"},
                "leaseOwner": {"S": "worker-2"},
                "checkpointOwner": {"S": "worker-1"},
                "checkpoint": {"S": "123"},
                "throughputKBps": {"N": "4.567"},
            },
            {"leaseKey": {"S": "s1"}, "leaseOwner": {"S": "worker-2"}, "checkpoint": {"S": "9"}},
            {"leaseKey": {"S": "s2"}, "checkpoint": {"S": "TRIM_HORIZON"}},
        ]
    )
    leases = scaleout.read_leases(dynamodb, "fraudstream")
    assert leases["s0"] == {"owner": "worker-1", "checkpoint": "123", "kbps": 4.57, "handoff": True}
    assert leases["s1"] == {"owner": "worker-2", "checkpoint": "9", "kbps": None, "handoff": False}
    assert leases["s2"]["owner"] == ""


def test_the_workers_log_counters_are_summed_per_worker(tmp_path: Path) -> None:
    options = scaleout.StackOptions(state_dir=tmp_path)
    options.logs.mkdir()
    line = '{{"timestamp": "{}", "event": "metrics", "records.judged": {}, "shard_id": "s0"}}\n'
    (options.logs / "worker-1.log").write_text(
        line.format("2026-01-01T00:00:00+00:00", 5)  # before the run: not counted
        + line.format("2026-01-01T00:10:00+00:00", 7)
        + '{"timestamp": "2026-01-01T00:10:00+00:00", "event": "checkpointed"}\n'
        + "not json\n"
    )
    (options.logs / "worker-2.log").write_text(line.format("2026-01-01T00:11:00+00:00", 3))
    since = parse_time("2026-01-01T00:05:00Z")
    assert scaleout.worker_log_counters(options, since) == {
        "worker-1": {"records.judged": 7},
        "worker-2": {"records.judged": 3},
    }
    # load_test.run and catchup read the same lines, summed over the workers.
    assert _worker_counters(options, since) == {"records.judged": 10}


def test_no_local_stack_is_its_own_exit_code(tmp_path: Path) -> None:
    assert scaleout.main(["--state-dir", str(tmp_path)]) == scaleout.EXIT_NO_STACK


def test_a_supervised_stack_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "local.env").write_text('export FRAUD_STREAM="s"\n')
    monkeypatch.setattr(scaleout, "running_pids", lambda _: {"supervisor": 1, "worker-1": 2})
    assert scaleout.main(["--state-dir", str(tmp_path)]) == scaleout.EXIT_SUPERVISED


def test_the_help_shows_defaults_and_exit_codes() -> None:
    text = scaleout.build_parser().format_help()
    assert "exit codes:" in text and "--join-every" in text and "180.0" in text
