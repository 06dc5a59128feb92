"""redis-server and moto server on free 127.0.0.1 ports, started and stopped by the bench."""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import boto3
import redis
from botocore.config import Config

from consumer.infra.query_body import encode_body_once
from consumer.settings.config import RetryConfig
from consumer.sinks.alerts import AlertPublisher, AlertSink

HOST = "127.0.0.1"
REGION = "us-east-1"
BUCKET = "fraudstream-bench"
TOPIC = "fraudstream-bench-alerts"
# moto accepts any credentials; these are placeholders, never real ones.
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# The same SDK retry settings as consumer.worker.wiring (our tenacity loop owns retries).
BOTO_CONFIG = Config(
    retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=3, read_timeout=10
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def aws_client(service: str, endpoint_url: str) -> Any:
    """A boto3 client of `service` pointed at the moto server."""
    session: Any = boto3.session.Session()
    return session.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint_url,
        config=BOTO_CONFIG,
        **DUMMY_CREDENTIALS,
    )


def sns_sink_at(endpoint_url: str, topic_arn: str, retry: RetryConfig) -> AlertSink:
    """The alert process's sink in the benchmark (built in the child, so defined in an
    importable module): the production publisher over an SNS client at the bench's moto."""
    return AlertPublisher(encode_body_once(aws_client("sns", endpoint_url)), topic_arn, retry)


class _Server:
    """A child server process; stopped (TERM, then KILL) on exit, also on error."""

    name = "server"

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self._log_path = log_dir / f"{self.name}.log"
        self._log: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def __enter__(self) -> _Server:
        self._log = self._log_path.open("wb")
        self._proc = subprocess.Popen(
            self._command(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 30
            while not self._ready():
                if self._proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited: {self.log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} not ready after 30 s: {self.log_tail()}")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class RedisServer(_Server):
    name = "redis"

    def __init__(self, log_dir: Path) -> None:
        super().__init__(log_dir)
        self._dir = log_dir

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def _command(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: apt-get install -y redis-server")
        return [
            binary,
            *("--bind", HOST, "--port", str(self.port)),
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            *("--dir", str(self._dir), "--loglevel", "warning"),
        ]

    def _ready(self) -> bool:
        try:
            with redis.Redis(host=HOST, port=self.port, socket_timeout=1) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def commands_processed(self) -> int:
        with redis.Redis.from_url(self.url) as client:
            return int(client.info("stats")["total_commands_processed"])

    def command_calls(self) -> dict[str, int]:
        """Calls per command so far, those the scripts make included (INFO commandstats)."""
        with redis.Redis.from_url(self.url) as client:
            stats = client.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()}

    def flushall(self) -> None:
        with redis.Redis.from_url(self.url) as client:
            client.flushall()


class MotoServer(_Server):
    """moto server for S3 and SNS; `reset()` empties it and recreates the bucket and topic."""

    name = "moto"

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __init__(self, log_dir: Path, keep_alive: bool = False) -> None:
        super().__init__(log_dir)
        self._keep_alive = keep_alive

    def _command(self) -> list[str]:
        if self._keep_alive:  # the moto application behind waitress (bench/moto_keepalive.py)
            module = [sys.executable, "-m", "bench.moto_keepalive"]
            return [*module, "--host", HOST, "--port", str(self.port)]
        binary = Path(sys.executable).parent / "moto_server"
        if not binary.exists():
            found = shutil.which("moto_server")
            if found is None:
                raise RuntimeError("moto_server not found: pip install -e '.[dev]'")
            binary = Path(found)
        return [str(binary), "-H", HOST, "-p", str(self.port)]

    def _request(self, method: str, path: str, timeout: float) -> int:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    def _ready(self) -> bool:
        try:
            return self._request("GET", "/moto-api/", timeout=1) == 200
        except OSError:
            return False

    def reset(self) -> str:
        """Forget every resource, then create the bucket and topic; return the topic ARN."""
        status = self._request("POST", "/moto-api/reset", timeout=30)
        if status != 200:
            raise RuntimeError(f"moto reset answered {status}")
        aws_client("s3", self.endpoint_url).create_bucket(Bucket=BUCKET)
        topic_arn: str = aws_client("sns", self.endpoint_url).create_topic(Name=TOPIC)["TopicArn"]
        return topic_arn
