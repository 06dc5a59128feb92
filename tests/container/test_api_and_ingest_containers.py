"""The image's two other commands as the template runs them: the scoring API service
(`fraudstream serve` with the API task definition's command, health check and limits, its keys
in Secrets Manager) and the ingest task (the command IngestRule's input transformer gives it for
a file under incoming/). Against the local stack's servers, like the worker containers."""

from __future__ import annotations

import json
import shlex
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from consumer.api.keys import new_key
from consumer.infra.readback import stream_records
from consumer.local.stack import stack_client
from load_test.synthetic import generate_records
from tests.container.conftest import IMAGE, LABEL, RUN_ID, TEMPLATE, docker, wait_until
from tests.integration.conftest import Stack, free_port

TEMPLATE_DOC: dict[str, Any] = cfn_yaml.load(str(TEMPLATE))


def container_of(task_definition: str) -> dict[str, Any]:
    properties = TEMPLATE_DOC["Resources"][task_definition]["Properties"]
    (container,) = properties["ContainerDefinitions"]
    assert isinstance(container, dict)
    return container


def sizing(task_definition: str) -> list[str]:
    """`docker run` limits from the task definition: CPU units and MiB, defaults resolved."""
    properties = TEMPLATE_DOC["Resources"][task_definition]["Properties"]
    values = []
    for field in ("Cpu", "Memory"):
        value = properties[field]
        if isinstance(value, dict):
            value = TEMPLATE_DOC["Parameters"][value["Ref"]]["Default"]
        values.append(int(value))
    cpu, memory = values
    return ["--cpus", f"{cpu / 1024:g}", "--memory", f"{memory}m", "--memory-swap", f"{memory}m"]


def as_fargate(name: str, env: dict[str, str]) -> list[str]:
    """Options every task of the template gets: host network (awsvpc here), read-only root,
    an init process, the test's label."""
    args = ["--name", name, "--label", f"{LABEL}={RUN_ID}", "--network", "host", "--read-only"]
    args += ["--init"]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    return args


def http(
    method: str, url: str, body: bytes | None = None, key: str | None = None
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def health_status(name: str) -> str:
    state = json.loads(docker("inspect", name).stdout)[0]["State"]
    return str(state.get("Health", {}).get("Status", "none"))


@pytest.fixture()
def api_secret(servers: Stack) -> tuple[str, str]:
    """A key, and the name of a Secrets Manager secret holding its hash (as ApiKeys would)."""
    key, entry = new_key("container-test")
    name = f"fraudstream-ct-api-keys-{RUN_ID}"
    document = {"keys": [entry]}
    moto = servers.env["AWS_ENDPOINT_URL_S3"]  # moto serves every service on one port
    secrets = stack_client(
        {**servers.env, "AWS_ENDPOINT_URL_SECRETSMANAGER": moto}, "secretsmanager"
    )
    secrets.create_secret(Name=name, SecretString=json.dumps(document))
    return key, name


def test_the_api_service_answers_scores_behind_its_health_checks(
    servers: Stack, api_secret: tuple[str, str]
) -> None:
    key, secret = api_secret
    container = container_of("ApiTaskDefinition")
    port = free_port()
    command = [str(part) for part in container["Command"]]
    command[command.index("--port") + 1] = str(port)
    health = container["HealthCheck"]["Command"]
    assert health[0] == "CMD"
    health_command = shlex.join(health[1:]).replace("8080", str(port))
    env = {
        **servers.env,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": servers.env["AWS_ENDPOINT_URL_S3"],
        "FRAUD_API_KEYS_SECRET": secret,
    }
    name = f"fraudstream-ct-api-{RUN_ID}"
    docker(
        "run",
        "-d",
        *as_fargate(name, env),
        *sizing("ApiTaskDefinition"),
        "--stop-timeout",
        str(container["StopTimeout"]),
        "--health-cmd",
        health_command,
        "--health-interval",
        "2s",
        "--health-retries",
        "2",
        "--entrypoint",
        container["EntryPoint"][0],
        IMAGE,
        *command,
    )
    try:
        # The task definition's own health check (ECS ignores the image's, the worker's).
        wait_until(lambda: health_status(name) == "healthy", 90, "the API's health check")
        base = f"http://127.0.0.1:{port}"
        assert http("GET", f"{base}/readyz")[0] == 200
        (record,) = generate_records(1, fraud_ratio=0.0, seed=31)
        status, answer = http("POST", f"{base}/v1/score", record.data, key)
        assert status == 200, answer
        assert answer["flagged"] is False and answer["rules_version"]
        status, answer = http("POST", f"{base}/v1/score", record.data, "fsk_not-a-key")
        assert status == 401
        status, answer = http("POST", f"{base}/v1/score", b'{"amount": 1}', key)
        assert status == 400 and answer
        # ECS stops a task with SIGTERM: the server ends within the stop timeout, cleanly.
        docker("stop", "-t", str(container["StopTimeout"]), name, timeout=90)
        state = json.loads(docker("inspect", name).stdout)[0]["State"]
        assert state["ExitCode"] in (0, 143), docker("logs", name).stderr[-2000:]
        lines = [line for line in docker("logs", name).stderr.splitlines() if line.startswith("{")]
        assert any(json.loads(line).get("event") == "api_request" for line in lines)
    finally:
        docker("rm", "-f", name, check=False)


def test_a_file_under_incoming_is_put_on_the_stream_and_archived(servers: Stack) -> None:
    container = container_of("IngestTaskDefinition")
    (target,) = TEMPLATE_DOC["Resources"]["IngestRule"]["Properties"]["Targets"]
    bucket = servers.env["FRAUD_BUCKET"]
    key = f"incoming/ct-{RUN_ID}.jsonl"
    records = generate_records(60, fraud_ratio=0.0, seed=32)
    good = [r.data for r in records if not r.is_invalid and b"\n" not in r.data]
    bad = [b'{"transaction_id": "ct-missing-fields"}', b"not json at all"]
    s3 = servers.client("s3")
    s3.put_object(Bucket=bucket, Key=key, Body=b"\n".join(good + bad) + b"\n")
    # The command EventBridge gives the task for this object (IngestRule's input transformer).
    overrides = json.loads(
        target["InputTransformer"]["InputTemplate"]
        .replace("<bucket>", bucket)
        .replace("<key>", key)
    )
    (override,) = overrides["containerOverrides"]
    assert override["name"] == container["Name"]
    env = {name: value for name, value in servers.env.items() if name != "REDIS_URL"}
    name = f"fraudstream-ct-ingest-{RUN_ID}"
    started = time.monotonic()
    result = docker(
        "run",
        "--rm",
        *as_fargate(name, env),
        *sizing("IngestTaskDefinition"),
        "--tmpfs",
        "/tmp:rw,mode=1777",
        "--entrypoint",
        container["EntryPoint"][0],
        IMAGE,
        *override["command"],
        check=False,
        timeout=180,
    )
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert key not in listed and f"incoming/done/ct-{RUN_ID}.jsonl" in listed
    (rejects_key,) = [k for k in listed if k.startswith("ingest-rejects/") and RUN_ID in k]
    rejects = s3.get_object(Bucket=bucket, Key=rejects_key)["Body"].read().splitlines()
    assert len(rejects) == len(bad)
    on_stream = {
        data
        for _, _, data in stream_records(servers.client("kinesis"), servers.env["FRAUD_STREAM"])
    }
    assert set(good) <= on_stream
    print(f"[container-test] ingest of {len(good) + len(bad)} lines: {took:.1f} s")
