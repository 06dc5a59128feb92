"""The workers' memory while a load test runs: each daemon (JVM), its Python record processors
and each processor's alert process (consumer/sinks/alert_process.py), sampled every second.

A worker is the process tree daemon -> processors (one per leased shard) -> alert processes.
Per process the sampler keeps VmHWM, the kernel's own peak, so a spike between two samples still
counts (for a process still alive at the next sample); `worker_total` is the largest sum of the
tree's *current* proportional set sizes (Pss) seen in one sample: what the task's memory limit
must hold at once, shared library pages counted once, which neither a sum of RSS nor a sum of
per-process peaks would give.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from load_test.procfs import child_pids, peak_rss_mb_of, proportional_mb_of

KEYS = ("daemon_jvm", "processor_max", "alert_process_max", "worker_total")


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
            self._lift_peak("daemon_jvm", [daemon_pid])
            self._lift_peak("processor_max", processors)
            self._lift_peak("alert_process_max", alert_processes)
            tree = (daemon_pid, *processors, *alert_processes)
            total = sum(proportional_mb_of(pid) for pid in tree)
            self.peak["worker_total"] = max(self.peak["worker_total"], total)

    def _lift_peak(self, key: str, pids: list[int]) -> None:
        for pid in pids:
            self.peak[key] = max(self.peak[key], peak_rss_mb_of(pid) or 0.0)

    def run(self) -> None:
        while not self._halt.wait(self._interval_s):
            self.sample()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
        self.sample()
