"""The image as ECS runs it: two worker tasks under the task definition's limits, read-only root,
non-root, stopped (SIGTERM, the template's stop timeout) and killed mid-traffic and started
again; then S3, the dead letters and the alerts as the end-to-end tests check them. Also the
health check and the start-up failures (exit 78, exit 69)."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from consumer.infra.readback import drain_queue
from consumer.ingest.entries import Entry
from load_test.producer import send
from load_test.synthetic import generate_records
from tests.container.conftest import (
    IMAGE,
    TaskLimits,
    Worker,
    container_env,
    docker,
    owners,
    run_args,
    wait_until,
)
from tests.integration.conftest import Stack, free_port
from tests.integration.expectations import (
    assert_s3_matches,
    expected_from_stream,
    wait_for_checkpoints,
)
from tests.integration.scenarios import scenario_entries
from tests.support.runbook_queries import Query, queries

# What the containers wrote (stdout and stderr), for the runbook's queries at the end.
SEEN_LINES: list[str] = []

MIB = 1024 * 1024
REPORT = Path(os.environ.get("FRAUD_CONTAINER_REPORT", "container-test-report.json"))
measured: dict[str, Any] = {}


def record(key: str, value: Any) -> None:
    measured[key] = value
    print(f"[container-test] {key}: {value}")
    REPORT.write_text(json.dumps(measured, indent=2, sort_keys=True) + "\n")


def health(worker: Worker) -> str:
    return str(worker.state().get("Health", {}).get("Status", "none"))


def daemon_pid(worker: Worker) -> int:
    """The host pid of the container's JVM (under the init process, as with InitProcessEnabled)."""
    init = int(worker.state()["Pid"])
    for pid in Path(f"/proc/{init}/task/{init}/children").read_text().split():
        if b"MultiLangDaemon" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return int(pid)
    raise AssertionError(f"no MultiLangDaemon under {worker.name}'s init (pid {init})")


def test_the_image_runs_as_a_non_root_user_with_the_task_limits(limits: TaskLimits) -> None:
    image = json.loads(docker("image", "inspect", IMAGE).stdout)[0]
    user = image["Config"]["User"]
    assert user and user.split(":")[0] not in ("root", "0")
    assert image["Config"]["Healthcheck"]["Test"][0] == "CMD"
    record("image_size_mb", round(image["Size"] / 1e6))
    record("task_limits", {"cpus": limits.cpus, "memory_mib": limits.memory_mib})
    # ECS ignores the image's HEALTHCHECK: the task definition carries the same command.
    assert limits.health_check == image["Config"]["Healthcheck"]["Test"]


def test_the_scaler_command_is_in_the_image() -> None:
    """The scheduled scaler runs the same image with EntryPoint [fraudstream] (the template)."""
    result = docker("run", "--rm", "--entrypoint", "fraudstream", IMAGE, "ops", "scale", "--help")
    assert "--shards-per-task" in result.stdout


def producer_thread(servers: Stack, batches: list[list[Entry]], pause_s: float) -> Any:
    sent: dict[str, int] = {"sent": 0, "failed": 0, "batches": 0}

    def run() -> None:
        kinesis = servers.client("kinesis")
        for batch in batches:
            summary = send(kinesis, servers.env["FRAUD_STREAM"], batch)
            sent["sent"] += summary.sent
            sent["failed"] += summary.failed
            sent["batches"] += 1
            time.sleep(pause_s)

    thread = threading.Thread(target=run, name="producer", daemon=True)
    thread.start()
    return thread, sent


