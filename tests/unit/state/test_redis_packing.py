"""The lean packer puts on the wire exactly what redis-py's own packer does."""

from __future__ import annotations

import redis
from hypothesis import given
from hypothesis import strategies as st
from redis.connection import HiredisRespSerializer

from consumer.state.redis_packing import LeanCommandPacker

argument = st.one_of(
    st.text(),
    st.binary(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)
command_name = st.sampled_from(["EVALSHA", "MGET", "SET", b"GET", "SCRIPT LOAD", b"CLIENT SETNAME"])


@given(name=command_name, args=st.lists(argument, max_size=20))
def test_the_bytes_are_redis_pys_for_any_arguments(name: str | bytes, args: list[object]) -> None:
    assert b"".join(LeanCommandPacker().pack(name, *args)) == b"".join(
        HiredisRespSerializer().pack(name, *args)
    )


def test_memoryviews_are_packed_as_redis_py_packs_them() -> None:
    packed = LeanCommandPacker().pack("SET", "k", memoryview(b"value"))
    assert b"".join(packed) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n"


def test_a_client_with_the_packer_talks_to_a_real_server(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, command_packer=LeanCommandPacker())
    client.script_load("return 1")  # a command name with a space
    pipe = client.pipeline(transaction=False)
    pipe.set("fs:test", "1.5|x")
    pipe.mget("fs:test", "fs:missing")
    assert pipe.execute() == [True, [b"1.5|x", None]]
