"""Alerts to SNS with PublishBatch: ten per call, only the failed entries retried.

Each alert carries its transaction_id as the deduplication key (MessageDeduplicationId on a FIFO
topic), severity and rules as message attributes, and a subject a person can read on a phone,
with the account masked to its last four characters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import simplejson

from consumer.infra.logs import get_logger
from consumer.infra.metrics import METRICS
from consumer.infra.retry import PartialFailure, call_with_retries
from consumer.records import RecordPosition
from consumer.settings.config import RetryConfig

log = get_logger(__name__)

SNS_BATCH_LIMIT = 10
PUBLISH_THREADS = 4
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
    position: RecordPosition  # where the record is, to dead-letter an alert SNS refuses


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


@dataclass(frozen=True, slots=True)
class RejectedAlert:
    """An alert SNS refused for good (a sender fault): it must be kept somewhere durable."""

    alert: Alert
    code: str
    reason: str


class AlertSink(Protocol):
    """Where a batch's alerts go: `AlertPublisher` in this process, or
    `consumer.sinks.alert_process.AlertProcess` in a child process."""

    def publish(self, alerts: Sequence[Alert]) -> list[RejectedAlert]: ...

    def close(self, timeout_s: float = 5.0) -> None:
        """The processor's work is over (or it is giving up: `timeout_s` 0)."""


class AlertPublisher:
    """Publishes alerts to one topic; a FIFO topic also gets group and deduplication ids."""

    def __init__(self, sns: Any, topic_arn: str, retry: RetryConfig) -> None:
        self._sns = sns
        self._topic_arn = topic_arn
        self._fifo = topic_arn.endswith(".fifo")
        self._retry = retry
        self._pool = ThreadPoolExecutor(max_workers=PUBLISH_THREADS, thread_name_prefix="sns")

    def _entry(self, index: int, alert: Alert) -> dict[str, Any]:
        message = alert.message
        if len(message.encode()) > SNS_MESSAGE_LIMIT - ENTRY_OVERHEAD:
            message = _without_transaction(message)
        entry: dict[str, Any] = {
            "Id": str(index),
            "Message": message,
            "Subject": subject_for(alert),
            "MessageAttributes": {
                "severity": {"DataType": "String", "StringValue": alert.severity},
                "rules": {"DataType": "String", "StringValue": ",".join(alert.rules)},
                "transaction_id": {
                    "DataType": "String",
                    "StringValue": _attribute_safe(alert.transaction_id),
                },
            },
        }
        if self._fifo:
            entry["MessageDeduplicationId"] = _dedup_id(alert.transaction_id)
            # Order per account without putting the account id itself on the message.
            entry["MessageGroupId"] = _digest(alert.account_id)[:32]
        return entry

    def publish(self, alerts: Sequence[Alert]) -> list[RejectedAlert]:
        """Publish every alert at least once, in PublishBatch calls of at most 10 entries and
        256 KiB; return those SNS rejected for good; raise OutputGaveUp past the retry budget."""
        rejected: list[RejectedAlert] = []
        calls = [
            partial(
                call_with_retries,
                "sns_alerts",
                partial(self._send, {entry["Id"]: entry for entry in chunk}, alerts, rejected),
                self._retry,
            )
            for chunk in _chunks([self._entry(i, a) for i, a in enumerate(alerts)])
        ]
        if len(calls) == 1 or self._fifo:
            # FIFO topics keep each account's alerts in order: one call after the other.
            for call in calls:
                call()
        else:
            # Standard topics: the calls of a batch wait on the network side by side.
            futures = [self._pool.submit(call) for call in calls]
            errors = [future.exception() for future in futures]
            for error in errors:
                if error is not None:
                    raise error
        METRICS.incr("alerts.sent", len(alerts) - len(rejected))
        return rejected

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the publishing threads (a call under way finishes)."""
        self._pool.shutdown(wait=timeout_s > 0, cancel_futures=True)

    def _send(
        self,
        pending: dict[str, dict[str, Any]],
        alerts: Sequence[Alert],
        rejected: list[RejectedAlert],
    ) -> None:
        """One PublishBatch of what is still pending; successes and rejections leave it."""
        response = self._sns.publish_batch(
            TopicArn=self._topic_arn, PublishBatchRequestEntries=list(pending.values())
        )
        for ok in response.get("Successful", []):
            pending.pop(ok["Id"], None)
        failed = response.get("Failed", [])
        if not failed:
            return
        METRICS.incr("alerts.failed_entries", len(failed))
        for fault in failed:
            if fault.get("SenderFault"):
                # Our request is wrong for this entry: retrying cannot help. The caller keeps
                # it durably (dead letters) before the record is checkpointed.
                pending.pop(fault["Id"], None)
                METRICS.incr("alerts.rejected")
                code, reason = fault.get("Code", "?"), fault.get("Message", "")
                log.error("alert_rejected", code=code, reason=reason)
                rejected.append(RejectedAlert(alerts[int(fault["Id"])], code, reason))
        if pending:
            codes = sorted({f.get("Code", "?") for f in failed if not f.get("SenderFault")})
            raise PartialFailure(f"{len(pending)} alerts failed: {', '.join(codes)}")


ENTRY_OVERHEAD = 4096  # subject, attributes and ids of one entry, generously
SNS_BATCH_BYTES = 256 * 1024


def publish_calls(alerts: Sequence[Alert]) -> int:
    """How many PublishBatch calls `publish` makes for `alerts` (a message too large for SNS,
    sent shorter, is counted at its full size: at most one call more)."""
    return len(_call_sizes([len(alert.message.encode()) for alert in alerts]))


def _chunks(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split entries into PublishBatch calls: at most 10 each and 256 KiB in total."""
    chunks: list[list[dict[str, Any]]] = []
    start = 0
    for count in _call_sizes([len(entry["Message"].encode()) for entry in entries]):
        chunks.append(entries[start : start + count])
        start += count
    return chunks


def _call_sizes(message_bytes: list[int]) -> list[int]:
    """How many entries of these message sizes go in each call, in order: at most 10 a call
    and 256 KiB in all (each entry counted with ENTRY_OVERHEAD)."""
    counts: list[int] = []
    count = size = 0
    for length in message_bytes:
        entry_size = length + ENTRY_OVERHEAD
        if count and (count == SNS_BATCH_LIMIT or size + entry_size > SNS_BATCH_BYTES):
            counts.append(count)
            count = size = 0
        count += 1
        size += entry_size
    if count:
        counts.append(count)
    return counts


def _without_transaction(message: str) -> str:
    """A record too large for SNS: every field but the record itself (which is in S3)."""
    line = simplejson.loads(message, use_decimal=True)
    line.pop("transaction", None)
    line["transaction_truncated"] = True
    return str(simplejson.dumps(line, use_decimal=True, separators=(",", ":")))


def _attribute_safe(value: str) -> str:
    """SNS attribute values refuse control characters; an odd id travels as its digest."""
    if len(value) <= 256 and value.isprintable():
        return value
    return _digest(value)


def _dedup_id(transaction_id: str) -> str:
    """FIFO deduplication ids are at most 128 characters of a limited alphabet."""
    if len(transaction_id) <= 128 and all(ch.isalnum() or ch in "-_.:" for ch in transaction_id):
        return transaction_id if transaction_id.isascii() else _digest(transaction_id)
    return _digest(transaction_id)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
