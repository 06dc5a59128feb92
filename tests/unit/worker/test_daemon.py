import sys
from pathlib import Path

import pytest

from consumer.settings.config import ConfigError
from consumer.worker import daemon

ENV = {"FRAUD_STREAM": "txns", "FRAUD_KCL_PROFILE": "local", "AWS_REGION": "eu-west-1"}


def test_render_layers_base_profile_env_and_fixed_keys() -> None:
    values = daemon.render_properties(
        {**ENV, "KCL_maxRecords": "2500", "AWS_ENDPOINT_URL_KINESIS": "http://127.0.0.1:1"},
        "worker-7",
    )
    assert values["streamName"] == "txns"
    assert values["regionName"] == "eu-west-1"
    assert values["workerId"] == "worker-7"
    assert values["metricsLevel"] == "NONE"  # from local.properties, over the base
    assert values["idleTimeBetweenReadsInMillis"] == "200"
    assert values["maxRecords"] == "2500"  # KCL_ override
    assert values["kinesisEndpoint"] == "http://127.0.0.1:1"
    assert "dynamoDBEndpoint" not in values
    assert values["executableName"] == f"{sys.executable} -m consumer.worker.processor"
    assert values["callProcessRecordsEvenForEmptyRecordList"] == "true"


def test_aws_profile_is_the_default() -> None:
    values = daemon.render_properties({"FRAUD_STREAM": "txns"}, "w")
    assert values["metricsLevel"] == "SUMMARY"
    assert values["idleTimeBetweenReadsInMillis"] == "500"


@pytest.mark.parametrize(
    ("env", "key"),
    [({"FRAUD_KCL_PROFILE": "prod"}, "FRAUD_KCL_PROFILE"), ({"FRAUD_STREAM": ""}, "FRAUD_STREAM")],
)
def test_bad_worker_settings_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        daemon.render_properties({**ENV, **env}, "w")


def test_properties_round_trip_and_command(tmp_path: Path) -> None:
    path = tmp_path / "kcl.properties"
    daemon.write_properties({"streamName": "s", "maxRecords": "10"}, path)
    assert daemon.parse_properties(path.read_text()) == {"streamName": "s", "maxRecords": "10"}
    command = daemon.daemon_command(path, "java", "-Xmx128m")
    assert command[:2] == ["java", "-Xmx128m"]
    assert command[command.index("--properties-file") + 1] == str(path)
    assert daemon.DAEMON_CLASS in command
    assert str(tmp_path) in command[command.index("-cp") + 1]


def test_a_malformed_properties_line_is_reported() -> None:
    with pytest.raises(ConfigError, match="line 2"):
        daemon.parse_properties("a = 1\nno equals sign here\n")


def test_enhanced_fan_out_drops_every_polling_key() -> None:
    values = daemon.render_properties({**ENV, "KCL_retrievalMode": "FANOUT"}, "w")
    assert values["retrievalMode"] == "FANOUT"
    assert not set(daemon.POLLING_KEYS) & set(values)
    polling = daemon.render_properties(ENV, "w")
    assert polling["retrievalMode"] == "POLLING" and "maxRecords" in polling
