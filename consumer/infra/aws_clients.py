"""The worker's boto3 clients: one per service per process, endpoints from the environment.

Its own module so that the alert process (consumer/sinks/alert_process.py) builds its SNS client
without importing the rest of the worker.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from consumer.infra.query_body import encode_body_once

# Our own tenacity loop owns retries; the SDK's are kept short so the budget stays predictable.
BOTO_CONFIG = Config(
    retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=3, read_timeout=10
)


@cache
def aws_client(service: str, region: str) -> Any:
    """One client per service per process; endpoints follow AWS_ENDPOINT_URL_<SERVICE>."""
    session: Any = boto3.session.Session()
    client = session.client(service, region_name=region, config=BOTO_CONFIG)
    return encode_body_once(client) if service == "sns" else client
