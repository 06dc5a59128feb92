"""The MultiLangDaemon's side of the pipes, enough to drive one record processor process.

Like the daemon it writes one message per line to the processor's stdin, waits for the status
line that ends each action, answers every checkpoint request (accepted, the position echoed)
and ignores the blank lines kclpy writes around each message. It times each processRecords
from the moment its line is written to the moment its status comes back: the latency the
daemon sees, checkpoint round trips included.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from typing import IO

from bench.workload import checkpoint_reply_line


class ProtocolError(RuntimeError):
    """The processor wrote something the daemon would not accept, or exited."""


@dataclass(slots=True)
class FeedStats:
    batch_seconds: list[float] = field(default_factory=list)
    checkpoints: int = 0


class DaemonFeeder:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.stdin is None or proc.stdout is None:
            raise ValueError("the processor needs piped stdin and stdout")
        self._proc = proc
        self._stdin: IO[bytes] = proc.stdin
        self._stdout: IO[bytes] = proc.stdout
        self.stats = FeedStats()

    def _send(self, line: str | bytes) -> None:
        data = line.encode() if isinstance(line, str) else line
        self._stdin.write(data + b"\n")
        self._stdin.flush()

    def _await_status(self, action: str) -> None:
        while True:
            raw = self._stdout.readline()
            if not raw:
                raise ProtocolError(f"processor closed stdout waiting for status of {action}")
            raw = raw.strip()
            if not raw:
                continue  # kclpy surrounds every message with newlines
            message = json.loads(raw)
            kind = message.get("action")
            if kind == "checkpoint":
                self.stats.checkpoints += 1
                self._send(
                    checkpoint_reply_line(
                        message.get("sequenceNumber"), message.get("subSequenceNumber")
                    )
                )
            elif kind == "status":
                if message.get("responseFor") != action:
                    raise ProtocolError(f"status for {message.get('responseFor')}, not {action}")
                return
            else:
                raise ProtocolError(f"unexpected message from the processor: {raw[:200]!r}")

    def action(self, line: str | bytes, action: str) -> float:
        """Send one message, serve its checkpoints, return its seconds until status."""
        started = time.perf_counter()
        self._send(line)
        self._await_status(action)
        return time.perf_counter() - started

    def process_records(self, line: str | bytes, timed: bool = True) -> None:
        seconds = self.action(line, "processRecords")
        if timed:
            self.stats.batch_seconds.append(seconds)

    def close(self, timeout: float = 60) -> int:
        """End of input: the processor's run loop returns and it exits."""
        self._stdin.close()
        return self._proc.wait(timeout=timeout)
