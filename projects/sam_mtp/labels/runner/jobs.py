"""The sharded, resumable job runner of both label pipelines (frame labels, scene segments).

A pipeline describes its items with a :class:`ShardJob` (how an item is keyed, whether its files are finished,
how it is read, computed and written, what its shard report holds); :func:`run_shard` does the rest, the same
way for both:

* **Shards.** Item ``key`` goes to shard ``crc32(key) % N`` (labels/runner/sharding.py): shards started on
  different nodes never overlap and together cover every item, whatever the listing order.
* **Resume.** Items whose files are finished (``ShardJob.state`` says ``'done'``: they exist, validate and carry
  the fingerprint of this run's output settings, labels/runner/output_dir.py) are skipped; the others are
  redone. Writers write atomically and the item's main file last, so a killed run leaves finished items and
  nothing that passes for one.
* **Failures.** An item that fails is logged with a message naming it, recorded with its kind
  (:class:`JobError.kind`, or ``error`` for anything unexpected) and skipped; it never stops the shard. Kinds in
  ``ShardJob.skip_kinds`` mean "no usable data" and are not held against the failure budget.
* **Report.** The shard report (counts, failures by kind, failure fraction against ``max_failure_fraction``,
  timings) is written atomically as JSON where ``ShardJob.report_path`` says, and logged in one line.

The split-level step that needs every shard (the frame labels' K-means merge) is taken by the process that
finishes the last shard, under an exclusive lock (:func:`merge_after_last_shard`).
"""
import json
import logging
import os
import sys
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from mmengine.logging import print_log

from ..fileio import atomic_write_bytes
from .sharding import select_shard


class JobError(ValueError):
    """One item cannot be made; ``kind`` (one of the class's ``kinds``) says why, the message names the item or
    its file: ``<where>: <problem>``."""
    kinds: Tuple[str, ...] = ()

    def __init__(self, kind: str, where, problem: str):
        assert kind in self.kinds, kind
        self.kind = kind
        super().__init__(f'{where}: {problem}')


@dataclass
class Failure:
    key: str
    kind: str
    message: str


@dataclass
class ShardOutcome:
    """What :func:`run_shard` did with one shard; the job turns it into its report."""
    shard: Tuple[int, int]
    num_items: int                 # items of this shard
    already_done: int              # finished before this run
    written: int
    failures: List[Failure]
    failure_fraction: float        # failures not of a skip kind / items of the shard
    max_failure_fraction: Optional[float]
    seconds: float
    stats: Dict[str, dict] = field(default_factory=dict)  # per written item: its stage seconds and counts

    @property
    def failure_kinds(self) -> Dict[str, int]:
        return dict(Counter(f.kind for f in self.failures))

    @property
    def over_budget(self) -> bool:
        return self.max_failure_fraction is not None and self.failure_fraction > self.max_failure_fraction


class ShardJob:
    """One pipeline's items as the runner sees them; subclasses override what their items need."""
    name = 'items'          # for the log lines, e.g. "labels of split 'train'"
    unit = 'items'          # plural noun of one item, e.g. "frames"
    skip_kinds: Tuple[str, ...] = ()

    def key(self, item) -> str:
        """The item's shard key (also its name in failures)."""
        return item.key

    def state(self, item) -> str:
        """``'done'`` when the item's files are finished; anything else (why not: ``missing``,
        ``other_settings``, ``corrupt`` ...) redoes it. May raise :class:`JobError`: a recorded failure."""
        raise NotImplementedError

    def load(self, item):
        """Read the item's inputs (may run in reader threads, ahead of :meth:`process`)."""
        return item

    def process(self, item, loaded, stats: Dict[str, float]):
        """Compute the item's output from its inputs; add stage seconds (or counts) to ``stats``."""
        raise NotImplementedError

    def write(self, item, output) -> None:
        """Write the item's files, its main file last (it marks the item finished)."""
        raise NotImplementedError

    def report(self, outcome: ShardOutcome) -> dict:
        """The shard report (JSON) of ``outcome``."""
        raise NotImplementedError

    def report_path(self, shard: Tuple[int, int]) -> str:
        raise NotImplementedError

    def summary(self, outcome: ShardOutcome) -> str:
        """Extra words for the one-line summary (e.g. per-item timings)."""
        return ''


def _failure(job: ShardJob, key: str, err: Exception) -> Failure:
    if isinstance(err, JobError):
        failure = Failure(key, err.kind, str(err))
        level = logging.INFO if err.kind in job.skip_kinds else logging.WARNING
    else:  # a bug or a model error on one item must not stop a run over thousands
        failure = Failure(key, 'error', f'{key}: {type(err).__name__}: {err}')
        level = logging.ERROR
    print_log(f'skipped ({failure.kind}): {failure.message}', logger='current', level=level)
    return failure


