"""Alerts to SNS with PublishBatch: ten per call, only the failed entries retried.

Each alert carries its transaction_id as the deduplication key (MessageDeduplicationId on a FIFO
topic), severity and rules as message attributes, and a subject a person can read on a phone,
with the account masked to its last four characters.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from consumer.config import RetryConfig
from consumer.logs import get_logger
from consumer.metrics import METRICS
from consumer.retry import PartialFailure, call_with_retries

log = get_logger(__name__)

SNS_BATCH_LIMIT = 10
SNS_MESSAGE_LIMIT = 256 * 1024
SUBJECT_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Alert:
    """One flagged transaction worth waking someone for."""

    transaction_id: str
    account_id: str
    severity: str
    rules: tuple[str, ...]
    message: str  # JSON text: the same fields as the S3 line


def mask_account(account_id: str) -> str:
    """Only the last four characters of an account ever reach a person."""
    return "****" + account_id[-4:] if len(account_id) > 4 else "****"


def subject_for(alert: Alert) -> str:
    subject = (
        f"fraudstream {alert.severity}: account {mask_account(alert.account_id)}"
        f" ({', '.join(alert.rules)})"
    )
    # SNS subjects: ASCII printable, no line breaks, at most 100 characters.
    subject = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in subject)
    return subject[:SUBJECT_LIMIT]


class AlertPublisher:
    """Publishes alerts to one topic; a FIFO topic also gets group and deduplication ids."""

    def __init__(self, sns: Any, topic_arn: str, retry: RetryConfig) -> None:
        self._sns = sns
        self._topic_arn = topic_arn
        self._fifo = topic_arn.endswith(".fifo")
        self._retry = retry

    def _entry(self, index: int, alert: Alert) -> dict[str, Any]:
        message = alert.message
        if len(message.encode()) > SNS_MESSAGE_LIMIT - 4096:
            # A huge record cannot ride in an alert; the full line is in S3.
            message = json.dumps({"transaction_id": alert.transaction_id, "truncated": True})
        entry: dict[str, Any] = {
            "Id": str(index),
            "Message": message,
            "Subject": subject_for(alert),
            "MessageAttributes": {
                "severity": {"DataType": "String", "StringValue": alert.severity},
                "rules": {"DataType": "String", "StringValue": ",".join(alert.rules)},
                "transaction_id": {"DataType": "String", "StringValue": alert.transaction_id},
            },
        }
        if self._fifo:
            entry["MessageDeduplicationId"] = _dedup_id(alert.transaction_id)
            # Order per account without putting the account id itself on the message.
            entry["MessageGroupId"] = hashlib.sha256(alert.account_id.encode()).hexdigest()[:32]
        return entry

    def publish(self, alerts: Sequence[Alert]) -> None:
        """Publish every alert (at least once); raise OutputGaveUp past the retry budget."""
        for start in range(0, len(alerts), SNS_BATCH_LIMIT):
            chunk = alerts[start : start + SNS_BATCH_LIMIT]
            pending = {str(i): self._entry(i, alert) for i, alert in enumerate(chunk)}
            call_with_retries("sns_alerts", partial(self._send, pending), self._retry)
            METRICS.incr("alerts.sent", len(chunk))

    def _send(self, pending: dict[str, dict[str, Any]]) -> None:
        """One PublishBatch of what is still pending; successes leave `pending`."""
        response = self._sns.publish_batch(
            TopicArn=self._topic_arn, PublishBatchRequestEntries=list(pending.values())
        )
        for ok in response.get("Successful", []):
            pending.pop(ok["Id"], None)
        failed = response.get("Failed", [])
        if failed:
            METRICS.incr("alerts.failed_entries", len(failed))
            codes = sorted({f.get("Code", "?") for f in failed})
            sender_faults = [f for f in failed if f.get("SenderFault")]
            if sender_faults:
                # Our request is wrong for these entries: retrying cannot help. Log and count.
                for fault in sender_faults:
                    pending.pop(fault["Id"], None)
                    METRICS.incr("alerts.rejected")
                    log.error("alert_rejected", code=fault.get("Code"), msg=fault.get("Message"))
            if pending:
                raise PartialFailure(f"{len(pending)} alerts failed: {', '.join(codes)}")


def _dedup_id(transaction_id: str) -> str:
    """FIFO deduplication ids are at most 128 characters of a limited alphabet."""
    if len(transaction_id) <= 128 and all(ch.isalnum() or ch in "-_.:" for ch in transaction_id):
        return transaction_id if transaction_id.isascii() else _digest(transaction_id)
    return _digest(transaction_id)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
