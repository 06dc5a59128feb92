"""One batch of Kinesis records in, outputs handed to the sinks: decode, judge, route.

Nothing here checkpoints: the CheckpointPolicy decides when handed-over outputs are durable.
Every record leaves this function in exactly one place: the dead letters (invalid), the flagged
buffer (and the alert list), or nowhere (judged and clean).
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol

from consumer.config import Settings
from consumer.logs import get_logger
from consumer.metrics import METRICS
from consumer.outputs import dead_letter_line, flagged_line, to_json
from consumer.records import InvalidRecord, Transaction, parse_transaction
from consumer.rules import History, judge, severity_at_least
from consumer.sinks.alerts import Alert, AlertPublisher
from consumer.sinks.s3_batches import RecordPosition, S3JsonLinesBatch

log = get_logger(__name__)

NO_HISTORY = History()


class KinesisRecord(Protocol):
    """What the pipeline needs of a record (amazon_kclpy.messages.Record has it)."""

    @property
    def binary_data(self) -> bytes: ...
    @property
    def sequence_number(self) -> str: ...
    @property
    def sub_sequence_number(self) -> int | None: ...
    @property
    def timestamp_millis(self) -> int: ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BatchPipeline:
    """Judges the records of one shard and routes every outcome to its sink."""

    def __init__(
        self,
        shard_id: str,
        settings: Settings,
        flagged: S3JsonLinesBatch,
        dead_letters: S3JsonLinesBatch,
        alerts: AlertPublisher,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.shard_id = shard_id
        self._settings = settings
        self._flagged = flagged
        self._dead_letters = dead_letters
        self._alerts = alerts
        self._now = now

    def process(self, records: Iterable[KinesisRecord]) -> RecordPosition | None:
        """Route every record; publish this batch's alerts; return the last record's position."""
        alerts: list[Alert] = []
        last: RecordPosition | None = None
        detected_at = self._now()
        judged = flagged = invalid = 0
        for record in records:
            position = RecordPosition(
                self.shard_id,
                record.sequence_number,
                record.sub_sequence_number or 0,
                record.timestamp_millis,
            )
            last = position
            parsed: Transaction | InvalidRecord
            try:
                data = record.binary_data
            except (binascii.Error, ValueError) as exc:
                data, parsed = b"", InvalidRecord(f"data: not base64 ({exc})")
            else:
                parsed = parse_transaction(data)
            if isinstance(parsed, InvalidRecord):
                invalid += 1
                line = to_json(dead_letter_line(data, position, parsed.reason))
                self._dead_letters.add(line.encode(), position)
                log.info(
                    "record_invalid", sequence_number=position.sequence_number, error=parsed.reason
                )
                continue
            judged += 1
            decision = judge(parsed, NO_HISTORY, self._settings.rules)
            if not decision.flagged:
                continue
            flagged += 1
            message = to_json(flagged_line(parsed, decision, position, detected_at))
            self._flagged.add(message.encode(), position)
            if severity_at_least(decision.severity, self._settings.alert_severity):
                alerts.append(
                    Alert(
                        transaction_id=parsed.transaction_id,
                        account_id=parsed.account_id,
                        severity=decision.severity or "low",
                        rules=tuple(r.rule for r in decision.reasons),
                        message=message,
                    )
                )
        self._alerts.publish(alerts)
        METRICS.incr("records.judged", judged)
        METRICS.incr("records.flagged", flagged)
        METRICS.incr("records.invalid", invalid)
        return last
