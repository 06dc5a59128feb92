"""The alerts' tap queue, drained while the load test runs rather than once at its end.

moto's SQS checks every message's retention against the queue's attributes, which it recomputes
over the whole queue: a receive costs time in proportion to the queue's length per message, so
a queue left to fill for minutes takes many minutes to drain afterwards (2,000 messages: 107 s
in process), and SNS's deliveries into it slow down too. Drained every second, the queue stays
short. The alert latency does not depend on when a message is read: it comes from the SNS
envelope's Timestamp.
"""

from __future__ import annotations

import atexit
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from consumer.infra.readback import drain_queue


def each_once(envelopes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The SNS envelopes in arrival order, each MessageId once (SQS and SNS deliver at least
    once; one without an id counts as its own)."""
    unique: dict[str, dict[str, Any]] = {}
    for index, message in enumerate(envelopes):
        unique.setdefault(str(message.get("MessageId", index)), message)
    return list(unique.values())


class AlertTap(threading.Thread):
    """Receives and deletes the queue's messages every `interval_s` until `stop`.

    A drain that fails (moto busy, a refused delete) is reported on stderr, counted in `errors`
    and tried again at the next tick; what it had received is kept. A message whose delete was
    refused comes back later: messages are told apart by their SNS MessageId.
    """

    def __init__(self, sqs: Any, queue_url: str, interval_s: float = 1.0) -> None:
        super().__init__(daemon=True, name="alert-tap")
        self._sqs = sqs
        self._queue_url = queue_url
        self._interval_s = interval_s
        self._halt = threading.Event()
        self._received: list[dict[str, Any]] = []
        self.errors = 0

    def run(self) -> None:
        while not self._halt.wait(self._interval_s):
            try:
                drain_queue(self._sqs, self._queue_url, into=self._received)
            except Exception as exc:  # the next tick tries again; stop() drains once more
                self.errors += 1
                print(f"alert tap: draining failed, will retry: {exc!r}", file=sys.stderr)

    def stop(self) -> list[dict[str, Any]]:
        """Every message received, the queue drained one last time (an error here raises:
        alerts would be missing from the report), each message once."""
        self._halt.set()
        self.join()
        drain_queue(self._sqs, self._queue_url, into=self._received)
        return each_once(self._received)


def detach_tap(sns: Any, sqs: Any, topic_arn: str, queue_url: str) -> list[str]:
    """Unsubscribe the stack's SQS tap from the alerts topic; return the queue ARNs to put back.

    moto's SNS delivers to an SQS subscriber through `send_message`, which reads the queue's
    attributes, and those count every message held (`Queue.approximate_number_of_messages`):
    each alert costs time in proportion to the queue's length, and so does each receive. A tap
    that falls behind (a burst of alerts, a stall of the machine) therefore slows every
    PublishBatch of the alert processes, and with them every checkpoint, and falls further
    behind (measured: 13 ms a PublishBatch of 10 on an empty queue, 1.5 s with 4,000 held; a
    30-minute soak at 500 records/s went from 0.1 s to 60 s batches within 4 minutes of a
    stall). Real SNS has no such cost.
    """
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    detached: list[str] = []
    for subscription in sns.list_subscriptions_by_topic(TopicArn=topic_arn).get(
        "Subscriptions", []
    ):
        if subscription.get("Endpoint") == queue_arn:
            sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])
            detached.append(queue_arn)
    drain_queue(sqs, queue_url)
    return detached


class _Receiver(BaseHTTPRequestHandler):
    """Takes SNS's HTTP deliveries: each POST body is one envelope (Type, MessageId, Message,
    Timestamp, ...), the same JSON the SQS tap's messages carry."""

    server: _TapServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        try:
            envelope = json.loads(body)
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        if isinstance(envelope, dict) and envelope.get("Type", "Notification") == "Notification":
            with self.server.lock:
                self.server.received.append(envelope)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one line per alert would bury the load test's own output."""


class _TapServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str) -> None:
        super().__init__((host, 0), _Receiver)
        self.lock = threading.Lock()
        self.received: list[dict[str, Any]] = []


class HttpAlertTap:
    """The alerts topic's deliveries to an HTTP endpoint of this process, for one run, in place
    of the stack's SQS tap (`detach_tap` says why the queue does not hold up on moto).

    `start` serves on 127.0.0.1 (a free port), subscribes it to the topic and takes the SQS tap
    off; `stop` unsubscribes it, puts the SQS tap back and returns every envelope received,
    each once (by MessageId). moto posts each alert synchronously within the publish, so an
    alert is here by the time the alert process's PublishBatch returns; the latency comes from
    the envelope's Timestamp either way.
    """

    def __init__(self, sns: Any, sqs: Any, topic_arn: str, queue_url: str) -> None:
        self._sns, self._sqs = sns, sqs
        self._topic_arn, self._queue_url = topic_arn, queue_url
        self._server = _TapServer("127.0.0.1")
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="alert-tap-http", daemon=True
        )
        self._subscription: str | None = None
        self._detached: list[str] = []
        self._closed = False

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> None:
        """Serve, take off what a run that died left subscribed, subscribe this endpoint; the
        stack is put back at `stop`, or at exit if the run ends before it."""
        self._thread.start()
        self._remove_stale_endpoints()
        self._detached = detach_tap(self._sns, self._sqs, self._topic_arn, self._queue_url)
        atexit.register(self.close)
        self._subscription = self._sns.subscribe(
            TopicArn=self._topic_arn, Protocol="http", Endpoint=self.endpoint
        )["SubscriptionArn"]

    def _remove_stale_endpoints(self) -> None:
        """A loopback HTTP subscription whose run is gone breaks publishing on moto: its delivery
        cannot connect, and PublishBatch then answers with the entries neither Successful nor
        Failed, which the alert processes retry until they give up. Remove any."""
        for subscription in self._sns.list_subscriptions_by_topic(TopicArn=self._topic_arn).get(
            "Subscriptions", []
        ):
            if subscription.get("Protocol") == "http" and subscription.get(
                "Endpoint", ""
            ).startswith("http://127.0.0.1:"):
                self._sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])

    def close(self) -> None:
        """Unsubscribe this endpoint, put the SQS tap back and stop serving; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._subscription is not None:
                self._sns.unsubscribe(SubscriptionArn=self._subscription)
            for queue_arn in self._detached:
                self._sns.subscribe(TopicArn=self._topic_arn, Protocol="sqs", Endpoint=queue_arn)
        finally:
            if self._thread.is_alive():
                self._server.shutdown()
            self._server.server_close()

    def stop(self) -> list[dict[str, Any]]:
        """`close`, then every envelope received, each once."""
        self.close()
        with self._server.lock:
            received = list(self._server.received)
        return each_once(received)
