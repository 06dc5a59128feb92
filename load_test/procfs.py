"""Reading processes from Linux's /proc: CPU seconds, children, peak resident memory.

Shared by the benchmark (its processor and the alert process it starts) and the load test (the
workers' daemons, their processors and those processors' alert processes). Each reader returns
a neutral value where /proc or the process is gone, so a sample taken as a process exits is
skipped rather than an error.

It lives in load_test, not bench, so the dependency runs one way: the benchmark already imports
the load test (its synthetic generator), and nothing in load_test imports bench.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc (0.0 where /proc is not available)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the ")" that closes the command name: field 3 is index 0, utime is field 14.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """The live children of a process (every thread's), from /proc; [] where it is missing
    (`/proc/<pid>/task/<tid>/children` needs a kernel built with CONFIG_PROC_CHILDREN, as
    Debian's and Ubuntu's are)."""
    pids: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids.extend(int(child) for child in (task / "children").read_text().split())
    except OSError:
        pass
    return pids


def _mib_field(path: str, field: str) -> float | None:
    """A `Name:   <n> kB` line of a /proc file, in MiB; None when the file or line is missing
    (a process gone, or a zombie, which has no memory lines)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb_of(pid: int | str) -> float | None:
    """VmHWM of a live process (or "self"), in MiB; None once it is gone."""
    return _mib_field(f"/proc/{pid}/status", "VmHWM:")


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MiB.

    VmHWM from /proc, not getrusage's ru_maxrss: Linux carries ru_maxrss across execve, and
    subprocess spawns with vfork, so a child's ru_maxrss starts at its parent's peak (here the
    harness holding every generated batch). VmHWM belongs to the new address space alone.
    """
    peak = peak_rss_mb_of("self")
    if peak is not None:
        return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def proportional_mb_of(pid: int) -> float:
    """Pss of a live process, MiB (0.0 once it is gone): its private memory plus its share of
    pages mapped by several processes (libc, the interpreter, the JVM's libraries), so that a
    sum over a process tree counts a shared page once, as the task's cgroup does."""
    return _mib_field(f"/proc/{pid}/smaps_rollup", "Pss:") or 0.0
