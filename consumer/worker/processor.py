"""The amazon_kclpy v3 record processor: lifecycle and checkpoint calls, nothing else.

kclpy catches any exception a processor method raises, prints it and still tells the daemon the
batch is done, so the next checkpoint would move past records that failed: silent loss. Hence
nothing escapes these methods except SystemExit: bad input is routed to the dead letters by the
pipeline, and anything that leaves outputs unwritten exits the process on purpose. The
MultiLangDaemon then stops the worker, and ECS (or the local stack) restarts it from the last
checkpoint.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn, TextIO

import structlog
from amazon_kclpy.v3 import processor

from consumer.batch.pipeline import BatchPipeline
from consumer.infra.cloudwatch import CloudWatchPublisher
from consumer.infra.logs import configure_logging, get_logger
from consumer.infra.metrics import METRICS
from consumer.settings.config import ConfigError, Settings, load_settings
from consumer.worker.checkpointing import CheckpointPolicy, LeaseGone
from consumer.worker.gc_policy import FullCollections
from consumer.worker.kcl_io import kcl_process, protocol_in
from consumer.worker.labels_pickup import start_label_pickup
from consumer.worker.wiring import build_pipeline, build_publisher

log = get_logger(__name__)

EXIT_GAVE_UP = 3
SLOW_BATCH_S = 0.5
EXIT_BAD_CONFIG = 78
EXIT_ORPHANED = 4


def _exit(code: int, event: str, **fields: Any) -> NoReturn:
    log.error(event, exit_code=code, **fields)
    sys.stderr.flush()
    raise SystemExit(code)


class FraudRecordProcessor(processor.RecordProcessorBase):  # type: ignore[misc]
    """Processes one shard: judge every record, write outputs, checkpoint after durable writes."""

    def __init__(
        self,
        settings: Settings,
        build: Callable[
            [str, Settings], tuple[BatchPipeline[Any], CheckpointPolicy]
        ] = build_pipeline,
        publisher: CloudWatchPublisher | None = None,
        collections: FullCollections | None = None,
    ) -> None:
        self._settings = settings
        self._build = build
        self._publisher = publisher
        self._collections = collections
        self._pipeline: BatchPipeline[Any] | None = None
        self._policy: CheckpointPolicy | None = None
        self._shard_id = "?"

    def initialize(self, initialize_input: Any) -> None:
        self._shard_id = initialize_input.shard_id
        # One process per shard: every line it logs (checkpoints, dead letters) names the shard,
        # so a worker log that interleaves several processors can be read per shard.
        structlog.contextvars.bind_contextvars(shard_id=self._shard_id)
        if self._publisher is not None:
            self._publisher.start()
        try:
            self._pipeline, self._policy = self._build(self._shard_id, self._settings)
        except Exception as exc:
            _exit(EXIT_GAVE_UP, "initialize_failed", shard_id=self._shard_id, error=repr(exc))
        log.info(
            "shard_initialized",
            shard_id=self._shard_id,
            sequence_number=initialize_input.sequence_number,
        )

    def process_records(self, process_records_input: Any) -> None:
        pipeline, policy = self._require()
        if policy.lease_gone:
            return  # the KCL said another worker owns the shard: no more outputs from us
        started = time.monotonic()
        behind = process_records_input.millis_behind_latest
        if behind is not None:
            METRICS.observe_ms("kcl.millis_behind_latest", behind)
        try:
            records = process_records_input.records
            policy.processed(pipeline.process(records))
            judged = time.monotonic()
            policy.commit_if_due(process_records_input.checkpointer)
            METRICS.observe_ms("batch.process", (judged - started) * 1000)
            METRICS.observe_ms("batch.total", (time.monotonic() - started) * 1000)
            if time.monotonic() - started > SLOW_BATCH_S:
                log.warning(
                    "slow_batch",
                    shard_id=self._shard_id,
                    records=len(records),
                    process_ms=round((judged - started) * 1000),
                    total_ms=round((time.monotonic() - started) * 1000),
                    millis_behind_latest=behind,
                )
            if self._collections is not None:
                self._collections.tick()  # between batches, at most once a minute
        except LeaseGone:
            log.warning("lease_gone_on_checkpoint", shard_id=self._shard_id)
        except Exception as exc:
            log.exception("process_records_failed", shard_id=self._shard_id)
            _exit(EXIT_GAVE_UP, "worker_exiting", shard_id=self._shard_id, error=repr(exc))

    def lease_lost(self, lease_lost_input: Any) -> None:
        if self._policy is not None:
            self._policy.drop()
        log.warning("lease_lost", shard_id=self._shard_id)
        self._flush_metrics()

    def shard_ended(self, shard_ended_input: Any) -> None:
        # Logged before the SHARD_END checkpoint that lets the children start: a child processor's
        # `shard_initialized` must come after it (tests/integration/test_resharding.py).
        log.info("shard_end_reached", shard_id=self._shard_id)
        _, policy = self._require()
        if policy.lease_gone:
            return
        try:
            policy.commit_shard_end(shard_ended_input.checkpointer)
        except LeaseGone:
            log.warning("lease_gone_at_shard_end", shard_id=self._shard_id)
            return
        except Exception as exc:
            _exit(EXIT_GAVE_UP, "shard_end_failed", shard_id=self._shard_id, error=repr(exc))
        log.info("shard_ended", shard_id=self._shard_id)
        self._flush_metrics()

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        _, policy = self._require()
        if policy.lease_gone:
            return
        try:
            committed = policy.commit(shutdown_requested_input.checkpointer)
        except LeaseGone:
            log.warning("lease_gone_at_shutdown", shard_id=self._shard_id)
            return
        except Exception as exc:
            _exit(EXIT_GAVE_UP, "shutdown_flush_failed", shard_id=self._shard_id, error=repr(exc))
        log.info("shutdown_flushed", shard_id=self._shard_id, checkpointed=committed)
        self._flush_metrics()

    def close(self, timeout_s: float = 5.0) -> None:
        """The process is ending: end what the pipeline started (its alert process: reaped here,
        since in a container nothing else reaps it). 0 when giving up: no wait."""
        if self._pipeline is not None:
            self._pipeline.close(timeout_s)

    def _flush_metrics(self) -> None:
        """The shard's work here is over: publish its last numbers now (bounded, never raises)."""
        if self._publisher is not None:
            self._publisher.flush()

    def _require(self) -> tuple[BatchPipeline[Any], CheckpointPolicy]:
        if self._pipeline is None or self._policy is None:
            _exit(EXIT_GAVE_UP, "not_initialized", shard_id=self._shard_id)
        return self._pipeline, self._policy