def test_two_workers_stopped_and_killed_mid_traffic_lose_nothing_and_repeat_nothing(
    servers: Stack, make_worker: Any, limits: TaskLimits
) -> None:
    first, second = make_worker(1), make_worker(2)
    started = time.monotonic()
    first.start()
    second.start()
    shards = 2
    record(
        "first_lease_s",
        round(wait_until(lambda: any(owners(servers).values()), 180, "a first lease"), 1),
    )
    wait_until(
        lambda: len([o for o in owners(servers).values() if o]) == shards, 180, "both leases"
    )
    record("all_leased_s", round(time.monotonic() - started, 1))
    assert set(owners(servers).values()) <= {first.worker_id, second.worker_id}
    record("healthy_s", round(wait_until(lambda: health(first) == "healthy", 60, "healthy"), 1))
    # The processes run as the image's user, not root.
    status = Path(f"/proc/{daemon_pid(first)}/status").read_text()
    uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
    assert uid == "10001"

    # Traffic over ~25 s: the synthetic stream plus every rule's archetype and producer retries.
    records = [
        r.to_entry() for r in generate_records(3000, fraud_ratio=0.05, invalid_ratio=0.02, seed=22)
    ]
    batches = [records[i : i + 250] for i in range(0, len(records), 250)]
    batches[3] += scenario_entries("ct-a")
    batches[-1] += scenario_entries("ct-b")
    drain_queue(servers.client("sqs"), servers.env["FRAUD_ALERTS_QUEUE_URL"])
    thread, sent = producer_thread(servers, batches, pause_s=2.0)

    wait_until(lambda: sent["batches"] >= 3, 60, "the first batches sent")
    memory_before = {w.name: w.cgroup_memory()[1] for w in (first, second)}
    record("rss_mib_under_traffic", {w.name: round(w.rss() / MIB) for w in (first, second)})
    # ECS stopping a task: SIGTERM, SIGKILL after StopTimeout. The KCL shuts down gracefully.
    # The task stopped is one holding a lease, so a processor has something to flush.
    holding = owners(servers)
    stopped = first if first.worker_id in holding.values() else second
    survivor = second if stopped is first else first
    record("leases_at_stop", holding)
    # A lease in the table comes before its processor: stop the task once one is running, so
    # there is something to flush (stopping in between is a clean exit with nothing to flush).
    wait_until(lambda: "shard_initialized" in stopped.logs(), 60, "a processor in the task")
    stop_started = time.monotonic()
    docker(
        "stop", "-t", str(limits.stop_timeout_s), stopped.name, timeout=limits.stop_timeout_s + 30
    )
    record("stop_s", round(time.monotonic() - stop_started, 1))
    record("stop_exit_code", stopped.state()["ExitCode"])
    assert stopped.state()["ExitCode"] in (0, 143), stopped.logs()[-3000:]
    # Each of its processors flushed and checkpointed before the daemon exited.
    assert "shutdown_flushed" in stopped.logs(), stopped.logs()[-3000:]
    stopped.start()  # ECS starts a replacement task
    wait_until(lambda: sent["batches"] >= 6, 90, "more batches sent")
    # A task that dies: SIGKILL, no flush, no checkpoint, no lease release. The survivor of the
    # stop holds leases by now (the stopped task released its own).
    wait_until(lambda: survivor.worker_id in owners(servers).values(), 60, "the survivor leasing")
    record("leases_at_kill", owners(servers))
    docker("kill", survivor.name)
    assert survivor.wait_exit(30) == 137
    survivor.start()
    thread.join(timeout=180)
    assert not thread.is_alive() and sent["failed"] == 0, sent
    record("records_sent", sent["sent"])

    record("checkpointed_after_last_put_s", round(wait_for_checkpoints(servers, timeout_s=300), 1))
    expected = expected_from_stream(servers)
    assert expected.duplicates and len(expected.flagged) >= 50 and expected.invalid
    assert_s3_matches(servers, expected)  # nothing lost, no line twice, dead letters exact
    alerts = drain_queue(servers.client("sqs"), servers.env["FRAUD_ALERTS_QUEUE_URL"])
    alerted = [json.loads(a["Message"])["sequence_number"] for a in alerts]
    # Every alert at least once; a repeat only in the kill's crash window.
    assert set(alerted) == expected.alerted
    record("alerts", {"distinct": len(set(alerted)), "repeated": len(alerted) - len(set(alerted))})
    record("flagged", len(expected.flagged))
    record("dead_letters", len(expected.invalid))

    peaks = {w.name: max(memory_before[w.name], w.cgroup_memory()[1]) for w in (first, second)}
    record("memory_peak_mib", {name: round(peak / MIB) for name, peak in peaks.items()})
    record("memory_now_mib", {w.name: round(w.cgroup_memory()[0] / MIB) for w in (first, second)})
    record("rss_mib_at_end", {w.name: round(w.rss() / MIB) for w in (first, second)})
    assert max(peaks.values()) < limits.memory_mib * MIB
    assert first.state()["OOMKilled"] is False and second.state()["OOMKilled"] is False

    # The health check: a frozen daemon turns the container unhealthy, and healthy again.
    jvm = daemon_pid(first)
    os.kill(jvm, 19)  # SIGSTOP
    try:
        wait_until(lambda: health(first) == "unhealthy", 30, "unhealthy while frozen")
    finally:
        os.kill(jvm, 18)  # SIGCONT
    wait_until(lambda: health(first) == "healthy", 30, "healthy again")

    # Both shut down cleanly at the end, as in a deployment.
    for worker in (first, second):
        docker("stop", "-t", str(limits.stop_timeout_s), worker.name, timeout=90)
        assert worker.state()["ExitCode"] in (0, 143)
    SEEN_LINES.extend((first.logs() + "\n" + second.logs()).splitlines())


