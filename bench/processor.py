"""Our side: the production record processor, run as its own process like the daemon runs it.

`python -m bench.processor ...` is what the MultiLangDaemon would start per shard, with one
difference: the edges point at the bench's moto and redis-server (boto3 clients with
endpoint_url, the Redis URL) instead of coming from the environment. Everything between
stdin and the outputs is the production code: amazon_kclpy's KCLProcess, FraudRecordProcessor,
consumer.worker.wiring.assemble_pipeline with the production Settings defaults (flush at 500
records / 4 MiB / 10 s, info logs on stderr). At the end it writes its peak RSS (VmHWM) to
--results.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from functools import partial
from pathlib import Path
from typing import Any

from bench.servers import aws_client, sns_sink_at
from consumer.batch.pipeline import BatchPipeline
from consumer.infra.logs import configure_logging
from consumer.infra.query_body import encode_body_once
from consumer.settings.config import Settings, StateConfig, load_state_config
from consumer.sinks.alert_process import production_alert_process
from consumer.worker.checkpointing import CheckpointPolicy
from consumer.worker.gc_policy import FullCollections
from consumer.worker.kcl_io import kcl_process, protocol_in
from consumer.worker.processor import FraudRecordProcessor, claim_stdout
from consumer.worker.wiring import assemble_pipeline, redis_client
from load_test.procfs import peak_rss_mb


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.processor", description=__doc__)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--endpoint-url", required=True, help="moto server for S3 and SNS")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--topic-arn", required=True)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--profile", type=Path, help="write a pyinstrument text profile here")
    parser.add_argument("--model", type=Path, help="a model directory: score every batch with it")
    parser.add_argument(
        "--alerts-in-process",
        action="store_true",
        help="FRAUD_ALERT_PROCESS=false: publish alerts from this process, not a child process",
    )
    parser.add_argument(
        "--cache-entries",
        type=int,
        default=StateConfig().cache_entries,
        help="FRAUD_STATE_CACHE_ENTRIES: history entries the account cache may hold",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    protocol_out = claim_stdout()
    configure_logging("info", component="processor")
    settings = Settings(
        bucket=args.bucket,
        topic_arn=args.topic_arn,
        redis_url=args.redis_url,
        model_dir=None if args.model is None else str(args.model),
        alert_process=not args.alerts_in_process,
        state=StateConfig(
            cache_entries=args.cache_entries,
            # As the worker reads FRAUD_PROFILES: auto (the default) keeps them with a model.
            profiles=load_state_config(
                {
                    "FRAUD_PROFILES": os.environ.get("FRAUD_PROFILES", "auto"),
                    "FRAUD_MODEL_DIR": "" if args.model is None else str(args.model),
                }
            ).profiles,
        ),
    )
    s3 = aws_client("s3", args.endpoint_url)
    sns = encode_body_once(aws_client("sns", args.endpoint_url))  # as consumer.worker.wiring does
    redis_conn = redis_client(settings)  # as the worker builds it
    redis_conn.ping()

    def build(shard_id: str, settings: Settings) -> tuple[BatchPipeline[Any], CheckpointPolicy]:
        # As consumer.worker.wiring.build_pipeline does, with the SNS client at moto.
        if settings.alert_process:
            sink = partial(sns_sink_at, args.endpoint_url, settings.topic_arn, settings.retry)
            alerts = production_alert_process(shard_id, settings, sink)
            return assemble_pipeline(shard_id, settings, s3, None, redis_conn, alerts)
        return assemble_pipeline(shard_id, settings, s3, sns, redis_conn)

    process = kcl_process(
        FraudRecordProcessor(settings, build=build, collections=FullCollections.install()),
        protocol_in(),
        protocol_out,
        sys.stderr,
    )
    profiler: Any = None
    if args.profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    process.run()
    if profiler is not None:
        profiler.stop()
        from bench.hotspots import render

        session = profiler.last_session
        text = profiler.output_text(unicode=True, color=False, show_all=False)
        args.profile.write_text(render(session.root_frame()) + "\n\n" + text)
        args.profile.with_suffix(".html").write_text(profiler.output_html())
        session.save(str(args.profile.with_suffix(".pyisession")))
    args.results.write_text(json.dumps({"peak_rss_mb": round(peak_rss_mb(), 1)}))


if __name__ == "__main__":
    main()
