"""The point folder's lock and lifecycle (harness/store.py)."""

import os
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from harness.errors import HarnessError
from harness.io import write_json_atomic
from harness.report.collect import unfinished_state
from harness.results import ERROR_FILE, METRICS_FILE, PointConfig
from harness.store import (
    EARLIER_ERROR_PREFIX,
    PointLock,
    PointStore,
    failure_record,
    is_point_folder_name,
    point_state,
)


def config(seed: int = 0) -> PointConfig:
    return PointConfig(task={"name": "task"}, model="m", loss="ce", seed=seed)


def store_at(tmp_path, name="point") -> PointStore:
    return PointStore(tmp_path / "results" / "task" / "model" / name)


HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from harness.store import PointLock, PointStore
    lock = PointLock(PointStore(Path(sys.argv[1]))).acquire()
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
""")


def hold_lock(store: PointStore, seconds: float = 900) -> subprocess.Popen:
    """Another process that takes the point's lock and keeps it until killed (every caller kills it;
    `seconds` only bounds an orphan's life). Long: a sweep on a loaded machine can take minutes to
    reach the held point, and a holder that let go early would let the point run."""
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(store.path), str(seconds)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def test_lock_is_exclusive_while_its_holder_lives_and_free_once_it_dies(tmp_path):
    store = store_at(tmp_path)
    holder = hold_lock(store)
    try:
        with pytest.raises(HarnessError, match=rf"another process \(pid {holder.pid} on "):
            PointLock(store).acquire(wait=0)
        assert PointLock(store).is_held_elsewhere() is True
    finally:
        holder.kill()
        holder.wait()
    # SIGKILL: no cleanup ran, yet the kernel dropped the lock with its holder
    assert PointLock(store).is_held_elsewhere() is False
    with PointLock(store):
        pass
    assert not store.path.exists()  # locks live outside the point folder
    assert store.lock_path.parent == tmp_path / "results" / ".locks" / "task" / "model"


RACE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from harness.errors import HarnessError
    from harness.store import PointLock, PointStore
    store = PointStore(Path(sys.argv[1]))
    while time.time() < float(sys.argv[2]):
        pass
    try:
        lock = PointLock(store).acquire(wait=0)  # keep a reference: a collected lock is released
    except HarnessError:
        print("refused", flush=True)
        sys.exit(0)
    print("held", flush=True)
    time.sleep(max(0.0, float(sys.argv[2]) + 3 - time.time()))  # hold until every racer has tried
""")


def test_restarts_racing_for_a_crashed_points_lock_never_both_hold_it(tmp_path):
    """Several processes restart the same crashed point at the same instant: exactly one wins,
    every time (a pid-file lock with stale takeover let two win in 16 of 200 trials)."""
    store = store_at(tmp_path)
    crashed = hold_lock(store)
    crashed.kill()
    crashed.wait()
    import time

    for trial in range(3):
        start = time.time() + 3.0  # after every racer has started
        racers = [subprocess.Popen([sys.executable, "-c", RACE, str(store.path), str(start)],
                                   stdout=subprocess.PIPE, text=True) for _ in range(4)]
        outcomes = [r.communicate(timeout=60)[0].strip() for r in racers]
        assert sorted(outcomes) == ["held", "refused", "refused", "refused"], (trial, outcomes)


def test_a_killed_point_reads_as_interrupted_and_a_live_one_as_running(tmp_path):
    store = store_at(tmp_path)
    store.claim(config())
    holder = hold_lock(store)
    try:
        assert unfinished_state(store.path).startswith(f"running (pid {holder.pid} on ")
    finally:
        holder.kill()
        holder.wait()
    assert unfinished_state(store.path).startswith("interrupted")


def test_claim_refuses_a_folder_of_another_config(tmp_path):
    store = store_at(tmp_path)
    store.claim(config())
    store.claim(config())
    with pytest.raises(HarnessError, match="different config"):
        store.claim(config(1))


def test_replace_with_swaps_in_a_finished_rerun_and_keeps_the_old_one(tmp_path):
    store = store_at(tmp_path)
    store.claim(config())
    (store.path / "metrics.json").write_text("old")
    staging = store.staging()
    staging.claim(config())
    (staging.path / "metrics.json").write_text("new")
    assert not is_point_folder_name(staging.path.name)
    archived = store.replace_with(staging)
    assert (store.path / "metrics.json").read_text() == "new" and not staging.path.exists()
    assert (archived / "metrics.json").read_text() == "old" and not is_point_folder_name(archived.name)


def test_discard_removes_only_unstarted_points(tmp_path):
    store = store_at(tmp_path)
    store.claim(config())
    (store.path / "checkpoints").mkdir()
    store.discard_if_unstarted()
    assert store.path.is_dir()  # it had started: kept
    fresh = store_at(tmp_path / "other")
    fresh.claim(config())
    fresh.discard_if_unstarted()
    assert not (tmp_path / "other" / "results" / "task").exists()


def test_result_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "metrics.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode) == 0o644


def test_a_forced_rerun_cut_between_its_two_renames_is_moved_into_place(tmp_path):
    store = store_at(tmp_path)
    staging = store.staging()
    staging.claim(config())
    (staging.path / "metrics.json").write_text("{}")
    assert not store.path.exists()  # the old folder was moved aside, the new one not yet in
    store.finish_interrupted_swap()
    assert (store.path / "metrics.json").is_file() and not staging.path.exists()


def test_a_holder_records_its_slurm_job_and_a_killed_one_is_named_as_the_last_runner(tmp_path):
    store = store_at(tmp_path)
    store.claim(config())
    env = {**os.environ, "SLURM_JOB_ID": "78", "SLURM_ARRAY_JOB_ID": "76", "SLURM_ARRAY_TASK_ID": "2"}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(store.path), "30"], stdout=subprocess.PIPE,
                              text=True, env=env)
    assert holder.stdout.readline().strip() == "held"
    try:
        running = point_state(store)
        assert running.kind == "running" and ", SLURM job 76_2, since " in running.detail
        assert running.holder["pid"] == holder.pid and running.holder["job_id"] == "78"
        assert running.holder["started_at"] <= time.time()
    finally:
        holder.kill()
        holder.wait()
    interrupted = point_state(store)
    assert interrupted.kind == "interrupted" and f"last run by pid {holder.pid} on " in interrupted.detail


def test_a_failure_shows_until_the_point_is_claimed_again_and_never_beside_metrics(tmp_path):
    store = store_at(tmp_path)
    assert point_state(store).kind == "not started"
    store.claim(config())
    try:
        raise MemoryError("out of memory\nsecond line")
    except MemoryError as err:
        record = failure_record(err)
    store.record_failure(record)
    failed = point_state(store)
    assert failed.kind == "failed" and failed.detail == "MemoryError: out of memory"
    assert failed.error.pid == os.getpid() and "Traceback" in failed.error.traceback
    assert not store.discard_if_unstarted()  # a failed point stays, so status and table show it
    store.claim(config())  # the next run of the point
    assert point_state(store).kind == "interrupted" and not store.file(ERROR_FILE).exists()
    assert len(list(store.path.glob(EARLIER_ERROR_PREFIX + "*.json"))) == 1
    store.file(METRICS_FILE).write_text('{"metrics": {}, "n_test": 0}')
    with pytest.raises(HarnessError, match="is complete"):
        store.record_failure(record)
    assert point_state(store).kind == "done"
