"""A stand-in for the MultiLangDaemon's side of the pipe, so a real KCLProcess can be driven.

It feeds scripted messages to the processor's stdin, answers every checkpoint request the way the
daemon does (or with a scripted error), and records everything the processor wrote to stdout.
"""

from __future__ import annotations

import io
import json
from collections import deque
from typing import Any

from tests.support import kcl_messages


class FakeDaemon:
    def __init__(self, script: list[str], events: list[str] | None = None) -> None:
        self._inbox: deque[str] = deque(script)
        self.events = events if events is not None else []
        self.stdout_lines: list[str] = []
        self.checkpoints: list[str | None] = []
        self.checkpoint_errors: deque[str] = deque()
        self.stdin = _Reader(self)
        self.stdout = _Writer(self)
        self.stderr = io.StringIO()

    def _on_line(self, line: str) -> None:
        self.stdout_lines.append(line)
        message = json.loads(line)  # anything that is not protocol JSON fails the test here
        if message["action"] == "checkpoint":
            sequence = message["sequenceNumber"]
            error = self.checkpoint_errors.popleft() if self.checkpoint_errors else None
            if error is None:
                self.checkpoints.append(sequence)
                self.events.append(f"checkpoint:{sequence}")
            self._inbox.appendleft(kcl_messages.checkpoint_reply(sequence, error))

    def status_replies(self) -> list[str]:
        return [
            json.loads(line)["responseFor"]
            for line in self.stdout_lines
            if json.loads(line)["action"] == "status"
        ]


class _Reader:
    def __init__(self, daemon: FakeDaemon) -> None:
        self._daemon = daemon

    def readline(self) -> str:
        inbox = self._daemon._inbox
        return inbox.popleft() + "\n" if inbox else ""


class _Writer:
    def __init__(self, daemon: FakeDaemon) -> None:
        self._daemon = daemon
        self._buffer = ""

    def write(self, text: str) -> Any:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            if line.strip():
                self._daemon._on_line(line)
        return len(text)

    def flush(self) -> None:
        pass
