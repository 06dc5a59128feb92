"""The embedded local stack: kinesis-mock, moto server and redis-server on 127.0.0.1, plus workers.

`fraudstream local up` starts the servers, creates the stream, bucket, topic and an SQS queue
subscribed to the topic (so a person or a test can read the alerts), starts the workers (the real
MultiLangDaemon each) and waits until every shard is leased. Every process it starts has its pid
in <state>/pids/ and its output in <state>/logs/; `local down` stops exactly those.

With `supervise` (what `fraudstream local up` does unless --no-supervise) it also starts a
supervisor process (`python -m consumer.local.stack supervise`, log in <state>/logs/supervisor.log)
that notices a worker that died and starts it again, at most `max_restarts` times per worker in
`restart_window_s`, with a line in its log each time.

With `api` (`fraudstream local up --api`) it also starts the scoring API (`fraudstream serve`,
docs/api.md) on `api_port` (8080 when free, else a free port; an explicit port must be free),
with a dev key minted at start: the key in <state>/api-key, its hash in <state>/api-keys.json,
FRAUD_API_URL and FRAUD_API_KEY in local.env. It is recorded, supervised and stopped like the
workers.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from consumer.errors import FraudstreamError
from consumer.local.kinesis_patch import KinesisPatchError, patch_kinesis_mock

REPO_ROOT = Path(__file__).resolve().parents[2]
BIND_HOST = "127.0.0.1"
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


class StackError(FraudstreamError, RuntimeError):
    """The local stack cannot start (or stop); the message says what to do."""


@dataclass(frozen=True)
class StackOptions:
    state_dir: Path = Path(".fraudstream")
    kinesis_port: int = 4567
    kinesis_tls_port: int = 4568
    moto_port: int = 4569
    redis_port: int = 6390
    workers: int = 1
    shards: int = 2
    stream: str = "fraudstream-transactions"
    app_name: str = "fraudstream"
    bucket: str = "fraudstream-local"
    topic: str = "fraudstream-alerts"
    lease_timeout_s: float = 240.0
    worker_env: Mapping[str, str] = field(default_factory=dict)
    supervise: bool = False
    max_restarts: int = 5
    restart_window_s: float = 600.0
    api: bool = False
    # The API's port: None for DEFAULT_API_PORT when it is free, else a free one.
    api_port: int | None = None
    # Which Kinesis stand-in serves kinesis_port: "kinesis-mock" (the default; resharding too)
    # or "fraudstream" (consumer/local/kinesis_server: for rates kinesis-mock cannot serve).
    kinesis_server: str = "kinesis-mock"

    @property
    def pids(self) -> Path:
        return self.state_dir / "pids"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def env_file(self) -> Path:
        return self.state_dir / "local.env"

    @property
    def supervisor_file(self) -> Path:
        return self.state_dir / "supervisor.json"

    @property
    def api_key_file(self) -> Path:
        return self.state_dir / "api-key"

    @property
    def api_keys_document(self) -> Path:
        return self.state_dir / "api-keys.json"

    def port_settings(self) -> dict[str, int]:
        return {
            "--kinesis-port": self.kinesis_port,
            "--kinesis-tls-port": self.kinesis_tls_port,
            "--moto-port": self.moto_port,
            "--redis-port": self.redis_port,
        }


_progress: Any = None  # the `up` progress bar while it runs (tqdm, on a terminal only)


def _say(message: str) -> None:
    """Progress for the person at the terminal, on stderr (never stdout: workers share it)."""
    if _progress is not None:
        _progress.write(f"[local] {message}", file=sys.stderr)
        return
    sys.stderr.write(f"[local] {message}\n")
    sys.stderr.flush()


@contextlib.contextmanager
def _steps(total: int) -> Iterator[Callable[[str], None]]:
    """A tqdm bar of `up`'s steps on stderr when it is a terminal; `step(name)` advances it."""
    global _progress
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        desc="local up",
        unit="step",
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
        bar_format="{desc}: {n_fmt}/{total_fmt} steps |{bar}| {elapsed} {postfix}",
    )
    _progress = None if bar.disable else bar

    def step(name: str) -> None:
        bar.set_postfix_str(name, refresh=False)
        bar.update(1)

    try:
        yield step
    finally:
        _progress = None
        bar.close()


