"""A real three-master Redis Cluster on free loopback ports, from the redis-server binary the
other state tests use (scripts/setup.sh installs it), for tests that must show the state store
keeps every command in one slot (what ElastiCache cluster mode demands).

Use it by importing the fixture into a test module (`from tests.support.redis_cluster import
redis_cluster  # noqa: F401`). Nothing is skipped: a missing binary or a cluster that does not
come up fails the test with the reason.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.cluster import RedisCluster
from redis.exceptions import RedisError

MASTERS = 3
STARTUP_S = 30.0


def _free_ports(count: int) -> list[int]:
    """Ports free now whose cluster bus ports (port + 10000) are free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: the Redis Cluster tests need it (scripts/setup.sh)")
    return path


def _stop(servers: list[subprocess.Popen[bytes]]) -> None:
    for server in servers:
        server.terminate()
    for server in servers:
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A client of a fresh three-master cluster (no replicas), shared by the session; each
    test flushes what it needs."""
    server_bin, cli_bin = _binary("redis-server"), _binary("redis-cli")
    root: Path = tmp_path_factory.mktemp("redis-cluster")
    ports = _free_ports(MASTERS)
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            workdir = root / str(port)
            workdir.mkdir()
            servers.append(
                subprocess.Popen(
                    [
                        server_bin,
                        "--bind",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        f"nodes-{port}.conf",
                        "--cluster-node-timeout",
                        "5000",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    cwd=workdir,
                )
            )
        deadline = time.monotonic() + STARTUP_S
        for port in ports:
            while (
                subprocess.run(
                    [cli_bin, "-p", str(port), "ping"], capture_output=True, check=False
                ).stdout.strip()
                != b"PONG"
            ):
                if time.monotonic() > deadline:
                    pytest.fail(f"redis-server on port {port} did not start in {STARTUP_S} s")
                time.sleep(0.05)
        created = subprocess.run(
            [
                cli_bin,
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            check=False,
            timeout=STARTUP_S,
        )
        if created.returncode != 0:
            pytest.fail(f"redis-cli --cluster create failed: {created.stdout!r} {created.stderr!r}")
        while True:
            info = subprocess.run(
                [cli_bin, "-p", str(ports[0]), "cluster", "info"],
                capture_output=True,
                check=False,
            ).stdout
            if b"cluster_state:ok" in info:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the cluster did not reach cluster_state:ok: {info!r}")
            time.sleep(0.1)
        client = RedisCluster(host="127.0.0.1", port=ports[0])
        while True:  # every node agrees on the slots before the tests start
            try:
                client.ping(target_nodes=RedisCluster.ALL_NODES)
                if len(client.get_primaries()) == MASTERS:
                    break
            except RedisError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the cluster's client never saw three masters")
            time.sleep(0.1)
            client.close()
            client = RedisCluster(host="127.0.0.1", port=ports[0])
        yield client
        client.close()
    finally:
        _stop(servers)
