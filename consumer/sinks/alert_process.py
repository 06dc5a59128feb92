"""Alerts published from a child process, so botocore's CPU stays off the judging process's GIL.

Each PublishBatch of ten alerts costs botocore CPU (serialising, signing, parsing the XML reply).
In the shard's own process that CPU holds the GIL the judging thread needs, which at a few percent
of records flagged costs the shard a measurable share of its throughput (measured:
docs/benchmarks.md#alert-process). So each shard process starts one child
(`python -m consumer.sinks.alert_process`, not a fork: the parent runs threads) that owns the SNS
client and an `AlertPublisher`; the parent's alert thread sends it each batch's alerts over a pipe
and waits for the answer with the GIL released. The contract is unchanged: `publish` returns when
SNS accepted every alert (or refused some for good, handed back for the dead letters), or raises.

Failure stays visible and loses nothing. A give-up in the child is the parent's give-up
(`OutputGaveUp`); the child's counters (alerts sent, retries, give-ups) come back with every
answer and are added to the parent's, so CloudWatch shows them as the shard's. A child that dies or
does not answer within the retry budget's deadline is a give-up too (`gave_up.alert_process`, an
`alert_process_failed` log line): the worker exits without checkpointing and the KCL replays from
the last checkpoint, as for any output that cannot be written (alerts are at-least-once).

The child is ready before the shard's first batch: the constructor waits until it has built
its SNS client (a child that cannot start fails the shard's initialize, a visible give-up, not
its first alert). The child writes nothing to stdout (fd 1 is pointed at stderr before anything
runs: stdout is the MultiLangDaemon protocol's), never reads stdin, ignores SIGTERM as the
processor does, and SIGINT (the daemon orders shutdown). It ends when the processor closes it
(at the end of the processor's work, killed when the processor gives up) or closes the pipe, and
within half a second of the processor's death, even in the middle of a publish.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from multiprocessing.connection import Connection
from typing import Any, NoReturn

import structlog

from consumer.infra.logs import configure_logging, get_logger
from consumer.infra.metrics import METRICS
from consumer.infra.retry import OutputGaveUp
from consumer.settings.config import RetryConfig, Settings
from consumer.sinks.alerts import (
    Alert,
    AlertPublisher,
    AlertSink,
    RejectedAlert,
    publish_calls,
)

log = get_logger(__name__)

# What the child runs publish() with: a picklable callable (a module-level function or a partial
# of one), called once in the child.
SinkFactory = Callable[[], AlertSink]

# Past the retry budget's deadline, per PublishBatch call: botocore's own last attempt (two tries
# of a 3 s connect and a 10 s read) and the pipe.
ANSWER_MARGIN_S = 30.0
# Never wait longer than this for an answer: under the daemon's timeoutInSeconds (600,
# properties/fraudstream.properties), which halts the JVM instead of letting us give up cleanly.
ANSWER_TIMEOUT_CAP_S = 540.0
# A child that has not built its SNS client by then is reported at the shard's initialize.
START_TIMEOUT_S = 60.0


class AlertProcess:
    """An AlertSink whose publishing runs in a child process; one request at a time."""

    def __init__(
        self,
        sink_factory: SinkFactory,
        *,
        retry_deadline_s: float,
        shard_id: str = "?",
        log_level: str = "info",
        answer_margin_s: float = ANSWER_MARGIN_S,
        answer_timeout_cap_s: float = ANSWER_TIMEOUT_CAP_S,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self._process, self._to_child, self._from_child = _start_child()
        self._retry_deadline_s = retry_deadline_s
        self._answer_margin_s = answer_margin_s
        self._answer_timeout_cap_s = answer_timeout_cap_s
        self._lock = threading.Lock()
        self._failed: str | None = None
        try:
            self._to_child.send((sink_factory, shard_id, log_level))
        except OSError as exc:
            self._fail(f"is gone before it started ({exc!r})")
        self._await_ready(start_timeout_s)
        log.info("alert_process_started", pid=self._process.pid)

    @property
    def pid(self) -> int:
        return self._process.pid

    def publish(self, alerts: Sequence[Alert]) -> list[RejectedAlert]:
        """Publish in the child; its refusals, or its give-up raised here as OutputGaveUp."""
        if not alerts:
            return []
        with self._lock:
            if self._failed is not None:
                raise OutputGaveUp(self._failed)
            try:
                self._to_child.send(list(alerts))
                timeout_s = self.answer_timeout_s(alerts)
                if not self._from_child.poll(timeout_s):
                    self._fail(f"gave no answer in {timeout_s:.0f} s")
                outcome, payload, counts = self._from_child.recv()
            except (EOFError, OSError) as exc:
                self._fail(f"is gone ({exc!r})")
        METRICS.merge(counts)
        if outcome == "gave_up":
            raise OutputGaveUp(payload)
        if outcome != "ok":  # a bug in the child's sink: counted and logged like a give-up
            METRICS.incr("gave_up.alert_process")
            log.error("alert_process_failed", pid=self._process.pid, reason=payload)
            raise OutputGaveUp(f"alert process failed: {payload}")
        return [RejectedAlert(alerts[index], code, reason) for index, code, reason in payload]

    def _await_ready(self, timeout_s: float) -> None:
        """Wait until the child has built its sink: a child that cannot start (a bad endpoint,
        a missing module) stops the shard's initialize, not its first alert; and its start-up
        (the imports) is over before the first batch."""
        try:
            if not self._from_child.poll(timeout_s):
                self._fail(f"did not start in {timeout_s:.0f} s")
            outcome, payload = self._from_child.recv()
        except (EOFError, OSError) as exc:
            self._fail(f"is gone before it started ({exc!r})")
        if outcome != "ready":
            self._fail(f"could not start: {payload}")

    def answer_timeout_s(self, alerts: Sequence[Alert]) -> float:
        """The longest a publish of `alerts` may take before the child counts as hung: each of
        its PublishBatch calls (split by count and size, as the publisher splits them) retries
        up to the deadline, a FIFO topic's one after the other, each with a margin; capped
        below the daemon's timeoutInSeconds."""
        calls = publish_calls(alerts)
        return min(
            (self._retry_deadline_s + self._answer_margin_s) * calls, self._answer_timeout_cap_s
        )

    def close(self, timeout_s: float = 5.0) -> None:
        """End the child and reap it: at its end of file it exits; if it has not within
        `timeout_s` (0: the processor is giving up, and a publish still under way must not
        outlive it) it is killed. Idempotent."""
        if self._to_child.closed:
            return
        self._to_child.close()  # its end of file
        self._from_child.close()
        try:
            self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _fail(self, why: str) -> NoReturn:
        try:
            self._process.wait(1.0)  # a child that just died or failed has an exit code to report
        except subprocess.TimeoutExpired:
            self._process.kill()  # alive but hung: it must not publish after we gave up on it
            self._process.wait()  # reaped: no zombie left behind
        exit_code = self._process.returncode
        self._failed = f"alert process (pid {self._process.pid}) {why}; exit code {exit_code}"
        METRICS.incr("gave_up.alert_process")
        log.error("alert_process_failed", pid=self._process.pid, exit_code=exit_code, reason=why)
        raise OutputGaveUp(self._failed)


