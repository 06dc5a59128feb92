"""Runs both sides against the same redis-server and moto server, and summarises them."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from bench.daemon import DaemonFeeder
from bench.servers import BUCKET, MotoServer, RedisServer, aws_client
from bench.workload import (
    SHARD_ID,
    Workload,
    build_workload,
    initialize_line,
    shutdown_requested_line,
)
from consumer.settings.config import StateConfig
from load_test.procfs import child_pids, cpu_seconds, peak_rss_mb_of

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_RECORDS_PER_S = 20_000
TARGET_SPEEDUP = 10.0


@dataclass(frozen=True, slots=True)
class Options:
    records: int = 100_000
    batch_size: int = 500
    accounts: int = 10_000
    fraud_ratio: float = 0.05
    invalid_ratio: float = 0.0
    seed: int = 7
    peer_records: int = 10_000
    warmup_batches: int = 2
    profile: bool = False
    profile_dir: Path | None = None
    keep_logs: Path | None = None
    model: Path | None = None  # a `fraudstream train` directory: our side scores with it
    # moto behind a keep-alive server, as AWS endpoints keep connections open (both sides).
    moto_keep_alive: bool = False
    # History entries the processor's account cache may hold (FRAUD_STATE_CACHE_ENTRIES).
    cache_entries: int = StateConfig().cache_entries
    # FRAUD_ALERT_PROCESS=false: alerts published from the processor's own process.
    alerts_in_process: bool = False


def log(text: str = "") -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (q in 0..100)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _metrics_from_log(path: Path) -> dict[str, int]:
    """Sum the processor's own `metrics` log lines (one per commit) over the whole run."""
    totals: dict[str, int] = {}
    for line in path.read_text(errors="replace").splitlines():
        if '"metrics"' not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") != "metrics":
            continue
        for key, value in event.items():
            if isinstance(value, int) and not isinstance(value, bool):
                totals[key] = totals.get(key, 0) + value
    return totals


def _flagged_lines_in_s3(endpoint_url: str, prefix: str) -> tuple[int, int]:
    """(objects, lines) of the gzip JSON Lines objects under `prefix`."""
    s3 = aws_client("s3", endpoint_url)
    objects = lines = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            objects += 1
            lines += gzip.decompress(body).count(b"\n")
    return objects, lines


