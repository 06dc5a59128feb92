"""The background alert dispatcher: order, bounded queue, failures surfaced, settle waits all."""

from __future__ import annotations

import threading
import time

import pytest

from consumer.records import RecordPosition
from consumer.sinks.alert_dispatch import AlertDispatcher
from consumer.sinks.alerts import Alert, RejectedAlert


def refusal(tid: str) -> RejectedAlert:
    position = RecordPosition("shardId-0", "1", 0, 0)
    alert = Alert(tid, "acct-1", "high", ("high_amount",), "{}", position)
    return RejectedAlert(alert, "InvalidParameter", "no")


def test_jobs_run_in_submission_order_and_settle_returns_every_refusal() -> None:
    ran: list[int] = []
    dispatcher = AlertDispatcher(max_in_flight=8)

    def job(n: int) -> list[RejectedAlert]:
        time.sleep(0.01 * (5 - n))  # earlier jobs are slower: order must still hold
        ran.append(n)
        return [refusal(f"t-{n}")] if n % 2 else []

    returned = []
    for n in range(5):
        returned += dispatcher.submit(lambda n=n: job(n))
    returned += dispatcher.settle()
    assert ran == [0, 1, 2, 3, 4]
    assert [r.alert.transaction_id for r in returned] == ["t-1", "t-3"]
    assert dispatcher.in_flight == 0


def test_a_full_queue_makes_submit_wait_for_the_oldest_job() -> None:
    release = threading.Event()
    dispatcher = AlertDispatcher(max_in_flight=2)
    dispatcher.submit(lambda: (release.wait(5), [])[1])
    dispatcher.submit(lambda: [])
    threading.Timer(0.2, release.set).start()
    started = time.monotonic()
    dispatcher.submit(lambda: [])
    assert time.monotonic() - started >= 0.15  # waited for the first job to finish
    assert dispatcher.in_flight <= 2
    dispatcher.settle()


def test_a_failed_job_raises_at_the_next_poll_or_settle() -> None:
    dispatcher = AlertDispatcher()

    def failing() -> list[RejectedAlert]:
        raise RuntimeError("sns gave up")

    dispatcher.submit(failing)
    with pytest.raises(RuntimeError, match="sns gave up"):
        dispatcher.settle()


def test_poll_does_not_wait_for_a_running_job() -> None:
    release = threading.Event()
    dispatcher = AlertDispatcher()
    dispatcher.submit(lambda: (release.wait(5), [refusal("t-9")])[1])
    assert dispatcher.poll() == []
    assert dispatcher.in_flight == 1
    release.set()
    assert [r.alert.transaction_id for r in dispatcher.settle()] == ["t-9"]


def test_discard_drops_queued_jobs_that_have_not_started() -> None:
    release = threading.Event()
    ran: list[str] = []
    dispatcher = AlertDispatcher()
    dispatcher.submit(lambda: (release.wait(5), ran.append("first"), [])[2])
    dispatcher.submit(lambda: (ran.append("second"), [])[1])
    dispatcher.discard()
    release.set()
    time.sleep(0.1)
    assert ran == ["first"]
    assert dispatcher.settle() == []


def test_at_least_one_job_must_be_allowed_in_flight() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        AlertDispatcher(max_in_flight=0)
