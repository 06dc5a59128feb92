"""The fault proxy the reliability scenarios rely on: it must really pass, refuse and hang."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.fault_proxy import FaultProxy


@pytest.fixture
def proxy(redis_url: str) -> Iterator[FaultProxy]:
    port = urlparse(redis_url).port
    assert port is not None
    proxy = FaultProxy(port)
    yield proxy
    proxy.close()


def client(proxy: FaultProxy) -> redis.Redis:
    # No client-side retries: each call shows the fault as the proxy made it.
    return redis.Redis(
        port=proxy.port, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )


def test_pass_forwards_both_ways(proxy: FaultProxy) -> None:
    conn = client(proxy)
    conn.set("fault-proxy-key", "v")
    assert conn.get("fault-proxy-key") == b"v"


def test_refuse_resets_open_and_new_connections_then_recovers(proxy: FaultProxy) -> None:
    conn = client(proxy)
    assert conn.ping()
    proxy.set_mode("refuse")
    with pytest.raises(redis.ConnectionError):
        conn.ping()
    with pytest.raises(redis.ConnectionError):
        client(proxy).ping()
    proxy.set_mode("pass")
    assert client(proxy).ping()


def test_hang_leaves_the_client_waiting_until_its_own_timeout(proxy: FaultProxy) -> None:
    conn = client(proxy)
    assert conn.ping()
    proxy.set_mode("hang")
    with pytest.raises(redis.TimeoutError):
        conn.ping()
    proxy.set_mode("pass")
    assert client(proxy).ping()
