"""`python -m consumer.local.kinesis_server --port 4567`: the local Kinesis server on 127.0.0.1.

hypercorn serves the app: HTTP/1.1 for boto3 and HTTP/2 with prior knowledge (h2c) on the same
plain port for the KCL, whose Java SDK opens its connections that way. It stops on SIGTERM or
SIGINT. Logs are JSON lines on stderr; there is no access log (a line per GetRecords poll).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

from consumer.infra.logs import configure_logging, get_logger
from consumer.local.kinesis_server.app import KinesisApp
from consumer.local.kinesis_server.store import Streams


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m consumer.local.kinesis_server", description=__doc__
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4567, help="plain HTTP port (default 4567)")
    parser.add_argument("--region", default="us-east-1", help="region in the stream ARNs")
    parser.add_argument("--account", default="000000000000", help="account in the stream ARNs")
    return parser.parse_args(argv)


def _quiet_cancellation(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """At shutdown hypercorn cancels the task of every connection still open (the SDKs keep
    theirs), and asyncio would log each cancellation as an error with a traceback. A
    cancellation is the shutdown working; anything else still goes to the default handler."""
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


async def _serve(args: argparse.Namespace) -> None:
    config = Config()
    config.bind = [f"{args.host}:{args.port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")  # to the JSON lines on stderr
    config.keep_alive_timeout = 75  # the SDKs keep their connections pooled between polls
    # hypercorn closes a connection after 1,000 requests by default. The KCL polls every shard
    # twice a second on one HTTP/2 connection, so that was every 2-4 minutes, and a GetRecords
    # caught in the close waited 10 s for the SDK to give up on it (a 30-minute soak's p99 was
    # 10 s for that alone; docs/performance.md). A connection here lives as long as its client.
    config.keep_alive_max_requests = 2**62
    config.h2_max_concurrent_streams = 1000
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_cancellation)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    app = KinesisApp(Streams(args.region, args.account))
    log = get_logger("kinesis_server")
    log.info("listening", host=args.host, port=args.port)
    try:
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    finally:
        log.info("stopped", calls=dict(app.calls), errors=dict(app.errors))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("info", service="kinesis-server")
    try:
        asyncio.run(_serve(args))
    except OSError as error:
        get_logger("kinesis_server").error("cannot_listen", port=args.port, error=str(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