def _read_ahead(job: ShardJob, items: Sequence, workers: int) -> Iterator[Tuple[object, object, float]]:
    """(item, loaded input or the exception that reading raised, read seconds) in order; with ``workers`` > 0
    read by that many threads, at most ``2 * workers`` ahead."""
    def read(item):
        tic = time.perf_counter()
        try:
            return item, job.load(item), time.perf_counter() - tic
        except Exception as err:
            return item, err, time.perf_counter() - tic

    if workers <= 0:
        yield from (read(item) for item in items)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending = deque()
        for item in items:
            pending.append(pool.submit(read, item))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def run_shard(job: ShardJob, items: Sequence, shard: Tuple[int, int] = (0, 1), progress: bool = True,
              max_failure_fraction: Optional[float] = None, read_workers: int = 0, write_behind: bool = False,
              fail_after: Optional[int] = None) -> dict:
    """Make every unfinished item of ``shard``; write, log and return the job's shard report.

    Args:
        read_workers: threads reading items ahead of :meth:`ShardJob.process` (0: read in turn).
        write_behind: write in one background thread while the next item is processed (at most two items
            wait, so memory stays bounded); writes handed to it complete before this function returns or raises.
        fail_after: (tests) raise after that many items were written, like a killed job.
    """
    index, total = shard
    mine = select_shard(items, index, total, key=job.key)
    failures: List[Failure] = []
    todo, redo = [], Counter()
    for item in mine:
        try:
            state = job.state(item)
        except JobError as err:
            failures.append(_failure(job, job.key(item), err))
            continue
        if state != 'done':
            todo.append(item)
            if state != 'missing':
                redo[state] += 1
    already_done = len(mine) - len(todo) - len(failures)
    print_log(f'{job.name}, shard {index}/{total}: {len(mine)} {job.unit}, {already_done} already finished, '
              f'{len(todo)} to do' + (f' (redone: {dict(redo)})' if redo else ''), logger='current')
    bar = None
    if progress and todo:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(todo), file=sys.stderr)
    stats: Dict[str, dict] = {}
    start = time.time()

    def write(item, output) -> Future:
        """The item's write, in the writer thread or done now; a future of its seconds either way."""
        def timed() -> float:
            tic = time.perf_counter()
            job.write(item, output)
            return time.perf_counter() - tic

        if write_behind:
            return writer.submit(timed)
        done = Future()
        try:
            done.set_result(timed())
        except Exception as err:
            done.set_exception(err)
        return done

    def collect(item, written: Future, item_stats: dict) -> None:
        try:
            item_stats['write'] = written.result()
        except Exception as err:
            failures.append(_failure(job, job.key(item), err))
            return
        stats[job.key(item)] = item_stats
        if fail_after is not None and len(stats) >= fail_after:
            raise RuntimeError(f'simulated kill after {len(stats)} {job.unit}')

    pending = deque()
    with ThreadPoolExecutor(1) as writer:
        for item, loaded, read_seconds in _read_ahead(job, todo, read_workers):
            item_stats = dict(read=read_seconds)
            try:
                if isinstance(loaded, Exception):
                    raise loaded
                output = job.process(item, loaded, item_stats)
            except Exception as err:
                failures.append(_failure(job, job.key(item), err))
            else:
                pending.append((item, write(item, output), item_stats))
            while len(pending) > 2 or (pending and pending[0][1].done()):
                collect(*pending.popleft())
            if bar is not None:
                bar.update()
        while pending:
            collect(*pending.popleft())
    if bar is not None:
        sys.stderr.write('\n')
    counted = budgeted_failures(Counter(f.kind for f in failures), job.skip_kinds)
    outcome = ShardOutcome(shard=(index, total), num_items=len(mine), already_done=already_done,
                           written=len(stats), failures=failures, failure_fraction=counted / max(len(mine), 1),
                           max_failure_fraction=max_failure_fraction, seconds=time.time() - start, stats=stats)
    report = job.report(outcome)
    path = job.report_path(shard)
    atomic_write_bytes(path, (json.dumps(report, indent=1) + '\n').encode())
    kinds = ', '.join(f'{k}: {v}' for k, v in sorted(outcome.failure_kinds.items())) or 'none'
    allowed = '' if max_failure_fraction is None else f', allowed {max_failure_fraction}'
    details = job.summary(outcome)
    print_log(f'shard {index}/{total}: {outcome.written} {job.unit} written, {already_done} already finished, '
              f'failures/skips: {kinds} (failure fraction {outcome.failure_fraction:.3f}{allowed})'
              + (f'; {details}' if details else '') + f'; report {path}', logger='current')
    if outcome.over_budget:
        print_log(f'failure fraction {outcome.failure_fraction:.3f} exceeds {max_failure_fraction}; see {path}',
                  logger='current', level=logging.ERROR)
    return report


def budgeted_failures(kinds: Dict[str, int], skip_kinds: Sequence[str]) -> int:
    """The failures held against the budget: every kind but the skip kinds ("no usable data")."""
    return sum(count for kind, count in kinds.items() if kind not in skip_kinds)


def mean_stage_seconds(outcome: ShardOutcome) -> Dict[str, float]:
    """Mean seconds of every stage over the written items, stages in the order the first item recorded them."""
    totals: Dict[str, float] = {}
    for item_stats in outcome.stats.values():
        for stage, seconds in item_stats.items():
            totals[stage] = totals.get(stage, 0.0) + seconds
    return {stage: total / max(outcome.written, 1) for stage, total in totals.items()}


# ---------------------------------------------------------------------------------------------------- merge lock
def try_lock(path: str) -> bool:
    """Create ``path`` exclusively (it records who holds it); False when it exists."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    with os.fdopen(fd, 'w') as f:
        f.write(json.dumps(dict(pid=os.getpid(), host=os.uname().nodename, time=time.time())))
    return True


def release_lock(path: str) -> None:
    if os.path.exists(path):
        os.remove(path)


def merge_after_last_shard(report_paths: Sequence[str], lock_path: str, merge: Callable[[], object]) -> bool:
    """The split-level step after the shards: when every shard's report exists, the process that takes the lock
    first runs ``merge`` (and releases the lock, also when it fails). Returns whether this process merged; a
    held lock is logged (its holder merges; a stale one is deleted by hand, then ``--merge``)."""
    if not all(os.path.isfile(p) for p in report_paths):
        return False
    if not try_lock(lock_path):
        print_log(f'another process holds {lock_path} and is merging; if none is, delete the lock and run with '
                  f'--merge', logger='current', level=logging.WARNING)
        return False
    try:
        merge()
    finally:
        release_lock(lock_path)
    return True
