"""The one entry point: `fraudstream worker | local up | local down | demo | status | train |
compare-model | ops scale | backtest`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consumer.settings.config import ConfigError, load_settings

if TYPE_CHECKING:
    from consumer.local.stack import StackOptions


EXIT_BAD_CONFIG = 78  # EX_CONFIG: a setting is missing or invalid
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: a resource is missing or unreachable


def cmd_worker(args: argparse.Namespace) -> int:
    """Validate the settings, render the KCL properties and exec the MultiLangDaemon."""
    from consumer.settings import keys as settings_keys
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


def _stack_options(args: argparse.Namespace) -> StackOptions:
    # Imported here: `fraudstream worker` (the container's entry point) does not need it.
    from consumer.local.stack import StackOptions

    return StackOptions(
        state_dir=Path(args.state_dir),
        kinesis_port=args.kinesis_port,
        kinesis_tls_port=args.kinesis_tls_port,
        moto_port=args.moto_port,
        redis_port=args.redis_port,
        workers=getattr(args, "workers", 1),
        shards=getattr(args, "shards", 2),
    )


def cmd_local(args: argparse.Namespace) -> int:
    from consumer.local import stack as local_stack

    options = _stack_options(args)
    try:
        if args.action == "up":
            local_stack.up(options)
            print(f"local stack up; `source {options.env_file}` to use it")
        else:
            local_stack.down(options)
    except local_stack.StackError as exc:
        print(f"fraudstream local {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from consumer.cli.demo import run as run_demo

    options = _stack_options(args)
    return run_demo(options, duration_s=args.duration, rate=args.rate, keep=args.keep)


def aws_client(service: str) -> Any:
    """A client with the region and endpoint from the environment (AWS_REGION,
    AWS_ENDPOINT_URL_<SERVICE>), as the worker's: `source .fraudstream/local.env` for the
    local stack."""
    import boto3

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    session: Any = boto3.session.Session()
    return session.client(service, region_name=region)


def _fail(command: str, exc: Exception) -> int:
    print(f"fraudstream {command}: {exc}", file=sys.stderr)
    return 1


def cmd_status(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from consumer.cli.status import (
        render_json,
        render_ruleset,
        render_table,
        ruleset_status,
        shard_statuses,
    )

    try:
        statuses = shard_statuses(
            aws_client("kinesis"), aws_client("dynamodb"), args.stream, args.table
        )
    except (BotoCoreError, ClientError) as exc:
        return _fail("status", exc)
    rules = None
    if args.ruleset:  # the published rule set, the last good one: what a new worker would use
        last_good = os.environ.get("FRAUD_RULESET_LAST_GOOD") or None
        rules = ruleset_status(args.ruleset, last_good, aws_client("s3"))
    if args.json:
        print(render_json(args.stream, args.table, statuses, rules))
    else:
        print(render_table(statuses) + ("\n\n" + render_ruleset(rules) if rules else ""))
    return 0


def cmd_scale(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from consumer.cli.scale import ScaleError, scale

    try:
        result = scale(
            aws_client("kinesis"),
            aws_client("ecs"),
            stream=args.stream,
            cluster=args.cluster,
            service=args.service,
            shards_per_task=args.shards_per_task,
            minimum=args.min,
            maximum=args.max,
            dry_run=args.dry_run,
        )
    except (ScaleError, BotoCoreError, ClientError) as exc:
        return _fail("ops scale", exc)
    print(json.dumps(result.as_dict()))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train the model score on a labelled file (needs the `model` extra); see docs/model.md."""
    try:
        from consumer.model.dataset import DatasetError
        from consumer.model.scorer import ModelLoadError
        from consumer.model.train import TrainError, train
    except ImportError as exc:
        return _fail("train", ImportError(f"{exc}: pip install 'fraudstream[model]'"))
    try:
        report = train(
            Path(args.input),
            Path(args.out),
            threshold_precision=args.threshold_precision,
            valid_fraction=args.valid_fraction,
            holdout_fraction=args.holdout_fraction,
        )
    except (DatasetError, TrainError, ModelLoadError, OSError) as exc:
        return _fail("train", exc)
    print((Path(args.out) / "report.md").read_text(encoding="utf-8"), end="")
    return 0 if report else 1