def run_once(limits: TaskLimits, env: dict[str, str], name: str) -> tuple[int, str, float]:
    """`docker run` a worker to its exit: (exit code, its output, seconds)."""
    started = time.monotonic()
    result = docker("run", "--rm", *run_args(limits, name, env), IMAGE, check=False, timeout=120)
    return result.returncode, result.stdout + result.stderr, time.monotonic() - started


def test_a_bad_setting_exits_78_naming_it(servers: Stack, limits: TaskLimits) -> None:
    env = {**container_env(servers.env, limits), "FRAUD_FLUSH_MAX_RECORDS": "lots"}
    code, output, took = run_once(limits, env, f"fraudstream-ct-bad-setting-{free_port()}")
    assert code == 78, output
    assert "FRAUD_FLUSH_MAX_RECORDS" in output
    SEEN_LINES.extend(output.splitlines())
    record("exit_78_s", round(took, 1))


def test_an_unreachable_redis_exits_69_naming_it(servers: Stack, limits: TaskLimits) -> None:
    env = {**container_env(servers.env, limits), "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    code, output, took = run_once(limits, env, f"fraudstream-ct-no-redis-{free_port()}")
    assert code == 69, output
    assert "REDIS_URL" in output
    SEEN_LINES.extend(output.splitlines())
    assert took < 30
    record("exit_69_s", round(took, 1))


def _matches(query: Query, line: dict[str, Any]) -> bool:
    """Whether a line passes the query's filter on event, component and level (the filters the
    runbook uses)."""
    text = query.text
    if query.events and line.get("event") not in query.events:
        return False
    for key in ("component", "level"):
        wanted = re.findall(rf'\b{key}\s*(?:=|in)\s*(\[[^\]]*\]|"[^"]*")', text)
        if wanted and not any(f'"{line.get(key)}"' in choice for choice in wanted):
            return False
    return True


def _grouped_by(query: Query) -> set[str]:
    """The fields a query's `stats ... by` groups on (a key the lines lack groups them all
    under a blank)."""
    grouped: set[str] = set()
    for line in query.text.splitlines():
        if "stats" in line and " by " in line:
            after = re.sub(r"bin\([^)]*\)", " ", line.split(" by ", 1)[1].split("|")[0])
            grouped |= set(re.findall(r"[a-z_][a-z0-9_]*", after))
    return grouped


def test_the_runbook_queries_find_what_real_lines_carry() -> None:
    """docs/runbook.md's Logs Insights queries against the lines these containers wrote: the
    lease-movement and start-up-failure queries find lines, the start-up one with every field it
    shows, and every query groups only on keys of the lines it finds (which fields a query may
    show at all: tests/unit/test_runbook_queries.py)."""
    lines = []
    for raw in SEEN_LINES:
        try:
            parsed = json.loads(raw)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            lines.append(parsed)
    assert len(lines) > 100, "the tests before this one ran no container"
    found = {}
    for query in queries():
        matched = [line for line in lines if _matches(query, line)]
        found[query.text] = matched
        if matched:
            keys = set().union(*(line.keys() for line in matched))
            assert _grouped_by(query) <= keys, (query.text, _grouped_by(query) - keys)
    lease = next(q for q in queries() if "shard_initialized" in q.events)
    assert found[lease.text], "no lease movement in a run that moved leases"
    start = next(
        q
        for q in queries()
        if "component" in q.fields
        and "exit_code" in q.fields
        and not q.events
        and "worker" in q.text
    )
    assert found[start.text], "the exit-78 and exit-69 runs' lines do not answer the query"
    shown = set().union(*(line.keys() for line in found[start.text]))
    assert start.fields <= shown, start.fields - shown
