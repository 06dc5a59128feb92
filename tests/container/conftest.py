"""The worker image run as ECS runs it, against the local stack's servers (kinesis-mock, moto
server, redis-server on 127.0.0.1); scripts/container_test.sh builds the image and runs these.

Skipped unless FRAUD_CONTAINER_IMAGE names a built image (the normal test run has none).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from cfnlint.decode import cfn_yaml

from consumer.local import stack as local_stack
from consumer.local.stack import StackOptions, down, lease_owners, up
from tests.integration.conftest import Stack, free_port

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "ecs" / "fraudstream.yaml"
IMAGE = os.environ.get("FRAUD_CONTAINER_IMAGE", "")
# Every container this suite starts carries this label: scripts/container_test.sh removes what
# an interrupted run left behind by it, and nothing else.
LABEL = "fraudstream.container-test"
RUN_ID = uuid.uuid4().hex[:8]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if IMAGE:
        return
    skip = pytest.mark.skip(reason="no image: scripts/container_test.sh builds one and runs these")
    for item in items:
        if "tests/container/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


def docker(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {shlex.join(args)}: {result.returncode}\n{result.stderr}")
    return result


@dataclass(frozen=True)
class TaskLimits:
    """What the task definition gives a worker container (template defaults)."""

    cpus: float  # TaskCpu / 1024
    memory_mib: int  # TaskMemory
    stop_timeout_s: int  # the container's StopTimeout
    jvm_options: str  # FRAUD_JVM_OPTIONS with the default JvmHeapMb
    max_leases: str  # KCL_maxLeasesForWorker = ShardsPerTask
    health_check: list[str] = field(default_factory=list)  # the container's HealthCheck command


def task_limits() -> TaskLimits:
    template: dict[str, Any] = cfn_yaml.load(str(TEMPLATE))
    parameters = template["Parameters"]
    task = template["Resources"]["TaskDefinition"]["Properties"]
    container = task["ContainerDefinitions"][0]
    assert task["Cpu"] == {"Ref": "TaskCpu"} and task["Memory"] == {"Ref": "TaskMemory"}
    heap = parameters["JvmHeapMb"]["Default"]
    jvm = next(e["Value"] for e in container["Environment"] if e.get("Name") == "FRAUD_JVM_OPTIONS")
    jvm_text = jvm["Fn::Sub"] if isinstance(jvm, dict) else jvm
    return TaskLimits(
        cpus=int(parameters["TaskCpu"]["Default"]) / 1024,
        memory_mib=int(parameters["TaskMemory"]["Default"]),
        stop_timeout_s=int(container["StopTimeout"]),
        jvm_options=str(jvm_text).replace("${JvmHeapMb}", str(heap)),
        max_leases=str(parameters["ShardsPerTask"]["Default"]),
        health_check=list(container.get("HealthCheck", {}).get("Command", [])),
    )


@dataclass
class Worker:
    """One worker container: `docker create`d once, started, stopped, killed and started again,
    as ECS would replace a task (the same image, settings and limits)."""

    name: str
    worker_id: str
    started_at: list[float] = field(default_factory=list)

    def start(self) -> None:
        self.started_at.append(time.time())
        docker("start", self.name)

    def state(self) -> dict[str, Any]:
        inspected: list[dict[str, Any]] = json.loads(docker("inspect", self.name).stdout)
        state: dict[str, Any] = inspected[0]["State"]
        return state

    def wait_exit(self, timeout_s: float) -> int:
        return int(docker("wait", self.name, timeout=timeout_s).stdout.strip())

    def logs(self) -> str:
        result = docker("logs", self.name, timeout=60)
        return result.stdout + result.stderr

    def rss(self) -> int:
        """Resident bytes of every process in the container (the JVM, each processor and its
        alert process, the init): the cgroup's figures also count page cache."""
        pids = [int(self.state()["Pid"])]
        total = 0
        while pids:
            pid = pids.pop()
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            pids += [int(c) for c in children]
            rss = next(
                (line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), "0"
            )
            total += int(rss) * 1024
        return total

    def cgroup_memory(self) -> tuple[int, int]:
        """(current, peak) bytes of the container's memory cgroup (v1 or v2)."""
        pid = int(self.state()["Pid"])
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        v1 = next((line for line in lines if ":memory:" in line), None)
        if v1 is not None:
            base = Path("/sys/fs/cgroup/memory") / v1.split(":", 2)[2].lstrip("/")
            return (
                int((base / "memory.usage_in_bytes").read_text()),
                int((base / "memory.max_usage_in_bytes").read_text()),
            )
        base = Path("/sys/fs/cgroup") / lines[0].split(":", 2)[2].lstrip("/")
        peak = base / "memory.peak"
        current = int((base / "memory.current").read_text())
        return current, int(peak.read_text()) if peak.exists() else current