def run_ours(
    opts: Options, work: Workload, redis_srv: RedisServer, moto: MotoServer, tmp: Path
) -> dict[str, Any]:
    redis_srv.flushall()
    topic_arn = moto.reset()
    results_path = tmp / "ours.json"
    log_path = tmp / "ours.log"
    profile_path = tmp / "ours.profile.txt"
    command = [
        sys.executable,
        "-m",
        "bench.processor",
        *("--redis-url", redis_srv.url, "--endpoint-url", moto.endpoint_url),
        *("--bucket", BUCKET, "--topic-arn", topic_arn, "--results", str(results_path)),
    ]
    if opts.profile:
        command += ["--profile", str(profile_path)]
    if opts.model is not None:
        command += ["--model", str(opts.model)]
    command += ["--cache-entries", str(opts.cache_entries)]
    if opts.alerts_in_process:
        command.append("--alerts-in-process")
    timed = work.batches[opts.warmup_batches :]
    timed = timed[: -(-opts.records // opts.batch_size)]
    timed_records = min(opts.records, work.records - opts.warmup_batches * opts.batch_size)
    with log_path.open("wb") as stderr:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=REPO_ROOT,
            env=_child_env(),
        )
        try:
            feeder = DaemonFeeder(proc)
            feeder.action(initialize_line(SHARD_ID), "initialize")
            for line in work.batches[: opts.warmup_batches]:
                feeder.process_records(line, timed=False)
            # The alert process (started at initialize): its CPU is ours too.
            children = child_pids(proc.pid)
            commands_before = redis_srv.commands_processed()
            calls_before = redis_srv.command_calls()
            cpu_before = {
                "ours": cpu_seconds(proc.pid),
                "children": sum(cpu_seconds(pid) for pid in children),
                "redis": cpu_seconds(redis_srv.pid),
                "moto": cpu_seconds(moto.pid),
                "feeder": time.process_time(),
            }
            started = time.perf_counter()
            for line in timed:
                feeder.process_records(line)
            shutdown_s = feeder.action(shutdown_requested_line(), "shutdownRequested")
            elapsed = time.perf_counter() - started
            cpu = {
                "ours": cpu_seconds(proc.pid) - cpu_before["ours"],
                "children": sum(cpu_seconds(pid) for pid in children) - cpu_before["children"],
                "redis": cpu_seconds(redis_srv.pid) - cpu_before["redis"],
                "moto": cpu_seconds(moto.pid) - cpu_before["moto"],
                "feeder": time.process_time() - cpu_before["feeder"],
            }
            children_peak_rss = [peak_rss_mb_of(pid) or 0.0 for pid in children]
            commands = redis_srv.commands_processed() - commands_before - 1
            calls_after = redis_srv.command_calls()
            code = feeder.close()
        except BaseException as exc:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if not isinstance(exc, Exception):
                raise  # interrupted: servers are stopped on the way out
            raise RuntimeError(f"our processor failed: {exc!r}\n{_tail(log_path)}") from exc
    if code != 0:
        raise RuntimeError(f"our processor exited {code}\n{_tail(log_path)}")
    child = json.loads(results_path.read_text())
    metrics = _metrics_from_log(log_path)
    objects, flagged_lines = _flagged_lines_in_s3(moto.endpoint_url, "flagged/")
    result: dict[str, Any] = {
        "records": timed_records,
        "seconds": elapsed,
        "records_per_s": timed_records / elapsed,
        "batch_seconds": feeder.stats.batch_seconds,
        "shutdown_flush_s": shutdown_s,
        "checkpoints": feeder.stats.checkpoints,
        "redis_commands": commands,
        "redis_calls": {
            name: calls - calls_before.get(name, 0)
            for name, calls in calls_after.items()
            if name != "info" and calls > calls_before.get(name, 0)
        },
        # The processor's own process and its alert process together: the work it does.
        "cpu_s": cpu["ours"] + cpu["children"],
        "alert_process_cpu_s": cpu["children"],
        "alert_process_peak_rss_mb": round(max(children_peak_rss, default=0.0), 1),
        "redis_cpu_s": cpu["redis"],
        "moto_cpu_s": cpu["moto"],
        "feeder_cpu_s": cpu["feeder"],
        "peak_rss_mb": child["peak_rss_mb"],
        "metrics": metrics,
        "s3_flagged_objects": objects,
        "s3_flagged_lines": flagged_lines,
    }
    if opts.profile and profile_path.exists():
        result["profile_text"] = profile_path.read_text()
        if opts.profile_dir is not None:
            opts.profile_dir.mkdir(parents=True, exist_ok=True)
            (opts.profile_dir / "ours.profile.txt").write_text(result["profile_text"])
            for suffix in (".html", ".pyisession"):
                kept = profile_path.with_suffix(suffix)
                if kept.exists():
                    (opts.profile_dir / f"ours.profile{suffix}").write_bytes(kept.read_bytes())
    return result


def run_peer(
    opts: Options, work: Workload, redis_srv: RedisServer, moto: MotoServer, tmp: Path
) -> dict[str, Any]:
    redis_srv.flushall()
    topic_arn = moto.reset()
    peer_batches = -(-opts.peer_records // opts.batch_size)
    lines_path = tmp / "peer-batches.jsonl"
    lines_path.write_text("\n".join(work.batches[: opts.warmup_batches + peer_batches]) + "\n")
    results_path = tmp / "peer.json"
    log_path = tmp / "peer.log"
    command = [
        sys.executable,
        "-m",
        "bench.peer",
        *("--lines", str(lines_path), "--warmup-batches", str(opts.warmup_batches)),
        *("--shard-id", SHARD_ID, "--redis-url", redis_srv.url),
        *("--endpoint-url", moto.endpoint_url, "--bucket", BUCKET, "--topic-arn", topic_arn),
        *("--watch-pid", str(redis_srv.pid), "--watch-pid", str(moto.pid)),
        *("--results", str(results_path)),
    ]
    with log_path.open("wb") as stderr:
        proc = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            cwd=REPO_ROOT,
            env=_child_env(),
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"the peer exited {proc.returncode}\n{_tail(log_path)}")
    child: dict[str, Any] = json.loads(results_path.read_text())
    watched = child.pop("watched_cpu_s")
    child["redis_cpu_s"] = watched.get(str(redis_srv.pid), 0.0)
    child["moto_cpu_s"] = watched.get(str(moto.pid), 0.0)
    child["records_per_s"] = child["records"] / child["seconds"]
    return child


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def run(opts: Options) -> dict[str, Any]:
    """The whole benchmark; servers and children are stopped whatever happens."""
    if opts.profile and importlib.util.find_spec("pyinstrument") is None:
        raise SystemExit("--profile needs pyinstrument: .venv/bin/pip install pyinstrument")
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with tempfile.TemporaryDirectory(prefix="fraudstream-bench-") as tmp_name:
            tmp = Path(tmp_name)
            try:
                return _run(opts, tmp)
            finally:
                if opts.keep_logs is not None:
                    opts.keep_logs.mkdir(parents=True, exist_ok=True)
                    for path in tmp.glob("*.log"):
                        (opts.keep_logs / path.name).write_bytes(path.read_bytes())
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(opts: Options, tmp: Path) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    total = opts.warmup_batches * opts.batch_size + max(opts.records, opts.peer_records)
    log(f"generating {total:,} records ({opts.accounts:,} accounts, seed {opts.seed}) ...")
    t0 = time.perf_counter()
    work = build_workload(
        total,
        batch_size=opts.batch_size,
        accounts=opts.accounts,
        fraud_ratio=opts.fraud_ratio,
        invalid_ratio=opts.invalid_ratio,
        seed=opts.seed,
    )
    log(
        f"  {len(work.batches)} batches, {work.data_bytes / work.records:.0f} B/record,"
        f" {work.event_span_s:.0f} s of event time, in {time.perf_counter() - t0:.1f} s"
    )
    with RedisServer(tmp) as redis_srv, MotoServer(tmp, opts.moto_keep_alive) as moto:
        assert isinstance(redis_srv, RedisServer) and isinstance(moto, MotoServer)
        log(f"redis-server :{redis_srv.port}, moto server :{moto.port}")
        log("our side: KCLProcess + FraudRecordProcessor over pipes ...")
        ours = run_ours(opts, work, redis_srv, moto, tmp)
        log(f"  {ours['records_per_s']:,.0f} records/s")
        log("peer: one call per operation per record ...")
        peer = run_peer(opts, work, redis_srv, moto, tmp)
        log(f"  {peer['records_per_s']:,.0f} records/s")
    summary = summarise(opts, work, ours, peer)
    summary["moto_keep_alive"] = opts.moto_keep_alive
    summary["loadavg_1m_before"] = round(load_before, 2)
    summary["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    return summary


def _deciles(batches: Sequence[float]) -> list[float]:
    """Median batch time (ms) of each tenth of the run (fewer parts for fewer batches)."""
    parts = min(10, len(batches))
    return [
        round(
            percentile(batches[len(batches) * i // parts : len(batches) * (i + 1) // parts], 50)
            * 1000,
            1,
        )
        for i in range(parts)
    ]


def _machine_bound(ours: dict[str, Any], nproc: int | None) -> int | None:
    used = float(ours["cpu_s"] + ours["redis_cpu_s"] + ours["moto_cpu_s"] + ours["feeder_cpu_s"])
    if not used or not nproc:
        return None
    return round(int(ours["records"]) / (used / nproc))


def summarise(
    opts: Options, work: Workload, ours: dict[str, Any], peer: dict[str, Any]
) -> dict[str, Any]:
    info = machine()
    metrics = ours["metrics"]
    speedup = ours["records_per_s"] / peer["records_per_s"]
    batches = ours["batch_seconds"]
    # Our side over exactly the records the peer timed (the start of the stream, when accounts
    # have less history): the like-for-like ratio next to the headline one.
    same = batches[: len(peer["batch_seconds"])]
    same_records = min(peer["records"], len(same) * opts.batch_size)
    same_rps = same_records / sum(same) if same else 0.0
    summary: dict[str, Any] = {
        "records_per_s": round(ours["records_per_s"]),
        "peer_records_per_s": round(peer["records_per_s"]),
        "speedup": round(speedup, 2),
        "records_per_s_on_peer_records": round(same_rps),
        "speedup_on_peer_records": round(same_rps / peer["records_per_s"], 2),
        "peak_rss_mb": ours["peak_rss_mb"],
        # 0 with --alerts-in-process: no alert process.
        "alert_process_peak_rss_mb": ours["alert_process_peak_rss_mb"],
        "peer_peak_rss_mb": peer["peak_rss_mb"],
        "batch_p50_ms": round(percentile(batches, 50) * 1000, 2),
        "batch_p99_ms": round(percentile(batches, 99) * 1000, 2),
        "batch_max_ms": round(max(batches, default=0.0) * 1000, 2),
        # Median batch time of each tenth of the run: growth means per-account history costs.
        "batch_p50_ms_by_decile": _deciles(batches),
        "redis_commands_per_record": round(ours["redis_commands"] / ours["records"], 2),
        # Inside the scripts too: what redis-server's CPU goes to.
        "redis_calls_per_record": {
            name: round(calls / ours["records"], 3)
            for name, calls in sorted(ours["redis_calls"].items())
        },
        "peer_redis_commands_per_record": round(peer["redis_commands"] / peer["records"], 2),
        "peer_batch_p50_ms": round(percentile(peer["batch_seconds"], 50) * 1000, 2),
        "peer_batch_p99_ms": round(percentile(peer["batch_seconds"], 99) * 1000, 2),
        "records": ours["records"],
        "peer_records": peer["records"],
        "seconds": round(ours["seconds"], 3),
        "peer_seconds": round(peer["seconds"], 3),
        "batch_size": opts.batch_size,
        "batches": len(batches),
        "warmup_batches": opts.warmup_batches,
        "accounts": opts.accounts,
        "cache_entries": opts.cache_entries,
        "fraud_ratio": opts.fraud_ratio,
        "invalid_ratio": opts.invalid_ratio,
        "seed": opts.seed,
        "fraud_labelled": work.fraud_labelled,
        "flagged": metrics.get("records.flagged", 0),
        "alerts": metrics.get("alerts.sent", 0),
        "judged": metrics.get("records.judged", 0),
        "duplicates": metrics.get("records.duplicate", 0),
        "dead_lettered": metrics.get("records.invalid", 0),
        "checkpoints": ours["checkpoints"],
        "s3_flagged_objects": ours["s3_flagged_objects"],
        "s3_flagged_lines": ours["s3_flagged_lines"],
        "shutdown_flush_ms": round(ours["shutdown_flush_s"] * 1000, 2),
        "peer_flagged": peer["counts"]["flagged"],
        "peer_alerts": peer["counts"]["alerts"],
        # Records per CPU-second of the process itself: the ceiling of one process with no
        # waiting at all, and much less sensitive to other load on the machine than records/s.
        "records_per_cpu_s": round(ours["records"] / ours["cpu_s"]) if ours["cpu_s"] else None,
        "peer_records_per_cpu_s": round(peer["records"] / peer["cpu_s"]) if peer["cpu_s"] else None,
        "cpu_s": round(ours["cpu_s"], 2),
        "alert_process_cpu_s": round(ours["alert_process_cpu_s"], 2),
        "alerts_in_process": opts.alerts_in_process,
        "redis_cpu_s": round(ours["redis_cpu_s"], 2),
        "moto_cpu_s": round(ours["moto_cpu_s"], 2),
        "feeder_cpu_s": round(ours["feeder_cpu_s"], 3),
        # The rate the machine's CPUs allow when every party (our process, redis-server, moto,
        # the feeder standing in for the daemon) shares them and nobody waits: on a 2-core
        # machine the stand-ins' CPU, not only ours, bounds records/s.
        "machine_bound_records_per_s": _machine_bound(ours, info["nproc"]),
        "peer_cpu_s": round(peer["cpu_s"], 2),
        "peer_redis_cpu_s": round(peer["redis_cpu_s"], 2),
        "peer_moto_cpu_s": round(peer["moto_cpu_s"], 2),
        "python": info["python"],
        "nproc": info["nproc"],
        "cpu_model": info["cpu_model"],
        "profiled": opts.profile,
        "meets_targets": ours["records_per_s"] >= TARGET_RECORDS_PER_S
        and speedup >= TARGET_SPEEDUP,
    }
    if "profile_text" in ours:
        summary["_profile_text"] = ours["profile_text"]
    return summary


def table(summary: dict[str, Any]) -> str:
    s = summary
    rows = [
        ("", "ours (KCL processor)", "peer (per record)"),
        ("records timed", f"{s['records']:,}", f"{s['peer_records']:,}"),
        ("seconds", f"{s['seconds']:.2f}", f"{s['peer_seconds']:.2f}"),
        ("records/s", f"{s['records_per_s']:,}", f"{s['peer_records_per_s']:,}"),
        (
            "batch p50 / p99 ms",
            f"{s['batch_p50_ms']:.1f} / {s['batch_p99_ms']:.1f}",
            f"{s['peer_batch_p50_ms']:.1f} / {s['peer_batch_p99_ms']:.1f}",
        ),
        (
            "Redis commands / record",
            f"{s['redis_commands_per_record']:.1f}",
            f"{s['peer_redis_commands_per_record']:.1f}",
        ),
        ("peak RSS MB", f"{s['peak_rss_mb']:.1f}", f"{s['peer_peak_rss_mb']:.1f}"),
        ("CPU s: process", f"{s['cpu_s']:.2f}", f"{s['peer_cpu_s']:.2f}"),
        (
            "records / CPU s of the process",
            f"{s['records_per_cpu_s'] or 0:,}",
            f"{s['peer_records_per_cpu_s'] or 0:,}",
        ),
        (
            "CPU s: redis / moto",
            f"{s['redis_cpu_s']:.2f} / {s['moto_cpu_s']:.2f}",
            f"{s['peer_redis_cpu_s']:.2f} / {s['peer_moto_cpu_s']:.2f}",
        ),
        (
            "CPU s: feeder; records/s all CPUs allow",
            f"{s['feeder_cpu_s']:.2f}; {s['machine_bound_records_per_s'] or 0:,}",
            "",
        ),
        (
            "flagged / alerts (with warm-up)",
            f"{s['flagged']:,} / {s['alerts']:,}",
            f"{s['peer_flagged']:,} / {s['peer_alerts']:,}",
        ),
    ]
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        f"fraudstream hot path, batches of {s['batch_size']}, {s['accounts']:,} accounts,"
        f" fraud ratio {s['fraud_ratio']}, seed {s['seed']}"
        f" (python {s['python']}, {s['nproc']} CPUs, {s['cpu_model']})",
    ]
    for label, ours, peer in rows:
        lines.append(f"  {label:<{width[0]}}  {ours:>{width[1]}}  {peer:>{width[2]}}")
    lines.append(
        f"  on the peer's {s['peer_records']:,} records (batch time only) ours did"
        f" {s['records_per_s_on_peer_records']:,} records/s:"
        f" {s['speedup_on_peer_records']:.1f}x like for like"
    )
    target = "meets" if s["meets_targets"] else "MISSES"
    lines.append(
        f"  speedup {s['speedup']:.1f}x; {target} the targets"
        f" (>= {TARGET_RECORDS_PER_S:,} records/s, >= {TARGET_SPEEDUP:.0f}x)"
        + ("; PROFILED (pyinstrument slows it down)" if s["profiled"] else "")
    )
    lines.append(
        "  ours, median batch ms by tenth of the run: "
        + " ".join(f"{ms:.0f}" for ms in s["batch_p50_ms_by_decile"])
    )
    lines.append(
        f"  1-minute load average {s['loadavg_1m_before']} before, {s['loadavg_1m_after']} after"
        " (other work on the machine skews the numbers)"
    )
    lines.append(
        f"  ours: {s['checkpoints']} checkpoints, {s['s3_flagged_objects']} flagged objects"
        f" ({s['s3_flagged_lines']:,} lines), {s['judged']:,} judged,"
        f" {s['duplicates']} duplicates, {s['dead_lettered']} dead-lettered"
    )
    return "\n".join(lines)