def main() -> None:
    """Entry point the MultiLangDaemon runs once per shard (`executableName`)."""
    # The daemon owns graceful shutdown: SIGTERM goes to it (ECS), and it asks us to checkpoint
    # through `shutdown_requested`. A SIGTERM that reaches this child directly must not kill it
    # before that request arrives.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    protocol_out = claim_stdout()
    configure_logging(os.environ.get("FRAUD_LOG_LEVEL", "info"), component="processor")
    try:
        settings = load_settings()
    except ConfigError as exc:
        _exit(EXIT_BAD_CONFIG, "bad_config", error=str(exc))
    configure_logging(settings.log_level, component="processor")
    publisher = build_publisher(settings)
    if publisher is not None:
        # Also on the way out after a give-up (SystemExit): the numbers that explain it.
        atexit.register(publisher.close)
    processor = FraudRecordProcessor(
        settings, publisher=publisher, collections=FullCollections.install()
    )
    exit_when_orphaned(os.getppid())
    start_label_pickup(settings)  # labels in, in the background (docs/labels.md)
    try:
        kcl_process(processor, protocol_in(), protocol_out, sys.stderr).run()
        processor.close()  # the daemon closed the pipe: the shard's work here is over
    except SystemExit as stop:
        # A deliberate exit (give-up, bad config, failed checkpoint) must end the process now:
        # the daemon waits for it before it stops the worker, and background threads (alerts
        # still retrying) would hold a normal interpreter exit for up to their whole deadline.
        # Nothing they could still write would be checkpointed by this process anyway.
        processor.close(timeout_s=0)  # the alert process too: killed and reaped, not orphaned
        if publisher is not None:
            publisher.close()
        sys.stderr.flush()
        os._exit(stop.code if isinstance(stop.code, int) else 1)


def exit_when_orphaned(daemon_pid: int, poll_s: float = 1.0) -> threading.Thread:
    """Exit within `poll_s` once the daemon is gone (this process re-parented).

    A processor that outlives its daemon (the JVM exited or was killed while we were retrying)
    can never checkpoint again, and a late S3 write from it could overwrite the object the next
    owner's replay wrote under the same key with fewer lines. So it stops at once.
    """

    def watch() -> None:
        while os.getppid() == daemon_pid:
            time.sleep(poll_s)
        log.error("daemon_gone", daemon_pid=daemon_pid)
        sys.stderr.flush()
        os._exit(EXIT_ORPHANED)

    watcher = threading.Thread(target=watch, name="orphan-guard", daemon=True)
    watcher.start()
    return watcher


def claim_stdout() -> TextIO:
    """Keep the real stdout for the protocol alone; send anything else written to fd 1 or
    sys.stdout (a library's print, a stray log handler) to stderr instead."""
    protocol_out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    sys.stdout.flush()
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return protocol_out


if __name__ == "__main__":
    main()
