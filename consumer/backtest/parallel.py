"""`--jobs N`: the backtest split by account over N processes, with identical results.

Accounts are independent in the stream's semantics (a history is one account's), so each process
reads the whole file but judges only the records of the accounts that hash to it
(inputs.part_of), and the parts' counts add up (run.merge). What a process skips costs a line
split and a regular-expression search for the account id, not a parse. Two things cross
accounts, and are kept: a record's number is its place in the whole file; the duplicate window's
clock is the latest event time a part has seen (the whole file's, to within the disorder between
accounts). A transaction id reused by another account would be a duplicate in the stream and is
not here; a producer retry repeats the record, account included, so it lands in the same part.
"""

from __future__ import annotations

import multiprocessing
import queue
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from consumer.backtest.history import VIEW_ENTRIES
from consumer.backtest.inputs import RecordFile, part_of
from consumer.backtest.run import BacktestResult, merge, run_backtest
from consumer.config import StateConfig
from consumer.rules.ruleset import RuleSet


def _work(
    part: int,
    jobs: int,
    path: str,
    new: RuleSet,
    baseline: RuleSet,
    state: StateConfig | None,
    keep_decisions: bool,
    view_entries: int,
    records: Any,
    positions: Any,
    results: Any,
) -> None:
    try:
        with RecordFile(path) as source:

            def progress(count: int) -> None:
                records[part] = count
                positions[part] = source.position()

            def owns(account_id: str) -> bool:
                return part_of(account_id.encode("utf-8", "surrogatepass"), jobs) == part

            result = run_backtest(
                source.items((part, jobs)),
                new,
                baseline,
                state=state,
                progress=progress,
                progress_every=5_000,
                keep_decisions=keep_decisions,
                owns=owns,
                view_entries=view_entries,
            )
            positions[part] = source.size
        results.put((part, result, None))
    except BaseException as exc:  # reported to the parent, which stops the others
        results.put((part, None, f"{exc!r}\n{traceback.format_exc()}"))


def run_parallel(
    path: str | Path,
    new: RuleSet,
    baseline: RuleSet,
    jobs: int,
    *,
    state: StateConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    keep_decisions: bool = False,
    view_entries: int = VIEW_ENTRIES,
) -> BacktestResult:
    """The backtest of `path` in `jobs` processes (forked: the rule sets are inherited, not
    sent). `progress(bytes read by the slowest, records judged so far)` is called a few times a
    second. Raises RuntimeError with the first failing part's error."""
    context = multiprocessing.get_context("fork")
    records = context.Array("q", jobs, lock=False)
    positions = context.Array("q", jobs, lock=False)
    results = context.Queue()
    workers = [
        context.Process(
            target=_work,
            args=(
                part,
                jobs,
                str(path),
                new,
                baseline,
                state,
                keep_decisions,
                view_entries,
                records,
                positions,
                results,
            ),
            daemon=True,
        )
        for part in range(jobs)
    ]
    for worker in workers:
        worker.start()
    parts: dict[int, BacktestResult] = {}
    try:
        while len(parts) < jobs:
            try:
                part, result, error = results.get(timeout=0.25)
            except queue.Empty:  # report progress, check the workers are still alive
                if progress is not None:
                    progress(min(positions), sum(records))
                dead = [w for w in workers if w.exitcode not in (None, 0)]
                if dead and results.empty():
                    code = dead[0].exitcode
                    raise RuntimeError(f"a backtest process died (exit code {code})") from None
                continue
            if error is not None:
                raise RuntimeError(f"backtest part {part} of {jobs} failed: {error}")
            parts[part] = result
    finally:
        for worker in workers:
            if worker.is_alive() and len(parts) < jobs:
                worker.terminate()
        for worker in workers:
            worker.join(timeout=10)
    if progress is not None:
        progress(min(positions), sum(records))
    return merge(parts[part] for part in range(jobs))
