"""consumer/worker/gc_policy.py: full collections on a timer; automatic ones off in the
processor."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref

from consumer.worker.gc_policy import FullCollections
from tests.support.fakes import ManualClock


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_a_full_collection_runs_only_once_the_interval_has_passed() -> None:
    clock = ManualClock(100.0)
    runs: list[float] = []
    collections = FullCollections(every_s=60, clock=clock, collect=lambda: runs.append(1) or 0)
    clock.now += 59.9
    assert not collections.tick() and runs == []
    clock.now += 0.2
    assert collections.tick() and runs == [1]
    clock.now += 30
    assert not collections.tick() and runs == [1]  # the interval restarts at the collection
    clock.now += 30
    assert collections.tick() and runs == [1, 1]


def test_the_due_collection_frees_a_cycle_that_reached_the_old_generation() -> None:
    clock = ManualClock(100.0)
    collections = FullCollections(every_s=60, clock=clock)
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    gc.collect()  # both survive into the oldest generation
    del a, b
    assert gone() is not None  # a cycle: reference counting alone cannot free it
    clock.now += 61
    assert collections.tick()
    assert gone() is None


def test_install_switches_off_automatic_full_collections_only() -> None:
    # In a child process: the thresholds are the interpreter's, not this test run's.
    code = (
        "import gc; before = gc.get_threshold();"
        "from consumer.worker.gc_policy import FullCollections; FullCollections.install();"
        "after = gc.get_threshold();"
        "assert after[:2] == before[:2], (before, after);"
        "assert after[2] >= 2**31 - 1, after"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
