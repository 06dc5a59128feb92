"""Renders the KCL properties and starts the real MultiLangDaemon with our processor behind it.

`fraudstream worker` ends in `os.execvp(java ...)`, so the daemon replaces the Python process:
in a container it is PID 1 and receives ECS's SIGTERM itself, which is what makes its graceful
shutdown (`shutdown_requested` to every processor, then lease release) happen.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

import amazon_kclpy

from consumer.settings.config import ConfigError

PROPERTIES_DIR = Path(
    os.environ.get("FRAUD_PROPERTIES_DIR", Path(__file__).resolve().parents[2] / "properties")
)
DAEMON_CLASS = "software.amazon.kinesis.multilang.MultiLangDaemon"
PROFILES = ("aws", "local")
# The setters of multilang's PollingConfigBean (KCL 3.1.3).
POLLING_KEYS = (
    "idleTimeBetweenReadsInMillis",
    "maxGetRecordsThreadPool",
    "maxRecords",
    "millisBehindLatestThresholdForReducedTps",
    "retryGetRecordsInSeconds",
)


def parse_properties(text: str) -> dict[str, str]:
    """The subset of .properties syntax our files use: `key = value`, `#` comments."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"properties line {number}: expected `key = value`, got {raw!r}")
        values[key.strip()] = value.strip()
    return values


def render_properties(
    env: Mapping[str, str], worker_id: str, properties_dir: Path = PROPERTIES_DIR
) -> dict[str, str]:
    """Base file, then the profile overlay, then KCL_<key> variables, then what we always set."""
    profile = env.get("FRAUD_KCL_PROFILE", "aws")
    if profile not in PROFILES:
        raise ConfigError(
            f"FRAUD_KCL_PROFILE: must be one of {', '.join(PROFILES)}, got {profile!r}"
        )
    values = parse_properties((properties_dir / "fraudstream.properties").read_text())
    values.update(parse_properties((properties_dir / f"{profile}.properties").read_text()))
    values.update({k[4:]: v for k, v in env.items() if k.startswith("KCL_") and len(k) > 4})
    if values.get("retrievalMode", "").upper() == "FANOUT":
        # Naming any polling key switches the daemon back to polling: drop them for fan-out.
        for key in POLLING_KEYS:
            values.pop(key, None)
    stream = env.get("FRAUD_STREAM", "").strip()
    if not stream:
        raise ConfigError("FRAUD_STREAM: required but not set")
    values["streamName"] = stream
    values["applicationName"] = env.get("FRAUD_APP_NAME", "fraudstream")
    values["regionName"] = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    values["workerId"] = worker_id
    if " " in sys.executable:
        # The daemon splits executableName on spaces; it cannot be quoted.
        raise ConfigError(f"the Python path {sys.executable!r} contains a space: install elsewhere")
    values["executableName"] = f"{sys.executable} -m consumer.worker.processor"
    kinesis = env.get("AWS_ENDPOINT_URL_KINESIS")
    dynamodb = env.get("AWS_ENDPOINT_URL_DYNAMODB")
    if kinesis:
        values["kinesisEndpoint"] = kinesis
    if dynamodb:
        values["dynamoDBEndpoint"] = dynamodb
    return values


def write_properties(values: Mapping[str, str], path: Path) -> None:
    lines = ["# Rendered by `fraudstream worker`; edit properties/*.properties instead."]
    lines += [f"{key} = {value}" for key, value in values.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def jars_dir() -> Path:
    return Path(amazon_kclpy.__file__).resolve().parent / "jars"


def daemon_command(
    properties: Path, java: str, jvm_options: str, properties_dir: Path = PROPERTIES_DIR
) -> list[str]:
    """The java command line for the MultiLangDaemon (what amazon_kclpy_helper prints)."""
    jars = jars_dir()
    if not any(jars.glob("amazon-kinesis-client-multilang-*.jar")):
        raise ConfigError(f"KCL jars not found in {jars}: reinstall amazon-kclpy")
    classpath = f"{jars}/*{os.pathsep}{properties.parent}"
    return [
        java,
        *shlex.split(jvm_options),
        "-cp",
        classpath,
        DAEMON_CLASS,
        "--properties-file",
        str(properties),
        "--log-configuration",
        str(properties_dir / "logback.xml"),
    ]
