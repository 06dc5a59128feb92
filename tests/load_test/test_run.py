"""`python -m load_test.run` fails when the consumer did not catch up or lost records, shows
progress while it waits, defaults to a rate the local stack takes; every load-test command's
options show their defaults and its help its exit codes."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from load_test import labelled, producer, run, simulator

SHARDS = {"shardId-0": "200", "shardId-1": "300"}


def test_caught_up_and_nothing_lost_passes() -> None:
    expected = {"t1": frozenset({"velocity"}), "t2": frozenset()}
    result = run.verdict(True, expected, {"t1": frozenset({"velocity"})}, failed_puts=0)
    assert result.problems == [] and result.exit_code == 0


def test_a_labelled_transaction_missing_from_s3_fails() -> None:
    expected = {"t1": frozenset({"velocity"}), "t2": frozenset({"high_amount"})}
    result = run.verdict(True, expected, {"t1": frozenset({"velocity"})}, failed_puts=0)
    assert result.exit_code == 1
    assert result.problems == [
        "1 labelled transactions that reached the stream have no flagged line in S3"
    ]


def test_not_catching_up_fails() -> None:
    result = run.verdict(False, {}, {}, failed_puts=0)
    assert result.exit_code == 1 and "did not checkpoint" in result.problems[0]


def test_records_the_producer_gave_up_on_fail() -> None:
    assert run.verdict(True, {}, {}, failed_puts=3).exit_code == 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_waiting_reports_progress_until_every_shard_is_checkpointed() -> None:
    clock = FakeClock()
    answers = iter([{}, {"shardId-0": "250"}, {"shardId-0": "250", "shardId-1": "300"}])
    seen: list[int] = []
    done = run.wait_for_catch_up(
        lambda: next(answers), SHARDS, 60, seen.append, clock=clock, sleep=clock.sleep
    )
    assert done is True
    assert seen == [0, 1, 2]


def test_waiting_gives_up_at_the_timeout() -> None:
    clock = FakeClock()
    seen: list[int] = []
    done = run.wait_for_catch_up(
        lambda: {"shardId-0": "200"}, SHARDS, 5, seen.append, clock=clock, sleep=clock.sleep
    )
    assert done is False
    assert set(seen) == {1} and clock.now > 5


def test_progress_lines_while_waiting_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    progress = run.CatchUpProgress(2, interval_s=0.0)
    progress(1)
    progress.close()
    assert "1/2 shards checkpointed" in capsys.readouterr().err


def test_no_local_stack_is_its_own_exit_code(tmp_path: Path) -> None:
    assert run.main(["--state-dir", str(tmp_path)]) == run.EXIT_NO_STACK


def test_the_default_rate_is_what_the_local_stack_takes_with_putrecords() -> None:
    # The patched stand-in took 2,000 records/s into 4 shards (docs/performance.md).
    defaults = run.build_parser().parse_args([])
    assert defaults.rate <= 2000 and defaults.put_api == "records"


def test_the_process_sampler_gives_cpu_as_a_share_of_a_core_and_memory_summed() -> None:
    clock = FakeClock()
    used = {1: 0.0, 2: 0.0, 3: 0.0}
    sampler = run.ProcessSampler(
        lambda: {"kinesis": [1], "processors": [2, 3]},
        cpu=lambda pid: used[pid],
        rss=lambda pid: 100.0 * pid,
        load=lambda: 1.5,
        clock=clock,
    )
    sampler.sample()
    clock.sleep(2.0)
    used[1], used[2], used[3] = 1.0, 1.0, 0.5  # one second of CPU in two: 50 %
    row = sampler.sample()
    assert row["t"] == 2.0 and row["load1"] == 1.5
    assert row["kinesis_cpu_pct"] == 50.0 and row["kinesis_rss_mb"] == 100.0
    assert row["processors_cpu_pct"] == 75.0 and row["processors_rss_mb"] == 500.0
    summary = sampler.summary()
    assert summary["kinesis_cpu_pct"] == {"mean": 50.0, "max": 50.0}
    assert "kinesis_cpu_pct" in run.render_processes(summary)


def test_a_process_first_seen_counts_no_cpu_until_its_second_sample() -> None:
    clock = FakeClock()
    groups: dict[str, list[int]] = {"daemon_jvm": []}
    sampler = run.ProcessSampler(
        lambda: groups, cpu=lambda pid: 30.0, rss=lambda pid: 1.0, load=lambda: 0.0, clock=clock
    )
    sampler.sample()
    clock.sleep(1.0)
    groups["daemon_jvm"] = [7]  # started between samples, with 30 s of CPU already
    assert sampler.sample()["daemon_jvm_cpu_pct"] == 0.0


def all_parsers() -> list[argparse.ArgumentParser]:
    found = []
    for top in (
        run.build_parser(),
        producer.build_parser(),
        simulator.build_parser(),
        labelled.build_parser(),
    ):
        found.append(top)
        for action in top._actions:
            if isinstance(action, argparse._SubParsersAction):
                found += list(action.choices.values())
    return found


@pytest.mark.parametrize("parser", all_parsers(), ids=lambda p: p.prog)
def test_every_option_shows_its_default_and_the_help_its_exit_codes(
    parser: argparse.ArgumentParser,
) -> None:
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        text = formatter._expand_help(action) if action.help else ""
        assert text, f"{parser.prog} {action.dest}: no help"
        if action.option_strings and not action.required:
            assert "default" in text.lower(), f"{parser.prog} {action.dest}: {text!r}"
    assert "exit codes:" in parser.format_help()


def test_a_broken_record_without_its_dead_letter_fails() -> None:
    landed = frozenset({"101", "202"})
    result = run.verdict(True, {}, {}, 0, invalid_landed=landed, dead_lettered=frozenset({"101"}))
    assert result.exit_code == 1
    assert result.problems == ["1 broken records that reached the stream have no dead letter in S3"]
    whole = run.verdict(True, {}, {}, 0, invalid_landed=landed, dead_lettered=landed)
    assert whole.exit_code == 0


def test_the_process_sampler_runs_as_a_thread_until_stopped() -> None:
    sampler = run.ProcessSampler(lambda: {"kinesis": []}, interval_s=0.01, load=lambda: 0.0)
    sampler.start()
    sampler.stop()
    assert sampler.rows and not sampler.is_alive()