# --- processes -------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not alive for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def running_pids(options: StackOptions) -> dict[str, int]:
    """Name -> pid of every recorded process that is still alive."""
    alive: dict[str, int] = {}
    if not options.pids.is_dir():
        return alive
    for pid_file in sorted(options.pids.glob("*.pid")):
        try:
            pid = int(pid_file.read_text().strip())
        except ValueError:
            continue
        if _pid_alive(pid):
            alive[pid_file.stem] = pid
    return alive


def _start(
    options: StackOptions,
    name: str,
    argv: list[str],
    env: Mapping[str, str],
    cwd: Path | None = None,
) -> int:
    options.logs.mkdir(parents=True, exist_ok=True)
    options.pids.mkdir(parents=True, exist_ok=True)
    with open(options.logs / f"{name}.log", "ab") as log_file:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd or options.state_dir,
            start_new_session=True,  # our own process group: `down` can stop it and its children
        )
    (options.pids / f"{name}.pid").write_text(f"{process.pid}\n")
    return process.pid


def _stop(pid: int, name: str, grace_s: float) -> None:
    """SIGTERM the process group, then SIGKILL what is left after the grace period."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            break
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # stragglers of the group, even if the leader exited
    _say(f"stopped {name} (pid {pid})")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((BIND_HOST, port))
        except OSError:
            return False
    return True


def _wait_for_port(port: int, name: str, options: StackOptions, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((BIND_HOST, port)) == 0:
                return
        if name not in running_pids(options):
            raise StackError(f"{name} exited during start-up; see {options.logs / (name + '.log')}")
        time.sleep(0.2)
    raise StackError(f"{name} did not listen on {BIND_HOST}:{port} within {timeout_s:.0f} s")


# --- servers ---------------------------------------------------------------------------------


def find_kinesis_mock() -> Path:
    """kinesis-mock's main.js, from the npm package `kinesis-local` (scripts/setup.sh)."""
    candidates = [os.environ.get("FRAUD_KINESIS_MOCK_JS", "")]
    candidates.append(str(REPO_ROOT / "node_modules" / "kinesis-local" / "main.js"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise StackError(
        "kinesis-mock not found: run scripts/setup.sh (npm package kinesis-local), "
        "or set FRAUD_KINESIS_MOCK_JS to its main.js"
    )


def loopback_kinesis_mock(options: StackOptions) -> Path:
    """A patched copy of kinesis-mock (consumer/local/kinesis_patch.py): binds 127.0.0.1, where
    upstream hard-codes 0.0.0.0, and puts and gets in time independent of what a shard holds.
    Refuses (StackError) any build but the pinned one."""
    source = find_kinesis_mock()
    target_dir = options.state_dir / "kinesis-mock"
    target_dir.mkdir(parents=True, exist_ok=True)
    try:
        script = patch_kinesis_mock(source.read_bytes(), BIND_HOST, str(source))
    except KinesisPatchError as error:
        raise StackError(str(error)) from error
    (target_dir / "main.js").write_text(script, encoding="utf-8")
    for extra in ("server.json", "package.json"):
        if (source.parent / extra).exists():
            shutil.copy(source.parent / extra, target_dir / extra)
    return target_dir / "main.js"


def _binary(name: str, hint: str) -> str:
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise StackError(f"{name} not found: {hint}")
    return found


def endpoints(options: StackOptions) -> dict[str, str]:
    moto = f"http://{BIND_HOST}:{options.moto_port}"
    return {
        # Plain HTTP port: the KCL's HTTP/2 client works there (h2c); not on the TLS port.
        "AWS_ENDPOINT_URL_KINESIS": f"http://{BIND_HOST}:{options.kinesis_port}",
        "AWS_ENDPOINT_URL_DYNAMODB": moto,
        "AWS_ENDPOINT_URL_S3": moto,
        "AWS_ENDPOINT_URL_SNS": moto,
        "AWS_ENDPOINT_URL_SQS": moto,
        "AWS_ENDPOINT_URL_CLOUDWATCH": moto,
    }


def stack_env(options: StackOptions) -> dict[str, str]:
    """What local.env exports: endpoints, names, credentials for the stand-ins."""
    account = "123456789012"  # moto's default account
    return {
        **LOCAL_CREDENTIALS,
        **endpoints(options),
        "FRAUD_STREAM": options.stream,
        "FRAUD_APP_NAME": options.app_name,
        "FRAUD_BUCKET": options.bucket,
        "FRAUD_TOPIC_ARN": f"arn:aws:sns:us-east-1:{account}:{options.topic}",
        "FRAUD_ALERTS_QUEUE_URL": f"http://{BIND_HOST}:{options.moto_port}/{account}/{options.topic}-tap",
        "REDIS_URL": f"redis://{BIND_HOST}:{options.redis_port}/0",
    }


def stack_client(env: Mapping[str, str], service: str, config: Config | None = None) -> Any:
    """A boto3 client for one service of the local stack, from its environment (local.env)."""
    session: Any = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"],
    )
    endpoint = env[f"AWS_ENDPOINT_URL_{service.upper()}"]
    return session.client(service, endpoint_url=endpoint, config=config)


def create_resources(options: StackOptions, env: Mapping[str, str]) -> None:
    kinesis = stack_client(env, "kinesis")
    existing = kinesis.list_streams().get("StreamNames", [])
    if options.stream not in existing:
        kinesis.create_stream(StreamName=options.stream, ShardCount=options.shards)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=options.stream, WaiterConfig={"Delay": 0.5, "MaxAttempts": 60}
    )
    stack_client(env, "s3").create_bucket(Bucket=options.bucket)
    sns = stack_client(env, "sns")
    topic_arn = sns.create_topic(Name=options.topic)["TopicArn"]
    sqs = stack_client(env, "sqs")
    queue_url = sqs.create_queue(QueueName=f"{options.topic}-tap")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)


