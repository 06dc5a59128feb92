"""`fraudstream worker`: check the settings, render the KCL properties and exec the
MultiLangDaemon with the fraud record processor (the container's entry point).

Exit codes: 78 a setting is missing or invalid; 69 a resource is missing or unreachable.
Whatever it says before the daemon starts (a failure, with its exit code, or a warning) is one
JSON line on stderr in the vocabulary of every other line (consumer/infra/logs.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

EXIT_BAD_CONFIG = 78  # EX_CONFIG: a setting is missing or invalid
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: a resource is missing or unreachable


def add_parser(subparsers: Any) -> None:
    """Register `worker` on the CLI's subparsers."""
    parser = subparsers.add_parser(
        "worker", help="run the KCL MultiLangDaemon with the fraud processor"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the java command only")
    parser.add_argument(
        "--no-preflight",
        action="store_true",
        help="skip the start-up checks of Redis, the bucket, the topic and the stream",
    )
    parser.set_defaults(run=run)


def say(level: str, event: str, message: str, **fields: Any) -> None:
    """One JSON line on stderr; `message` is the sentence a person reads (and greps for)."""
    from consumer.infra.logs import render

    line = render(level, event, __name__, component="worker", message=message, **fields)
    print(line, file=sys.stderr, flush=True)


def fail(code: int, event: str, message: str, error: Exception) -> int:
    say("error", event, message, error=str(error), exit_code=code)
    return code


def run(args: argparse.Namespace) -> int:
    """Validate the settings, render the KCL properties and exec the MultiLangDaemon."""
    # Imported here, not at the top: the other commands do not need the daemon or its checks.
    from consumer.settings import keys as settings_keys
    from consumer.settings.config import ConfigError, load_settings
    from consumer.worker import daemon, preflight

    try:
        # Fail fast, naming the key, before the JVM starts.
        warnings = settings_keys.check_environment(os.environ)
        settings = load_settings()
        worker_id = os.environ.get("FRAUD_WORKER_ID") or os.environ.get("HOSTNAME") or "worker"
        values = daemon.render_properties(os.environ, worker_id)
        out = Path(os.environ.get("FRAUD_PROPERTIES_OUT", "/tmp/fraudstream/kcl.properties"))
        daemon.write_properties(values, out)
        command = daemon.daemon_command(
            out,
            os.environ.get("FRAUD_JAVA", "java"),
            os.environ.get("FRAUD_JVM_OPTIONS", "-Xmx256m -XX:+UseSerialGC"),
        )
    except ConfigError as exc:
        message = f"fraudstream: configuration error: {exc}"
        return fail(EXIT_BAD_CONFIG, "configuration_error", message, exc)
    if not args.no_preflight:
        try:
            warnings += preflight.run_preflight(settings, values["streamName"]).warnings
        except preflight.PreflightConfigError as exc:
            # E.g. the rule set refused and no version ever accepted: a restart cannot fix it.
            message = f"fraudstream: configuration error: {exc}"
            return fail(EXIT_BAD_CONFIG, "configuration_error", message, exc)
        except preflight.PreflightError as exc:
            message = f"fraudstream: start-up check failed: {exc}"
            return fail(EXIT_UNAVAILABLE, "startup_check_failed", message, exc)
    for warning in warnings:
        say("warning", "startup_warning", f"fraudstream: warning: {warning}", warning=warning)
    if args.dry_run:
        print(" ".join(command))
        return 0
    sys.stderr.flush()
    # The KCL's log lines carry the same service version as ours (properties/logback.xml).
    from consumer import __version__

    os.environ["FRAUDSTREAM_VERSION"] = __version__
    os.execvp(command[0], command)  # noqa: S606 - the daemon replaces us (PID 1 in a container)
    return 0  # not reached