def container_env(stack_env: Mapping[str, str], limits: TaskLimits) -> dict[str, str]:
    """What the task definition sets, pointed at the local stand-ins (host network)."""
    return {
        **stack_env,
        "FRAUD_KCL_PROFILE": "local",  # the local stack's fast lease intervals, polling
        "FRAUD_JVM_OPTIONS": limits.jvm_options,
        "KCL_maxLeasesForWorker": limits.max_leases,
        # Flush by age quickly so the test does not wait for the production default.
        "FRAUD_FLUSH_MAX_AGE_S": "2",
        "FRAUD_FLUSH_MAX_RECORDS": "50",
        "FRAUD_METRICS_INTERVAL_S": "2",
    }


def run_args(limits: TaskLimits, name: str, env: Mapping[str, str]) -> list[str]:
    """`docker run`/`create` options for a container as Fargate runs the task's."""
    args = [
        "--name",
        name,
        "--label",
        f"{LABEL}={RUN_ID}",
        "--network",
        "host",  # no bridge here; on Fargate each task has its own interface (awsvpc)
        "--cpus",
        f"{limits.cpus:g}",
        "--memory",
        f"{limits.memory_mib}m",
        "--memory-swap",
        f"{limits.memory_mib}m",
        "--read-only",  # ReadonlyRootFilesystem
        "--tmpfs",
        "/tmp:rw,mode=1777",  # the task's scratch volume
        "--init",  # LinuxParameters.InitProcessEnabled
        "--stop-timeout",
        str(limits.stop_timeout_s),
        # The image's health check, polled faster than its 30 s so the test need not wait.
        "--health-interval",
        "2s",
        "--health-retries",
        "2",
        "--health-start-period",
        "60s",
    ]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    return args


@pytest.fixture(scope="session")
def limits() -> TaskLimits:
    return task_limits()


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The local stack's servers, stream, bucket, topic and alert queue (`fraudstream local up`
    with no worker of its own: the workers are the containers); stopped whatever happens."""
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("stack") / ".fraudstream",
        kinesis_port=free_port(),
        kinesis_tls_port=free_port(),
        moto_port=free_port(),
        redis_port=free_port(),
        workers=0,
        shards=2,
        app_name=f"fraudstream-ct-{RUN_ID}",
    )
    # `up` waits for its own workers' leases; here there are none to wait for.
    with (
        mock.patch.object(local_stack, "wait_for_leases", lambda *a, **k: {}),
        mock.patch.object(local_stack, "wait_for_processors", lambda *a, **k: None),
    ):
        env = up(options)
    try:
        yield Stack(options, [], env)
    finally:
        down(options)


def new_worker(limits: TaskLimits, env: Mapping[str, str], index: int) -> Worker:
    worker_id = f"container-{index}"
    name = f"fraudstream-ct-{RUN_ID}-{index}"
    docker("create", *run_args(limits, name, {**env, "FRAUD_WORKER_ID": worker_id}), IMAGE)
    return Worker(name, worker_id)


@pytest.fixture()
def make_worker(limits: TaskLimits, servers: Stack) -> Iterator[Any]:  # a factory: index -> Worker
    made: list[Worker] = []

    def make(index: int) -> Worker:
        worker = new_worker(limits, container_env(servers.env, limits), index)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        docker("rm", "-f", worker.name, check=False)


def wait_until(predicate: Any, timeout_s: float, what: str, poll_s: float = 0.5) -> float:
    """Poll until `predicate()` is true; the seconds it took; fail naming `what`."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(poll_s)
    return time.monotonic() - started


def owners(servers: Stack) -> dict[str, str]:
    return lease_owners(servers.options, servers.env)
