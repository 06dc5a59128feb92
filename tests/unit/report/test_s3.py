"""The report reads S3 with DuckDB's httpfs (loaded from its Python package, a secret from
boto3's credentials and AWS_ENDPOINT_URL_S3: path style, plain HTTP): against a moto server,
the same figures as from a local copy of the same objects."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from consumer.report.run import ReportRequest, build


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_s3_gives_the_figures_of_the_local_copy(
    endpoint: str, tree: Path, report: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="out-bkt")
    for path in tree.rglob("*"):
        if path.is_file():
            s3.put_object(
                Bucket="out-bkt", Key=f"env/{path.relative_to(tree)}", Body=path.read_bytes()
            )
    from_s3 = build(ReportRequest(date(2026, 12, 1), date(2026, 12, 7), "s3://out-bkt/env/"))
    assert from_s3["labels_source"] == "s3://out-bkt/env/labels/"
    for key in ("headline", "breakdowns", "quality", "drift", "versions"):
        assert from_s3[key] == report[key], key
