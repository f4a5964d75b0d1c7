"""What a failed point leaves behind: its folder with config.json and error.json, never a metrics.json.

`run_point` removes a point folder that holds only config.json when its run fails (so an interrupt
before training leaves nothing). A failure is different: `pdl-bench status` and `table` must show
it, so the point's folder is claimed again (config.json) and error.json written, under the point's
lock. The next run of the point moves error.json aside when it claims the folder (harness.store).
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness.errors import HarnessError
from harness.runner.config import RunConfig
from harness.store import PointLock, PointTaken, failure_record


def run_point_or_record_failure(run: RunConfig, results_dir: Path, *, force: bool, progress: bool):
    """`run_point`, and on any exception its error.json (for `status`) before the error goes on:
    the one wrapper `run` and `bench` share, so a failed point looks the same whichever ran it."""
    from harness.runner.point import run_point

    try:
        return run_point(run, results_dir, force=force, progress=progress)
    except Exception as err:
        record_point_failure(run, results_dir, err, force=force)
        raise


def record_point_failure(run: RunConfig, results_dir: Path, err: BaseException, *, force: bool) -> Path | None:
    """Write error.json for the point whose run raised `err` (any exception: a HarnessError, an
    out-of-memory error, a RuntimeError) and return it. Nothing is recorded when another process
    runs the point (PointTaken), when the point cannot even be resolved (bad input: it has no
    folder, and the error is printed at once), on a non-main rank, or when the point is complete
    (then a failed --force rerun's error goes to its staging folder, beside the kept result).
    Recording never hides the original error: a problem writing it is printed as a warning."""
    from harness.runner.dist import process_state
    from harness.runner.point import resolve

    if isinstance(err, PointTaken) or not process_state().is_main_process:
        return None
    try:
        point = resolve(run, results_dir)
    except Exception:  # noqa: BLE001 - bad input: nothing to record it in, and the caller reports it
        return None
    store = point.store
    try:
        lock = PointLock(store).acquire(wait=1.0)
    except HarnessError:
        return None  # another process has started it since: it is running, not failed
    try:
        target = store
        if store.is_complete():
            if not force:
                return None
            target = store.staging()
        target.claim(point.config)
        return target.record_failure(failure_record(err))
    except (HarnessError, OSError) as problem:
        print(f"warning: could not record the failure of {store.path}: {problem}", file=sys.stderr)
        return None
    finally:
        lock.release()
