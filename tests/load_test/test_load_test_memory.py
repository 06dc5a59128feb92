"""The load test's memory sampler sees a worker's tree: daemon, processors, alert processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from load_test.memory import MemorySampler, worker_tree

FILLED_MB = 48

# A stand-in worker: "daemon" starts a "processor", which starts an "alert process" that fills
# FILLED_MB of memory and then creates the marker file; each then sleeps until killed.
_SCRIPTS = {
    "alert.py": (
        "import pathlib, sys, time\n"
        f"block = bytearray({FILLED_MB} << 20)\n"
        "block[::4096] = b'x' * len(block[::4096])\n"
        "pathlib.Path(sys.argv[1]).touch()\n"
        "time.sleep(120)\n"
    ),
    "processor.py": (
        "import pathlib, subprocess, sys, time\n"
        "here = pathlib.Path(__file__).parent\n"
        "subprocess.Popen([sys.executable, str(here / 'alert.py'), sys.argv[1]])\n"
        "time.sleep(120)\n"
    ),
    "daemon.py": (
        "import pathlib, subprocess, sys, time\n"
        "here = pathlib.Path(__file__).parent\n"
        "subprocess.Popen([sys.executable, str(here / 'processor.py'), sys.argv[1]])\n"
        "time.sleep(120)\n"
    ),
}


@pytest.fixture()
def worker(tmp_path: Path) -> Iterator[int]:
    """The pid of a running stand-in worker whose alert process has filled its memory."""
    for name, text in _SCRIPTS.items():
        (tmp_path / name).write_text(text)
    marker = tmp_path / "filled"
    daemon = subprocess.Popen(
        [sys.executable, str(tmp_path / "daemon.py"), str(marker)], start_new_session=True
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert time.monotonic() < deadline, "the stand-in worker did not start"
            time.sleep(0.05)
        yield daemon.pid
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait()


def test_the_tree_is_daemon_processors_and_their_alert_processes(worker: int) -> None:
    processors, alert_processes = worker_tree(worker)

    assert len(processors) == 1
    assert len(alert_processes) == 1
    assert alert_processes[0] not in processors


def test_the_peaks_count_the_alert_processes_memory(worker: int) -> None:
    sampler = MemorySampler(lambda: {"worker-1": worker})

    sampler.sample()

    peak = sampler.peak
    assert peak["alert_process_max"] >= FILLED_MB
    assert 0 < peak["processor_max"] < FILLED_MB  # a bare interpreter, not the filled one
    assert 0 < peak["daemon_jvm"] < FILLED_MB
    # The total holds all three at once, the pages they share counted once (Pss <= RSS <= peak).
    assert peak["worker_total"] >= FILLED_MB
    assert (
        peak["worker_total"]
        <= peak["alert_process_max"] + peak["processor_max"] + peak["daemon_jvm"]
    )


def test_a_worker_that_is_gone_leaves_the_peaks_as_they_were(worker: int) -> None:
    sampler = MemorySampler(lambda: {"worker-1": worker})
    sampler.sample()
    before = dict(sampler.peak)

    os.killpg(worker, signal.SIGKILL)
    time.sleep(0.2)
    sampler.sample()

    assert sampler.peak == before


def test_the_thread_samples_until_stopped(worker: int) -> None:
    sampler = MemorySampler(lambda: {"worker-1": worker}, interval_s=0.05)

    sampler.start()
    deadline = time.monotonic() + 10
    while sampler.peak["alert_process_max"] < FILLED_MB:  # seen by the thread, before stop()
        assert time.monotonic() < deadline, "the sampler's thread did not sample"
        time.sleep(0.02)
    sampler.stop()

    assert not sampler.is_alive()