def _start_child() -> tuple[subprocess.Popen[bytes], Connection, Connection]:
    """`python -m consumer.sinks.alert_process` with a pipe each way (multiprocessing's spawn would
    also start its resource tracker, a third process per shard, and import the parent's main
    module in the child). The child's stdout is our stderr; its stdin is empty."""
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "consumer.sinks.alert_process",
                str(to_child_r),
                str(from_child_w),
                str(os.getpid()),
            ],
            pass_fds=(to_child_r, from_child_w),
            stdin=subprocess.DEVNULL,
            stdout=2,
            # The parent's import path: the child finds consumer and the factory's module.
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )
    except BaseException:
        for fd in (to_child_w, from_child_r):
            os.close(fd)
        raise
    finally:
        # Only the child holds these ends: its death is our end of file, and ours its.
        os.close(to_child_r)
        os.close(from_child_w)
    return process, Connection(to_child_w, readable=False), Connection(from_child_r, writable=False)


def main(argv: list[str] | None = None) -> None:
    """The child: `python -m consumer.sinks.alert_process <read fd> <write fd> <parent pid>`."""
    inbound_fd, outbound_fd, parent_pid = (int(arg) for arg in (argv or sys.argv[1:]))
    _exit_when_orphaned(parent_pid)  # first: the parent may be gone before it says a word
    inbound = Connection(inbound_fd, writable=False)
    outbound = Connection(outbound_fd, readable=False)
    try:
        sink_factory, shard_id, log_level = inbound.recv()
    except (EOFError, OSError):
        return  # the parent is gone already
    except Exception as exc:  # a factory this process cannot import: the parent says why
        _tell(outbound, ("failed", repr(exc)))
        return
    serve(inbound, outbound, sink_factory, shard_id, log_level)


