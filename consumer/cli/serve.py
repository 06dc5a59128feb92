"""`fraudstream serve`: the synchronous scoring API (consumer/api, docs/api.md) on uvicorn.

Settings are the worker's environment plus FRAUD_API_*; they are validated, the keys read, the
rule set and model loaded before the server listens, so a bad setting stops it at once (78)
naming the variable. Redis is not required at start: /readyz answers 503 until it is reachable
(a load balancer then sends nothing), so the API and Redis may start in any order.
`--new-key NAME` mints a key instead: the key once on stdout, and the entry to add to the keys'
document.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from consumer.cli.common import HelpFormatter, exit_codes

EXIT_BAD_CONFIG = 78  # EX_CONFIG, as `fraudstream worker`
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: the keys' secret or the rule set cannot be read now


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="the synchronous scoring API (POST /v1/score)",
        description="Serves POST /v1/score, /v1/score:batch and /v1/transactions: transactions "
        "judged now by the stream's engine against the workers' Redis, writing nothing "
        "(docs/api.md). Settings: the worker's variables plus FRAUD_API_KEYS_FILE or "
        "FRAUD_API_KEYS_SECRET (required), FRAUD_API_RATE, FRAUD_API_BURST, "
        "FRAUD_API_KEYS_REFRESH_S; FRAUD_STREAM for ?ingest=true.",
        formatter_class=HelpFormatter,
        epilog=exit_codes(
            "0 stopped by a signal, or a key minted",
            "1 the server failed",
            f"{EXIT_UNAVAILABLE} the keys' secret or the rule set cannot be read now",
            f"{EXIT_BAD_CONFIG} a setting is missing or invalid (the message names it)",
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes (each judges on its own; on ECS prefer one per task and more tasks)",
    )
    parser.add_argument(
        "--new-key",
        metavar="NAME",
        help="mint a key named NAME: print it once, and the entry to add to the keys' document",
    )
    parser.set_defaults(run=run)


def _fail(code: int, message: str) -> int:
    from consumer.infra.logs import render

    line = render(
        "error",
        "configuration_error" if code == EXIT_BAD_CONFIG else "startup_failed",
        __name__,
        component="api",
        message=message,
        exit_code=code,
    )
    print(line, file=sys.stderr, flush=True)
    return code


def run(args: argparse.Namespace) -> int:
    if args.new_key is not None:
        from consumer.api.keys import KeysError, new_key

        try:
            key, entry = new_key(args.new_key)
        except KeysError as exc:
            print(f"fraudstream serve: {exc}", file=sys.stderr)
            return 2
        print(key)
        print(
            "the key above is shown once; add this entry to the keys' document "
            f'({{"keys": [...]}}):\n{json.dumps(entry)}',
            file=sys.stderr,
        )
        return 0
    if args.workers < 1 or not 0 < args.port < 65536:
        print("fraudstream serve: --workers must be >= 1 and --port 1..65535", file=sys.stderr)
        return 2
    # Imported here: the other commands do not need the server.
    from consumer.api.app import build_app, build_service, start_background
    from consumer.api.keys import KeysError
    from consumer.api.settings import ConfigError, load_api_settings
    from consumer.infra.logs import configure_logging
    from consumer.model.scorer import ModelLoadError
    from consumer.reload.rulesets import NoUsableRuleSet
    from consumer.settings import keys as settings_keys

    try:
        warnings = settings_keys.check_environment(os.environ)
        settings = load_api_settings()
    except ConfigError as exc:
        return _fail(EXIT_BAD_CONFIG, f"fraudstream serve: configuration error: {exc}")
    configure_logging(settings.worker.log_level, component="api", pid=os.getpid())
    for warning in warnings:
        print(f"fraudstream serve: warning: {warning}", file=sys.stderr)
    try:
        service = build_service(settings)
    except KeysError as exc:
        code = EXIT_UNAVAILABLE if settings.keys_secret else EXIT_BAD_CONFIG
        return _fail(code, f"fraudstream serve: API keys: {exc}")
    except NoUsableRuleSet as exc:
        code = EXIT_UNAVAILABLE if exc.transient else EXIT_BAD_CONFIG
        return _fail(code, f"fraudstream serve: rule set: {exc}")
    except ModelLoadError as exc:
        return _fail(EXIT_BAD_CONFIG, f"fraudstream serve: FRAUD_MODEL_DIR: {exc}")
    import uvicorn

    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "loop": "uvloop",
        "http": "httptools",
        "log_config": None,  # our JSON lines (consumer/infra/logs.py), one per request
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }
    try:
        if args.workers == 1:
            start_background(service)
            uvicorn.run(build_app(service), **options)
        else:  # each process builds its own service from the same (validated) environment
            uvicorn.run(
                "consumer.api.app:create_app", factory=True, workers=args.workers, **options
            )
    except Exception as exc:
        return _fail(1, f"fraudstream serve: {exc!r}")
    return 0
