"""The workers' memory while a load test runs: each daemon (JVM), its Python record processors
and each processor's alert process (consumer/alert_process.py), sampled every second.

A worker is the process tree daemon -> processors (one per leased shard) -> alert processes.
Per process the sampler keeps VmHWM, the kernel's own peak, so a spike between two samples still
counts; `worker_total` is the largest sum of the tree's *current* RSS seen in one sample (what
the task's memory limit must hold at once), which a sum of per-process peaks would overstate.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from bench.procfs import child_pids, peak_rss_mb_of

PAGE_KB = 4

KEYS = ("daemon_jvm", "processor_max", "alert_process_max", "worker_total")


def rss_mb(pid: int) -> float:
    """Current resident memory of a live process, MiB (0.0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return 0.0
    return int(fields[1]) * PAGE_KB / 1024


def worker_tree(daemon_pid: int) -> tuple[list[int], list[int]]:
    """The processors a daemon runs and the alert processes those processors run."""
    processors = child_pids(daemon_pid)
    alert_processes = [pid for processor in processors for pid in child_pids(processor)]
    return processors, alert_processes


class MemorySampler(threading.Thread):
    """Peaks of every worker's processes, sampled every `interval_s` until `stop`.

    `workers` names the daemons to watch at each sample (name -> pid): workers started or
    stopped during the run are followed, and processors that come and go with leases too.
    """

    def __init__(self, workers: Callable[[], Mapping[str, int]], interval_s: float = 1.0) -> None:
        super().__init__(daemon=True, name="memory-sampler")
        self._workers = workers
        self._interval_s = interval_s
        self._halt = threading.Event()
        self.peak: dict[str, float] = dict.fromkeys(KEYS, 0.0)

    def sample(self) -> None:
        """One look at every worker (also called once more by `stop`)."""
        for daemon_pid in self._workers().values():
            processors, alert_processes = worker_tree(daemon_pid)
            self._raise("daemon_jvm", [daemon_pid])
            self._raise("processor_max", processors)
            self._raise("alert_process_max", alert_processes)
            total = sum(rss_mb(pid) for pid in (daemon_pid, *processors, *alert_processes))
            self.peak["worker_total"] = max(self.peak["worker_total"], total)

    def _raise(self, key: str, pids: list[int]) -> None:
        for pid in pids:
            self.peak[key] = max(self.peak[key], peak_rss_mb_of(pid) or 0.0)

    def run(self) -> None:
        while not self._halt.wait(self._interval_s):
            self.sample()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
        self.sample()
