"""`fraudstream worker`: check the settings, render the KCL properties and exec the
MultiLangDaemon with the fraud record processor (the container's entry point).

Exit codes: 78 a setting is missing or invalid; 69 a resource is missing or unreachable.
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
        print(f"fraudstream: configuration error: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if not args.no_preflight:
        try:
            warnings += preflight.run_preflight(settings, values["streamName"]).warnings
        except preflight.PreflightConfigError as exc:
            # E.g. the rule set refused and no version ever accepted: a restart cannot fix it.
            print(f"fraudstream: configuration error: {exc}", file=sys.stderr)
            return EXIT_BAD_CONFIG
        except preflight.PreflightError as exc:
            print(f"fraudstream: start-up check failed: {exc}", file=sys.stderr)
            return EXIT_UNAVAILABLE
    for warning in warnings:
        print(f"fraudstream: warning: {warning}", file=sys.stderr)
    if args.dry_run:
        print(" ".join(command))
        return 0
    sys.stderr.flush()
    os.execvp(command[0], command)  # noqa: S606 - the daemon replaces us (PID 1 in a container)
    return 0  # not reached