def lease_owners(options: StackOptions, env: Mapping[str, str]) -> dict[str, str]:
    """shard id -> worker id, from the KCL's lease table (empty while it does not exist yet)."""
    dynamodb = stack_client(env, "dynamodb")
    try:
        items = dynamodb.scan(TableName=options.app_name, ConsistentRead=True)["Items"]
    except dynamodb.exceptions.ResourceNotFoundException:
        return {}
    return {
        item["leaseKey"]["S"]: item.get("leaseOwner", {}).get("S", "")
        for item in items
        if "leaseKey" in item
    }


def _open_shards(options: StackOptions, env: Mapping[str, str]) -> set[str]:
    shards = stack_client(env, "kinesis").list_shards(StreamName=options.stream)["Shards"]
    return {s["ShardId"] for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]}


def wait_for_leases(
    options: StackOptions, env: Mapping[str, str], say: Callable[[str], None] = _say
) -> dict[str, str]:
    """Block until every open shard has a lease owner; raise with the worker log path if not."""
    shards = _open_shards(options, env)
    started = time.monotonic()
    last_report = 0.0
    while True:
        owners = lease_owners(options, env)
        held = {s: o for s, o in owners.items() if s in shards and o}
        if len(held) == len(shards):
            say(f"all {len(shards)} shards leased after {time.monotonic() - started:.0f} s: {held}")
            return held
        if not any(name.startswith("worker-") for name in running_pids(options)):
            raise StackError(f"no worker is running; see {options.logs}/worker-*.log")
        elapsed = time.monotonic() - started
        if elapsed > options.lease_timeout_s:
            raise StackError(
                f"shards not leased after {elapsed:.0f} s ({len(held)}/{len(shards)}); "
                f"see {options.logs}/worker-*.log"
            )
        if elapsed - last_report >= 10:
            say(f"waiting for the KCL to lease {len(shards)} shards ({len(held)} so far) ...")
            last_report = elapsed
        time.sleep(1)


