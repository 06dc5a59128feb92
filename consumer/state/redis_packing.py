"""Redis commands packed by hiredis without redis-py's per-argument walk.

redis-py's hiredis packer first rebuilds every command's arguments in a Python generator (to turn
memoryviews into bytes). A batch's save script carries thousands of arguments (scores, members,
positions, transaction ids) and the duplicate check an MGET of every transaction id, never a
memoryview: that walk is GIL time spent for nothing on every record (measured:
docs/benchmarks.md#redis-packing). This packer hands the arguments to hiredis as they are; anything
else (a command name with a space, as redis-py sends "SCRIPT LOAD", or an argument hiredis refuses)
goes through redis-py's own packer, so the bytes on the wire are the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

import hiredis
from redis.connection import HiredisRespSerializer


class _Packer(Protocol):
    def pack(self, *args: Any) -> Any: ...


# redis-py's own packer, behind a declared type: its constructor is unannotated in some releases
# (8.x added `fallback` and `encode`, untyped) and mypy will not call an untyped function from
# typed code. Assigning the class is checked against this signature, so a release that types it,
# or leaves it untyped, passes alike, and one that needs an argument fails here.
_redis_py_packer: Callable[[], _Packer] = HiredisRespSerializer


class LeanCommandPacker:
    """A redis-py `command_packer` (Connection's constructor argument)."""

    def __init__(self) -> None:
        self._general = _redis_py_packer()

    def pack(self, *args: Any) -> list[bytes]:
        first = args[0]
        if not ((b" " in first) if type(first) is bytes else (" " in first)):
            try:
                return [hiredis.pack_command(args)]
            except TypeError:  # a memoryview, say: redis-py converts it (or names what is wrong)
                pass
        return cast(list[bytes], self._general.pack(*args))