def cmd_compare_model(args: argparse.Namespace) -> int:
    """Rules alone against rules OR model on the slice the model never saw (docs/model.md)."""
    try:
        from consumer.model.compare import compare
        from consumer.model.dataset import DatasetError
        from consumer.model.scorer import ModelLoadError
    except ImportError as exc:
        return _fail("compare-model", ImportError(f"{exc}: pip install 'fraudstream[model]'"))
    try:
        result = compare(Path(args.input), Path(args.model))
    except (DatasetError, ModelLoadError, OSError, ValueError) as exc:
        return _fail("compare-model", exc)
    print(json.dumps(result, indent=2))
    return 0


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fraudstream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="run the KCL MultiLangDaemon with the fraud processor")
    worker.add_argument("--dry-run", action="store_true", help="print the java command only")
    worker.add_argument(
        "--no-preflight",
        action="store_true",
        help="skip the start-up checks of Redis, the bucket, the topic and the stream",
    )
    worker.set_defaults(func=cmd_worker)

    def stack_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state-dir", default=os.environ.get("FRAUD_STATE_DIR", ".fraudstream"))
        p.add_argument("--kinesis-port", type=int, default=_env_int("FRAUD_KINESIS_PORT", 4567))
        p.add_argument(
            "--kinesis-tls-port", type=int, default=_env_int("FRAUD_KINESIS_TLS_PORT", 4568)
        )
        p.add_argument("--moto-port", type=int, default=_env_int("FRAUD_MOTO_PORT", 4569))
        p.add_argument("--redis-port", type=int, default=_env_int("FRAUD_REDIS_PORT", 6390))

    local = sub.add_parser("local", help="the embedded local stack")
    local_sub = local.add_subparsers(dest="action", required=True)
    up = local_sub.add_parser("up", help="start servers, stream, bucket, topic and workers")
    stack_arguments(up)
    up.add_argument("--workers", type=int, default=1)
    up.add_argument("--shards", type=int, default=2)
    down = local_sub.add_parser("down", help="stop exactly what `local up` started")
    stack_arguments(down)
    local.set_defaults(func=cmd_local)

    demo = sub.add_parser("demo", help="local stack up, a minute of traffic, what was flagged")
    stack_arguments(demo)
    demo.add_argument("--workers", type=int, default=1)
    demo.add_argument("--shards", type=int, default=2)
    demo.add_argument("--duration", type=float, default=60.0)
    demo.add_argument("--rate", type=float, default=50.0)
    demo.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    demo.set_defaults(func=cmd_demo)

    stream_default = os.environ.get("FRAUD_STREAM")
    status = sub.add_parser(
        "status", help="per shard: lease owner, checkpoint, how far behind (reads only)"
    )
    status.add_argument(
        "--stream", default=stream_default, required=stream_default is None, help="$FRAUD_STREAM"
    )
    status.add_argument(
        "--table",
        default=os.environ.get("FRAUD_APP_NAME", "fraudstream"),
        help="the KCL lease table: the application name ($FRAUD_APP_NAME)",
    )
    status.add_argument(
        "--ruleset",
        default=os.environ.get("FRAUD_RULESET") or None,
        help="the rule set: its published and last good versions ($FRAUD_RULESET)",
    )
    status.add_argument("--json", action="store_true", help="one JSON document instead")
    status.set_defaults(func=cmd_status)

    train = sub.add_parser("train", help="train the model score on a labelled file")
    train.add_argument("--input", required=True, help="labelled JSON Lines (.gz: gzip)")
    train.add_argument("--out", required=True, help="model directory to write")
    train.add_argument(
        "--threshold-precision",
        type=float,
        default=None,
        metavar="P",
        help="threshold: most validation recall at precision >= P (default: best F1)",
    )
    train.add_argument("--valid-fraction", type=float, default=0.2, help="default 0.2")
    train.add_argument(
        "--holdout-fraction",
        type=float,
        default=0.0,
        help="latest share of event time left out for `fraudstream compare-model` (default 0)",
    )
    train.set_defaults(func=cmd_train)

    comparing = sub.add_parser(
        "compare-model", help="rules alone vs rules OR model on a later, held-out slice"
    )
    comparing.add_argument("--input", required=True, help="the labelled file the model saw")
    comparing.add_argument("--model", required=True, help="`train --holdout-fraction F` output")
    comparing.set_defaults(func=cmd_compare_model)

    ops = sub.add_parser("ops", help="operating the service on AWS")
    ops_sub = ops.add_subparsers(dest="action", required=True)
    scale = ops_sub.add_parser(
        "scale", help="set the ECS service's desired count from the stream's open shards"
    )
    scale.add_argument(
        "--stream", default=stream_default, required=stream_default is None, help="$FRAUD_STREAM"
    )
    scale.add_argument("--cluster", required=True)
    scale.add_argument("--service", required=True)
    scale.add_argument("--shards-per-task", type=int, required=True)
    scale.add_argument("--min", type=int, default=1, help="fewest tasks (default 1)")
    scale.add_argument("--max", type=int, required=True, help="most tasks")
    scale.add_argument("--dry-run", action="store_true", help="print what it would do only")
    scale.set_defaults(func=cmd_scale)

    from consumer.cli.backtest import add_parser as add_backtest

    add_backtest(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
