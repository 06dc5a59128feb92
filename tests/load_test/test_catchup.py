"""`python -m load_test.catchup`: how far a checkpoint is through the queued records, and the
per-shard summary of a catch-up (records/s from the processor's start to the last checkpoint)."""

from __future__ import annotations

from pathlib import Path

import boto3
from moto import mock_aws

from load_test import catchup
from load_test.alert_tap import detach_tap

SEQUENCES = [100, 200, 300, 400]


def test_a_checkpoint_covers_the_records_put_up_to_it() -> None:
    assert catchup.position(SEQUENCES, None) == 0
    assert catchup.position(SEQUENCES, "TRIM_HORIZON") == 0
    assert catchup.position(SEQUENCES, "99") == 0
    assert catchup.position(SEQUENCES, "200") == 2
    assert catchup.position(SEQUENCES, "250") == 2
    assert catchup.position(SEQUENCES, "400") == 4


def test_the_summary_times_each_shard_from_its_processor_start_to_its_last_checkpoint() -> None:
    timeline = [
        {"t": 0.0, "done": {"a": 0, "b": 0}},
        {"t": 10.0, "done": {"a": 0, "b": 500}},
        {"t": 20.0, "done": {"a": 6000, "b": 1000}},
        {"t": 30.0, "done": {"a": 10000, "b": 1000}},
    ]
    shards = catchup.summarize({"a": 10000, "b": 2000}, timeline, {"a": 5.0, "b": 4.0})
    assert shards["a"] == {
        "backlog": 10000,
        "processor_started_s": 5.0,
        "caught_up_s": 30.0,
        "records_per_s": 400.0,
        "peak_10s_records_per_s": 600.0,
        "first_checkpoint_s": 20.0,
        "checkpoint_99pct_s": 30.0,
        # 6,000 at 20 s to 10,000 at 30 s: the start-up before the first batch is left out.
        "sustained_records_per_s": 400.0,
    }
    assert shards["b"]["caught_up_s"] is None and shards["b"]["records_per_s"] is None
    assert shards["b"]["peak_10s_records_per_s"] == 50.0
    assert shards["b"]["sustained_records_per_s"] is None  # never reached 99 %


def test_the_sustained_rate_leaves_out_the_last_partial_batch_waiting_for_its_flush() -> None:
    timeline = [
        {"t": 0.0, "done": {"a": 0}},
        {"t": 8.0, "done": {"a": 10000}},
        {"t": 12.0, "done": {"a": 40000}},
        {"t": 13.0, "done": {"a": 49900}},  # 99.8 %: only the partial batch is left
        {"t": 23.0, "done": {"a": 50000}},  # checkpointed with its age flush, 10 s later
    ]
    shard = catchup.summarize({"a": 50000}, timeline, {"a": 6.0})["a"]
    assert shard["sustained_records_per_s"] == 7980.0  # 39,900 records in 5 s
    assert shard["records_per_s"] == round(50000 / 17, 1)  # from the start to the very last


def test_no_local_stack_is_its_own_exit_code(tmp_path: Path) -> None:
    assert catchup.main(["--state-dir", str(tmp_path)]) == catchup.EXIT_NO_STACK


def test_the_help_shows_defaults_and_exit_codes() -> None:
    text = catchup.build_parser().format_help()
    assert "exit codes:" in text and "200000" in text


def test_detach_tap_takes_off_only_the_tap_and_empties_it() -> None:
    """The catch-up runs without the alerts' SQS tap (moto's delivery into it slows with its
    length); another subscriber stays, and what the tap held is drained."""
    with mock_aws():
        sns = boto3.client("sns", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        topic = sns.create_topic(Name="alerts")["TopicArn"]
        arns = {}
        for name in ("alerts-tap", "pager"):
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            arns[name] = (
                url,
                sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                    "QueueArn"
                ],
            )
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arns[name][1])
        sns.publish(TopicArn=topic, Message="before")
        tap_url, tap_arn = arns["alerts-tap"]

        assert detach_tap(sns, sqs, topic, tap_url) == [tap_arn]

        endpoints = [
            s["Endpoint"] for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        ]
        assert endpoints == [arns["pager"][1]]
        sns.publish(TopicArn=topic, Message="after")
        assert "Messages" not in sqs.receive_message(QueueUrl=tap_url, WaitTimeSeconds=0)
        pager = sqs.receive_message(QueueUrl=arns["pager"][0], MaxNumberOfMessages=10)
        assert len(pager["Messages"]) == 2
        assert detach_tap(sns, sqs, topic, tap_url) == []