def worker_log_events(
    options: StackOptions, marker: bytes, since: float
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(worker, event) for each JSON line of the workers' logs that holds `marker` and was
    written at or after `since` (epoch s); a line that does not parse or has no timestamp is
    skipped, so a torn last line never stops a reader."""
    for path in sorted(options.logs.glob("worker-*.log")):
        with path.open("rb") as log_file:
            for raw in log_file:
                if marker not in raw:
                    continue
                try:
                    event = json.loads(raw)
                    at = datetime.fromisoformat(event["timestamp"]).timestamp()
                except (ValueError, KeyError, TypeError):
                    continue
                if at >= since:
                    yield path.stem, event


def initialized_shards(options: StackOptions, since: float) -> set[str]:
    """Shards whose record processor logged `shard_initialized` at or after `since` (epoch s)."""
    return {
        str(event.get("shard_id"))
        for _, event in worker_log_events(options, b'"shard_initialized"', since)
    }


def wait_for_processors(
    options: StackOptions, env: Mapping[str, str], since: float, say: Callable[[str], None] = _say
) -> None:
    """Block until a record processor runs on every open shard.

    A lease is taken a moment before the daemon has started the shard's Python processor
    (interpreter, imports, Redis connection): records put in between wait for it, as latency a
    load test started right after `local up` would count (measured:
    docs/performance.md#end-to-end-on-the-local-stack).
    """
    shards = _open_shards(options, env)
    started = time.monotonic()
    while True:
        ready = initialized_shards(options, since) & shards
        if ready == shards:
            say(f"record processors running on all {len(shards)} shards")
            return
        if time.monotonic() - started > options.lease_timeout_s:
            raise StackError(
                f"record processors started on {len(ready)}/{len(shards)} shards after "
                f"{options.lease_timeout_s:.0f} s; see {options.logs}/worker-*.log"
            )
        time.sleep(0.25)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (created if missing) between processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def start_worker(options: StackOptions, index: int, env: Mapping[str, str]) -> int:
    """Start worker `index`, or return its pid if it is already running: the supervisor and a
    person (or a test) restarting it at the same moment start one worker, not two."""
    name = f"worker-{index}"
    worker_env = {
        **os.environ,
        **env,
        **options.worker_env,
        "FRAUD_KCL_PROFILE": "local",
        "FRAUD_WORKER_ID": name,
        "FRAUD_PROPERTIES_OUT": str((options.state_dir / f"{name}.properties").resolve()),
    }
    with _locked(options.pids / f"{name}.lock"):
        running = running_pids(options).get(name)
        if running is not None:
            return running
        return _start(options, name, [sys.executable, "-m", "consumer.cli", "worker"], worker_env)


# --- the supervisor ----------------------------------------------------------------------------


class Supervisor:
    """Restarts the stack's workers that died: a worker seen dead on two polls in a row is
    started again (start_worker), at most `options.max_restarts` times in
    `options.restart_window_s`; after that it is left dead, said once. Each restart is a line."""

    def __init__(
        self,
        options: StackOptions,
        env: Mapping[str, str],
        *,
        start: Callable[[StackOptions, int, Mapping[str, str]], int] = start_worker,
        start_api: Callable[[StackOptions, Mapping[str, str]], int] | None = None,
        say: Callable[[str], None] = _say,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self.env = dict(env)
        self._start = start
        self._start_api = start_api or start_api_process
        self._say = say
        self._clock = clock
        self._dead: set[str] = set()
        self._restarts: dict[str, deque[float]] = {}
        self.given_up: set[str] = set()
        self.restarted: list[tuple[str, int]] = []  # (worker, new pid), in order

    def check(self) -> None:
        """One poll: restart each worker (and the API) dead since the previous poll."""
        alive = running_pids(self.options)
        now = self._clock()
        names = [f"worker-{index}" for index in range(1, self.options.workers + 1)]
        if self.options.api:
            names.append("api")
        for name in names:
            if name in alive:
                self._dead.discard(name)
                continue
            if name in self.given_up:
                continue
            if name not in self._dead:  # seen dead once: a person restarting it gets a moment
                self._dead.add(name)
                continue
            recent = self._restarts.setdefault(name, deque())
            while recent and now - recent[0] > self.options.restart_window_s:
                recent.popleft()
            log = self.options.logs / f"{name}.log"
            if len(recent) >= self.options.max_restarts:
                self.given_up.add(name)
                self._say(
                    f"{name} died {len(recent)} times within "
                    f"{self.options.restart_window_s:.0f} s: not restarting it again; see {log}"
                )
                continue
            if name == "api":
                pid = self._start_api(self.options, self.env)
            else:
                pid = self._start(self.options, int(name.split("-")[1]), self.env)
            recent.append(now)
            self._dead.discard(name)
            self.restarted.append((name, pid))
            self._say(
                f"{name} had exited; restarted it as pid {pid} (restart {len(recent)} of at "
                f"most {self.options.max_restarts} in {self.options.restart_window_s:.0f} s); "
                f"see {log}"
            )

    def run(self, stop: threading.Event, poll_s: float = 1.0) -> None:
        """Poll until `stop` is set."""
        self._say(
            f"supervising {self.options.workers} worker(s)"
            f"{' and the API' if self.options.api else ''} in {self.options.state_dir} "
            f"every {poll_s:.1f} s"
        )
        while not stop.is_set():
            self.check()
            stop.wait(poll_s)


def start_supervisor(options: StackOptions) -> int:
    """The supervisor as a process of the stack (its pid recorded, stopped first by `down`)."""
    options.supervisor_file.write_text(
        json.dumps(
            {
                "workers": options.workers,
                "worker_env": dict(options.worker_env),
                "max_restarts": options.max_restarts,
                "restart_window_s": options.restart_window_s,
                "api": options.api,
                "api_port": options.api_port,
            }
        )
    )
    argv = [
        sys.executable,
        "-m",
        "consumer.local.stack",
        "supervise",
        "--state-dir",
        str(options.state_dir.resolve()),
    ]
    return _start(options, "supervisor", argv, os.environ, cwd=REPO_ROOT)


def _supervise_main(argv: list[str] | None = None) -> int:
    """`python -m consumer.local.stack supervise --state-dir DIR`: what start_supervisor runs."""
    parser = argparse.ArgumentParser(prog="python -m consumer.local.stack")
    parser.add_argument("command", choices=["supervise"], help="the only command")
    parser.add_argument("--state-dir", required=True, help="the stack's state directory")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between checks")
    args = parser.parse_args(argv)
    state_dir = Path(args.state_dir)
    config = json.loads((state_dir / "supervisor.json").read_text())
    options = StackOptions(
        state_dir=state_dir,
        workers=int(config["workers"]),
        worker_env=dict(config["worker_env"]),
        max_restarts=int(config["max_restarts"]),
        restart_window_s=float(config["restart_window_s"]),
        api=bool(config.get("api", False)),
        api_port=config.get("api_port"),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    Supervisor(options, read_env_file(options)).run(stop, args.poll)
    _say("supervisor stopped")
    return 0


# --- the scoring API --------------------------------------------------------------------------

DEFAULT_API_PORT = 8080
API_KEY_ID = "local-dev"


def mint_api_key(options: StackOptions) -> str:
    """A fresh dev key: the key in <state>/api-key (0600), its entry in <state>/api-keys.json.

    The key and document are consumer/api/keys.py's (`fraudstream serve --new-key`): "fsk_" and
    32 random bytes, stored as its sha256 hex; made here because the API's package is above this
    one (pyproject's import layers), and the format is all the two share.
    """
    key = "fsk_" + secrets.token_urlsafe(32)
    digest = hashlib.sha256(key.encode()).hexdigest()
    options.api_keys_document.write_text(
        json.dumps({"keys": [{"id": API_KEY_ID, "sha256": digest}]}) + "\n"
    )
    options.api_key_file.touch(mode=0o600)
    options.api_key_file.write_text(key + "\n")
    return key


def choose_api_port(options: StackOptions) -> int:
    """The port asked for (StackError when taken), else 8080 when free, else a free one."""
    if options.api_port is not None:
        if not _port_free(options.api_port):
            raise StackError(
                f"port {options.api_port} on {BIND_HOST} is taken; choose another with --api-port"
            )
        return options.api_port
    if _port_free(DEFAULT_API_PORT):
        return DEFAULT_API_PORT
    with socket.socket() as probe:
        probe.bind((BIND_HOST, 0))
        return int(probe.getsockname()[1])


def start_api_process(options: StackOptions, env: Mapping[str, str]) -> int:
    """`fraudstream serve` on the port local.env names, with the stack's settings and the dev
    keys' document; or its pid if it is already running."""
    url = env["FRAUD_API_URL"]
    port = url.rsplit(":", 1)[1]
    api_env = {
        **os.environ,
        **env,
        **options.worker_env,
        "FRAUD_API_KEYS_FILE": str(options.api_keys_document.resolve()),
    }
    api_env.pop("FRAUD_API_KEY", None)  # the caller's key, not a setting of the server
    argv = [sys.executable, "-m", "consumer.cli", "serve", "--host", BIND_HOST, "--port", port]
    with _locked(options.pids / "api.lock"):
        running = running_pids(options).get("api")
        if running is not None:
            return running
        return _start(options, "api", argv, api_env, cwd=REPO_ROOT)


def wait_for_api(options: StackOptions, url: str, timeout_s: float = 60.0) -> None:
    """Block until GET /readyz answers 200 (Redis reachable, rule set in force)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/readyz", timeout=2) as reply,  # noqa: S310
        ):
            if reply.status == 200:
                return
        if "api" not in running_pids(options):
            raise StackError(f"the API exited during start-up; see {options.logs / 'api.log'}")
        time.sleep(0.2)
    raise StackError(f"the API at {url} was not ready within {timeout_s:.0f} s")


def start_redis(
    options: StackOptions, redis_server: str | None = None, env: Mapping[str, str] | None = None
) -> int:
    """redis-server on the stack's port, working in the state directory: no periodic snapshots,
    but a `SHUTDOWN SAVE` leaves dump.rdb there and a restart loads it (the restart scenario)."""
    binary = redis_server or _binary("redis-server", "install it: apt-get install -y redis-server")
    argv = [binary, "--bind", BIND_HOST, "--port", str(options.redis_port), "--save", ""]
    return _start(options, "redis", argv, env or {**os.environ, **LOCAL_CREDENTIALS})


def write_env_file(options: StackOptions, env: Mapping[str, str]) -> None:
    lines = ["# Written by `fraudstream local up`: source it to talk to the local stack."]
    lines += [f"export {key}={json.dumps(value)}" for key, value in env.items()]
    options.env_file.write_text("\n".join(lines) + "\n")


def read_env_file(options: StackOptions) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in options.env_file.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            values[key] = json.loads(value)
    return values


def up(options: StackOptions) -> dict[str, str]:
    """Start the whole stack, or say it is already up; return the environment it exports."""
    options.state_dir.mkdir(parents=True, exist_ok=True)
    alive = running_pids(options)
    if alive:
        _say(f"already up ({', '.join(sorted(alive))}); `fraudstream local down` stops it")
        env = read_env_file(options)
        if options.api and "api" not in alive:
            raise StackError(
                "the stack is up without the API: `fraudstream local down`, then `local up --api`"
            )
        return env
    if options.pids.is_dir():
        shutil.rmtree(options.pids)
    for flag, port in options.port_settings().items():
        if not _port_free(port):
            raise StackError(f"port {port} on {BIND_HOST} is taken; choose another with {flag}")
    env = stack_env(options)
    if options.api:
        port = choose_api_port(options)
        env["FRAUD_API_URL"] = f"http://{BIND_HOST}:{port}"
    redis_server = _binary("redis-server", "install it: apt-get install -y redis-server")
    moto_server = _binary("moto_server", "install the dev extras: pip install -e '.[dev]'")
    kinesis_argv, kinesis_cwd = kinesis_command(options)
    base = {**os.environ, **LOCAL_CREDENTIALS}
    with _steps(7 if options.api else 6) as step:
        return _up(options, env, redis_server, moto_server, (kinesis_argv, kinesis_cwd), base, step)


KINESIS_SERVERS = ("kinesis-mock", "fraudstream")


def kinesis_command(options: StackOptions) -> tuple[list[str], Path]:
    """The command line (and working directory) of the chosen Kinesis stand-in."""
    if options.kinesis_server == "fraudstream":
        argv = [sys.executable, "-m", "consumer.local.kinesis_server"]
        return [*argv, "--host", BIND_HOST, "--port", str(options.kinesis_port)], options.state_dir
    if options.kinesis_server != "kinesis-mock":
        raise StackError(
            f"unknown Kinesis server {options.kinesis_server!r}: "
            f"one of {', '.join(KINESIS_SERVERS)}"
        )
    node = _binary("node", "install Node.js 20")
    # kinesis-mock reads server.json (its TLS key pair) from its working directory.
    kinesis_js = loopback_kinesis_mock(options)
    return [node, str(kinesis_js.resolve())], kinesis_js.parent


def _up(
    options: StackOptions,
    env: dict[str, str],
    redis_server: str,
    moto_server: str,
    kinesis: tuple[list[str], Path],
    base: dict[str, str],
    step: Callable[[str], None],
) -> dict[str, str]:
    try:
        start_redis(options, redis_server, base)
        _start(options, "moto", [moto_server, "-H", BIND_HOST, "-p", str(options.moto_port)], base)
        kinesis_env = {
            **base,
            "KINESIS_MOCK_PLAIN_PORT": str(options.kinesis_port),
            "KINESIS_MOCK_TLS_PORT": str(options.kinesis_tls_port),
            "LOG_LEVEL": "WARN",
        }
        _start(options, "kinesis", kinesis[0], kinesis_env, kinesis[1])
        _wait_for_port(options.redis_port, "redis", options)
        _wait_for_port(options.moto_port, "moto", options)
        _wait_for_port(options.kinesis_port, "kinesis", options)
        _say(
            f"servers up: {options.kinesis_server} :{options.kinesis_port}, "
            f"moto :{options.moto_port}, "
            f"redis :{options.redis_port}"
        )
        step("servers up")
        create_resources(options, env)
        if options.api:
            env["FRAUD_API_KEY"] = mint_api_key(options)
        write_env_file(options, env)
        _say(
            f"stream {options.stream} ({options.shards} shards), bucket {options.bucket}, "
            f"topic {options.topic}; env in {options.env_file}"
        )
        step("stream, bucket and topic created")
        workers_started = time.time()
        for index in range(1, options.workers + 1):
            start_worker(options, index, env)
        step(f"{options.workers} worker(s) started")
        wait_for_leases(options, env)
        step("shards leased")
        wait_for_processors(options, env, since=workers_started)
        step("record processors running")
        if options.api:
            start_api_process(options, env)
            wait_for_api(options, env["FRAUD_API_URL"])
            _say(
                f"scoring API on {env['FRAUD_API_URL']} (key in {options.api_key_file}; "
                f"log {options.logs / 'api.log'})"
            )
            step("scoring API ready")
        if options.supervise:
            start_supervisor(options)
            _say(
                f"supervisor started: a worker that dies is restarted (log: "
                f"{options.logs / 'supervisor.log'})"
            )
    except BaseException:
        _say("start-up failed; stopping what was started")
        down(options)
        raise
    return env


def down(options: StackOptions) -> list[str]:
    """Stop every recorded process (the supervisor first, then the workers gracefully, then the
    servers), by pid; return their names."""
    alive = running_pids(options)
    order = sorted(
        alive,
        key=lambda name: (
            name != "supervisor",
            name != "api",
            not name.startswith("worker-"),
            name,
        ),
    )
    for name in order:
        grace = 30.0 if name.startswith("worker-") else 15.0 if name == "api" else 5.0
        _stop(alive[name], name, grace_s=grace)
    if options.pids.is_dir():
        shutil.rmtree(options.pids)
    if not order:
        _say("nothing running")
    return order


if __name__ == "__main__":
    sys.exit(_supervise_main())
