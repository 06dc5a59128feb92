"""A TCP proxy on 127.0.0.1 that can make a server look down or hung, for the fault scenarios.

The worker under test reaches Redis (or moto's S3 and SNS) through it instead of directly, so a
test can break one dependency without touching the others the KCL needs (DynamoDB, Kinesis):

- `pass`: bytes flow both ways, as if the proxy were not there;
- `refuse`: every open connection is reset and new ones are reset on accept (a server stopped,
  a network partition that fails fast);
- `hang`: connections stay open but nothing comes back (a server that stopped answering: only the
  client's own timeouts end the wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from typing import Literal

Mode = Literal["pass", "refuse", "hang"]


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "pass"
        self._loop = asyncio.new_event_loop()
        self._connections: set[asyncio.StreamWriter] = set()
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        self.port: int = listener.getsockname()[1]
        self._listener = listener
        self._thread = threading.Thread(target=self._run, name=f"proxy:{self.port}", daemon=True)
        self._ready = threading.Event()
        self._thread.start()
        self._ready.wait(5)

    def set_mode(self, mode: Mode) -> None:
        """Switch; leaving `pass` resets every open connection (clients notice at once or
        at their timeout, as they would with the real fault)."""
        done = threading.Event()

        def switch() -> None:
            self.mode = mode
            if mode == "refuse":
                for writer in list(self._connections):
                    _reset(writer)
            done.set()

        self._loop.call_soon_threadsafe(switch)
        done.wait(5)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, sock=self._listener)
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            for writer in list(self._connections):
                _reset(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "refuse":
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        self._connections.update((writer, up_writer))
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, writer), self._pump(up_reader, writer, up_writer)
            )
        finally:
            self._connections.discard(writer)
            self._connections.discard(up_writer)
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, own: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await source.read(65536):
                if self.mode == "hang":
                    continue  # swallowed: the client waits for an answer that never comes
                if self.mode == "refuse":
                    break
                sink.write(data)
                await sink.drain()
        with contextlib.suppress(Exception):
            sink.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a refused or broken connection looks to the client."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