def serve(
    inbound: Connection,
    outbound: Connection,
    sink_factory: SinkFactory,
    shard_id: str,
    log_level: str,
) -> None:
    """The child's loop: publish each list of alerts it is sent, answer with the outcome and the
    counters it moved, until the parent closes the pipe."""
    os.dup2(2, 1)  # fd 1 may be the daemon's protocol pipe: nothing of ours goes there
    sys.stdout = sys.stderr
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(log_level, component="alerts")
    structlog.contextvars.bind_contextvars(shard_id=shard_id)
    try:
        sink = sink_factory()
    except Exception as exc:
        log.exception("alert_process_start_failed")
        _tell(outbound, ("failed", repr(exc)))
        return
    if not _tell(outbound, ("ready", None)):
        return
    while True:
        try:
            alerts = inbound.recv()
        except (EOFError, OSError):
            return  # the parent closed the pipe or died
        if not _tell(outbound, (*_outcome(sink, alerts), METRICS.snapshot_and_reset())):
            return


def _tell(outbound: Connection, message: tuple[Any, ...]) -> bool:
    """Send to the parent; False when it is gone (nobody left to tell: the child ends)."""
    try:
        outbound.send(message)
    except OSError:
        return False
    return True


def _exit_when_orphaned(parent_pid: int, poll_s: float = 0.5) -> None:
    """End this process within `poll_s` once its processor is gone, even in the middle of a
    publish (retrying SNS for up to the retry deadline): the processor's records are replayed
    by whoever owns the shard next, with their alerts."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        log.warning("alert_process_orphaned", parent_pid=parent_pid)
        sys.stderr.flush()
        os._exit(0)

    threading.Thread(target=watch, name="orphan-guard", daemon=True).start()


def _outcome(sink: AlertSink, alerts: list[Alert]) -> tuple[str, Any]:
    try:
        rejected = sink.publish(alerts)
    except OutputGaveUp as exc:
        return "gave_up", str(exc)
    except Exception as exc:  # a bug: the parent stops the worker rather than lose alerts
        log.exception("alert_process_error")
        return "error", repr(exc)
    # The publisher hands back the very Alert objects it was given: matched by identity.
    index = {id(alert): i for i, alert in enumerate(alerts)}
    return "ok", [(index[id(r.alert)], r.code, r.reason) for r in rejected]


def sns_sink(topic_arn: str, region: str, retry: RetryConfig) -> AlertSink:
    """The production sink, built in the child: its own SNS client (endpoint from the
    environment, as every client's) and publisher."""
    from consumer.infra.aws_clients import aws_client  # the child's import: keeps this module light

    return AlertPublisher(aws_client("sns", region), topic_arn, retry)


def production_alert_process(
    shard_id: str, settings: Settings, sink_factory: SinkFactory | None = None
) -> AlertProcess:
    """The worker's alert process (consumer.worker.wiring.build_pipeline, FRAUD_ALERT_PROCESS): the
    SNS sink of `settings`, or `sink_factory` (the benchmark's, at its moto server)."""
    if sink_factory is None:
        sink_factory = partial(sns_sink, settings.topic_arn, settings.region, settings.retry)
    return AlertProcess(
        sink_factory,
        retry_deadline_s=settings.retry.deadline_s,
        shard_id=shard_id,
        log_level=settings.log_level,
    )


if __name__ == "__main__":
    main()
