"""`--jobs N [--parts K]`: the backtest split by account over N processes (K parts, N at a
time), with identical results.

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
from consumer.backtest.inputs import READ_ERRORS, RecordFile, UnreadableInput, part_of
from consumer.backtest.run import BacktestResult, merge, run_backtest
from consumer.rules.ruleset import RuleSet
from consumer.settings.config import StateConfig


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
    except READ_ERRORS as exc:  # a damaged file: the parent says so as one process would
        results.put((part, None, UnreadableInput(str(exc))))
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
    parts: int | None = None,
) -> BacktestResult:
    """The backtest of `path` in `parts` (default `jobs`) account-disjoint parts, each in its
    own process, at most `jobs` at a time (forked: the rule sets are inherited, not sent): more
    parts than jobs bound the memory of a process to about 1/parts of the whole at the price
    of reading the file once per part. `progress(bytes read, records judged so far)` is called a
    few times a second (bytes: by the slowest part, or the parts' average when they run in
    waves). Raises RuntimeError with the first failing part's error."""
    parts = jobs if parts is None else parts
    if parts < jobs:
        raise ValueError(f"parts ({parts}) must be at least jobs ({jobs})")
    context = multiprocessing.get_context("fork")
    records = context.Array("q", parts, lock=False)
    positions = context.Array("q", parts, lock=False)
    results = context.Queue()

    def start(part: int) -> Any:
        worker = context.Process(
            target=_work,
            args=(
                part,
                parts,
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
        worker.start()
        return worker

    def report() -> None:
        if progress is not None:
            read = min(positions) if parts == jobs else sum(positions) // parts
            progress(read, sum(records))

    pending = list(range(parts))
    workers = [start(pending.pop(0)) for _ in range(jobs)]
    done: dict[int, BacktestResult] = {}
    try:
        while len(done) < parts:
            try:
                part, result, error = results.get(timeout=0.25)
            except queue.Empty:  # report progress, check the workers are still alive
                report()
                dead = [w for w in workers if w.exitcode not in (None, 0)]
                if dead and results.empty():
                    code = dead[0].exitcode
                    raise RuntimeError(f"a backtest process died (exit code {code})") from None
                continue
            if isinstance(error, UnreadableInput):
                raise error
            if error is not None:
                raise RuntimeError(f"backtest part {part} of {parts} failed: {error}")
            done[part] = result
            if pending:  # the next part in the finished one's place
                workers.append(start(pending.pop(0)))
    finally:
        for worker in workers:
            if worker.is_alive() and len(done) < parts:
                worker.terminate()
        for worker in workers:
            worker.join(timeout=10)
    report()
    return merge(done[part] for part in range(parts))
