"""Worker processes: how many cores this process may use, and the pool metrics spread work over
(ROUGE's example chunks, the resamples of MTLD, MATTR and the compression ratio).

One pool per worker count for the life of the process: a report spreads hundreds of bootstrap
calls, and starting processes for each would cost more than it saves. forkserver: never fork a
parent that may hold torch threads.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a SLURM allocation), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity call
        return os.cpu_count() or 1


DEFAULT_WORKERS_CAP = 8  # each worker holds the metric modules (~150 MB): a 64-core node needs not 64


def default_workers() -> int:
    """Workers when the user names none: the usable cores, at most DEFAULT_WORKERS_CAP."""
    return min(usable_cores(), DEFAULT_WORKERS_CAP)


def worth_spreading(items: int, workers: int) -> bool:
    """Whether `items` pieces of work go to `workers` processes: only with two or more per worker,
    below that starting the work in the pool costs more than it saves."""
    return workers > 1 and items >= 2 * workers


@functools.cache
def process_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"))
