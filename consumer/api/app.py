"""The HTTP side: routes, auth, rate limits, request ids, the error contract.

Starlette routes the requests; one plain ASGI middleware around it (`RequestContext`) gives
every request its id (X-Request-Id in, else made; echoed out; bound to every log line the
request writes), its one `api_request` log line, its metrics, and the catch-all: an exception
becomes a 500 carrying the request id, never a stack trace. Every error is one JSON shape
(models.ErrorResponse).

Judging and Redis run on a worker thread (anyio's pool): a slow or unreachable Redis holds that
request, not the event loop, so /healthz and /readyz still answer.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog
from anyio import to_thread
from botocore.exceptions import BotoCoreError, ClientError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consumer.api.keys import ApiKey, KeyRing, file_reader, secret_reader
from consumer.api.metrics import api_datums, record_request
from consumer.api.models import (
    BatchItem,
    BatchResponse,
    ErrorResponse,
    Ingested,
    Ready,
)
from consumer.api.openapi import document_bytes
from consumer.api.ratelimit import RateLimiter
from consumer.api.scoring import Failed, Invalid, Judged, Scorer
from consumer.api.settings import INGEST_RETRY, ApiSettings, load_api_settings
from consumer.api.sources import model_source_for, redis_client, ruleset_source
from consumer.infra.aws_clients import aws_client
from consumer.infra.cloudwatch import CloudWatchPublisher
from consumer.infra.logs import configure_logging, get_logger
from consumer.infra.metrics import METRICS
from consumer.infra.retry import OutputGaveUp, call_with_retries

__all__ = ["MAX_BATCH", "MAX_BATCH_BYTES", "MAX_RECORD_BYTES", "Service", "build_app", "create_app"]

log = get_logger(__name__)

MAX_RECORD_BYTES = 1024 * 1024
"""A Kinesis record's limit (data plus partition key, 1 MiB): the contract's records are what
fits in one (docs/contract.md, 'Bounds'; load_test/entries.py checks the same)."""
MAX_BATCH = 500
"""Transactions a batch request may carry: a PutRecords call's limit, the stream's own batch."""
MAX_BATCH_BYTES = 5 * 1024 * 1024
"""A batch request's body limit: a PutRecords call's 5 MiB."""

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
_JSON = "application/json"


def _encode(value: Any) -> bytes:
    return msgspec.json.encode(value)


def error(status: int, code: str, reason: str, request: Request, **headers: str) -> Response:
    body = ErrorResponse(code, reason, request.scope.get("state", {}).get("request_id", ""))
    return Response(_encode(body), status, headers=headers or None, media_type=_JSON)


class _TooLarge(Exception):
    """The request body is over its limit (answered 413); never leaves this module."""


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (_TooLarge) as soon as it is known to exceed `limit`: by its
    Content-Length, or while reading a chunked one; never held whole when too large."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass
class Service:
    """What the routes use: settings, keys, limits, the scorer, Redis, the stream."""

    settings: ApiSettings
    keys: KeyRing
    limiter: RateLimiter
    scorer: Scorer
    redis: Any
    kinesis: Callable[[], Any]

    def authorize(self, request: Request) -> ApiKey | Response:
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return error(
                401,
                "unauthorized",
                "an API key is required: Bearer <key>",
                request,
                **{"WWW-Authenticate": "Bearer"},
            )
        key = self.keys.match(presented.strip())
        if key is None:
            return error(
                401, "unauthorized", "not a key in force", request, **{"WWW-Authenticate": "Bearer"}
            )
        request.scope["state"]["key_id"] = key.id
        rate = key.rate_per_s or self.settings.rate_per_s
        burst = key.burst or self.settings.burst
        wait = self.limiter.take(key.id, rate, burst)
        if wait > 0:
            METRICS.incr("api.rate_limited")
            retry_after = str(max(1, int(wait + 0.999)))
            return error(
                429,
                "rate_limited",
                f"over {rate:g} requests/s (burst {burst})",
                request,
                **{"Retry-After": retry_after},
            )
        return key

    def put(self, body: bytes, account_id: str) -> Ingested:
        """The record on the stream, account id as partition key (bounded retries)."""
        stream = self.settings.stream
        assert stream is not None
        client = self.kinesis()
        reply = call_with_retries(
            "kinesis_put",
            lambda: client.put_record(StreamName=stream, Data=body, PartitionKey=account_id),
            INGEST_RETRY,
        )
        return Ingested(reply["ShardId"], reply["SequenceNumber"])


def _ingest_wanted(request: Request, always: bool) -> bool:
    if always:
        return True
    return request.query_params.get("ingest", "").lower() in ("true", "1", "yes")


def _score_route(service: Service, always_ingest: bool) -> Callable[[Request], Awaitable[Response]]:
    async def score(request: Request) -> Response:
        key = service.authorize(request)
        if isinstance(key, Response):
            return key
        ingest = _ingest_wanted(request, always_ingest)
        try:
            body = await read_body(request, MAX_RECORD_BYTES)
        except _TooLarge:
            return error(413, "too_large", f"a record is at most {MAX_RECORD_BYTES} bytes", request)
        if ingest and service.settings.stream is None:
            return error(
                503, "ingest_unavailable", "FRAUD_STREAM is not set: ingest is off", request
            )
        (outcome,) = await to_thread.run_sync(service.scorer.score, [body])
        if isinstance(outcome, Invalid):
            return error(400, "invalid_transaction", outcome.reason, request)
        if isinstance(outcome, Failed):
            raise outcome.error
        assert isinstance(outcome, Judged)
        response = outcome.response
        if ingest:
            account = outcome.transaction.account_id
            if len(body) + len(account.encode()) > MAX_RECORD_BYTES:
                return error(413, "too_large", "record and partition key exceed 1 MiB", request)
            try:
                response.ingested = await to_thread.run_sync(service.put, body, account)
            except (OutputGaveUp, ClientError, BotoCoreError) as exc:
                log.warning("api_ingest_failed", error=repr(exc))
                return error(
                    503,
                    "ingest_failed",
                    "the stream did not take the record; retry "
                    "(a retried transaction id counts once)",
                    request,
                )
        response.latency_ms = _elapsed_ms(request)
        return Response(_encode(response), media_type=_JSON)

    return score


class _Batch(msgspec.Struct):
    transactions: list[msgspec.Raw]


def _batch_route(service: Service) -> Callable[[Request], Awaitable[Response]]:
    async def score_batch(request: Request) -> Response:
        key = service.authorize(request)
        if isinstance(key, Response):
            return key
        try:
            body = await read_body(request, MAX_BATCH_BYTES)
        except _TooLarge:
            return error(413, "too_large", f"a batch is at most {MAX_BATCH_BYTES} bytes", request)
        try:
            batch = msgspec.json.decode(body, type=_Batch)
        except msgspec.DecodeError as exc:
            return error(
                400,
                "invalid_batch",
                f'must be {{"transactions": [<transaction>, ...]}}: {exc}',
                request,
            )
        items = [bytes(raw) for raw in batch.transactions]
        if not items:
            return error(400, "invalid_batch", "transactions: empty", request)
        if len(items) > MAX_BATCH:
            return error(
                413,
                "too_many",
                f"at most {MAX_BATCH} transactions a batch, got {len(items)}",
                request,
            )
        outcomes = await to_thread.run_sync(service.scorer.score, items)
        results: list[BatchItem] = []
        for index, (data, outcome) in enumerate(zip(items, outcomes, strict=True)):
            if len(data) > MAX_RECORD_BYTES:
                results.append(BatchItem(index, 413, error="a record is at most 1048576 bytes"))
            elif isinstance(outcome, Invalid):
                results.append(BatchItem(index, 400, error=outcome.reason))
            elif isinstance(outcome, Failed):
                log.error("api_item_failed", index=index, error=repr(outcome.error))
                results.append(BatchItem(index, 500, error="internal error"))
            else:
                assert isinstance(outcome, Judged)
                results.append(BatchItem(index, 200, decision=outcome.response))
        rules_version, model_version = service.scorer.versions
        answer = BatchResponse(results, rules_version, model_version, _elapsed_ms(request))
        return Response(_encode(answer), media_type=_JSON)

    return score_batch


def _elapsed_ms(request: Request) -> float:
    started: float = request.scope.get("state", {}).get("started", time.perf_counter())
    return round((time.perf_counter() - started) * 1000, 3)


def _health_routes(service: Service) -> list[Route]:
    openapi = document_bytes()

    async def healthz(request: Request) -> Response:
        return Response(b'{"ok":true}', media_type=_JSON)

    async def readyz(request: Request) -> Response:
        def ping() -> bool:
            try:
                return bool(service.redis.ping())
            except Exception:
                return False

        redis_ok = await to_thread.run_sync(ping)
        rules_version, model_version = service.scorer.versions
        ready = Ready(redis_ok, redis_ok, rules_version, model_version)
        return Response(_encode(ready), 200 if redis_ok else 503, media_type=_JSON)

    async def openapi_json(request: Request) -> Response:
        return Response(openapi, media_type=_JSON)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    headers = dict(exc.headers or {})
    return error(
        exc.status_code, codes.get(exc.status_code, "http_error"), exc.detail, request, **headers
    )


async def _internal(request: Request, exc: Exception) -> Response:
    return error(500, "internal", "internal error", request)


class RequestContext:
    """Request id, one log line, metrics and the catch-all 500, around the whole app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = _header(scope, b"x-request-id")
        request_id = given if given and _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state.update(request_id=request_id, started=started)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            log.error("api_internal_error", error=repr(exc), exc_info=exc)
            if status == 0:
                body = _encode(ErrorResponse("internal", "internal error", request_id))
                status = 500
                await send_with_id(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send_with_id({"type": "http.response.body", "body": body})
        finally:
            millis = (time.perf_counter() - started) * 1000
            route_obj = scope.get("route")
            route = getattr(route_obj, "path", None) or "unmatched"
            record_request(route, status, millis)
            log.info(
                "api_request",
                method=scope.get("method"),
                route=route,
                status=status,
                latency_ms=round(millis, 3),
                key_id=state.get("key_id"),
            )
            structlog.contextvars.unbind_contextvars("request_id")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def build_app(service: Service) -> ASGIApp:
    routes = [
        Route("/v1/score", _score_route(service, always_ingest=False), methods=["POST"]),
        Route("/v1/transactions", _score_route(service, always_ingest=True), methods=["POST"]),
        Route("/v1/score:batch", _batch_route(service), methods=["POST"]),
        *_health_routes(service),
    ]
    # Exception: Starlette's outermost middleware answers with this handler (then re-raises to
    # RequestContext, which logs it): a 500 in the API's JSON, never its plain-text page.
    app = Starlette(
        routes=routes, exception_handlers={HTTPException: _http_error, Exception: _internal}
    )
    app.router.redirect_slashes = False
    return RequestContext(app)


def build_service(settings: ApiSettings) -> Service:
    """Everything the routes need, from validated settings. Raises what start-up must report:
    KeysError, NoUsableRuleSet, ModelLoadError."""
    worker = settings.worker
    region = worker.region
    if settings.keys_secret is not None:
        secret = settings.keys_secret
        read = secret_reader(secret, lambda: aws_client("secretsmanager", region))
        keys = KeyRing(read, f"secret {secret}", settings.keys_refresh_s)
    else:
        assert settings.keys_file is not None
        keys = KeyRing(file_reader(settings.keys_file), settings.keys_file, settings.keys_refresh_s)
    rulesets = ruleset_source(worker)
    model = model_source_for(worker)
    redis_conn = redis_client(worker)
    scorer = Scorer(worker, redis_conn, rulesets, model)
    return Service(
        settings, keys, RateLimiter(), scorer, redis_conn, lambda: aws_client("kinesis", region)
    )


def start_background(service: Service) -> CloudWatchPublisher | None:
    """The keys' refresh and, unless FRAUD_METRICS_ENABLED=false, the metrics publisher."""
    service.keys.start()
    metrics = service.settings.worker.metrics
    if not metrics.enabled:
        return None
    import boto3
    from botocore.config import Config

    session: Any = boto3.session.Session()
    cloudwatch = session.client(
        "cloudwatch",
        region_name=service.settings.worker.region,
        config=Config(
            retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=5
        ),
    )
    publisher = CloudWatchPublisher(cloudwatch, metrics, datums_of=api_datums)
    publisher.start()
    return publisher


def create_app() -> ASGIApp:
    """The app for one server process (uvicorn's factory with --workers N): settings from the
    environment (`fraudstream serve` validated them already), logging, background threads."""
    settings = load_api_settings()
    configure_logging(settings.worker.log_level, component="api", pid=os.getpid())
    service = build_service(settings)
    start_background(service)
    return build_app(service)
