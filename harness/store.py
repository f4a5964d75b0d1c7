"""A point's folder on disk: is it complete, does it belong to this config, who is running it.

Nothing here ever deletes results. A forced rerun trains in a staging folder next to the point and
swaps it in only once it has finished (`replace_with`), so a rerun that fails or is killed leaves
the earlier result where the tables find it.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.errors import HarnessError
from harness.io import new_file_mode, read_json, write_json_atomic
from harness.results import (
    CHECKPOINTS, CONFIG_FILE, ERROR_FILE, METRICS_FILE, PointConfig, PointError, PointMetrics, read_config, read_error,
    read_metrics, write_record,
)

# Locks live in one hidden folder of the results tree, outside the point folders, so a point
# folder can be swapped (forced rerun) or removed (bad input) while its lock stays put.
LOCKS_FOLDER = ".locks"
REPLACED_MARK = ".replaced-"  # <point>.replaced-<time>: an earlier result, moved aside by --force
STAGING_SUFFIX = ".forced-run"  # <point>.forced-run: a --force rerun in progress


EARLIER_ERROR_PREFIX = "error.earlier-"  # error.earlier-<time>.json: a failure a later run has moved past
# The environment variables that name a SLURM job, and the fields of the process record they fill.
SLURM_ENV = {"job_id": "SLURM_JOB_ID", "array_job_id": "SLURM_ARRAY_JOB_ID", "array_task_id": "SLURM_ARRAY_TASK_ID"}


def process_identity() -> dict[str, Any]:
    """This process as a lock holder or a failed run records it: host, pid and, inside a SLURM job,
    its job id (and array job and task ids), so a point can be traced to a node and a log file."""
    identity: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    identity.update({key: os.environ[var] for key, var in SLURM_ENV.items() if os.environ.get(var)})
    return identity


def slurm_job_name(record: dict[str, Any]) -> str | None:
    """`123_4` for array task 4 of array job 123, `123` for a plain job, None outside SLURM."""
    if record.get("array_job_id") and record.get("array_task_id") is not None:
        return f"{record['array_job_id']}_{record['array_task_id']}"
    return record.get("job_id")


def failure_record(err: BaseException) -> PointError:
    """What error.json records for `err`, raised in this process now."""
    return PointError(type=type(err).__name__, message=getattr(err, "message", None) or str(err),
                      hint=getattr(err, "hint", None),
                      traceback="".join(traceback.format_exception(type(err), err, err.__traceback__)),
                      time=time.strftime("%Y-%m-%dT%H:%M:%S%z"), **process_identity())


def is_point_folder_name(name: str) -> bool:
    """Whether a folder under <task>/<model>/ is a live point (not archived, staging or hidden)."""
    return not (name.startswith(".") or REPLACED_MARK in name or name.endswith(STAGING_SUFFIX)
                or name == "comparisons")


@dataclass(frozen=True)
class PointStore:
    path: Path

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def lock_path(self) -> Path:
        """results/.locks/<task>/<model>/<point>.lock for results/<task>/<model>/<point>."""
        task_dir, model_dir = self.path.parent.parent, self.path.parent
        return task_dir.parent / LOCKS_FOLDER / task_dir.name / model_dir.name / f"{self.path.name}.lock"

    def staging(self) -> "PointStore":
        """Where a --force rerun of this point trains until it has finished."""
        return PointStore(self.path.with_name(self.path.name + STAGING_SUFFIX))

    def file(self, name: str) -> Path:
        return self.path / name

    def is_complete(self) -> bool:
        """metrics.json is written last, atomically: its presence means the point finished."""
        return (self.path / METRICS_FILE).is_file()

    def claim(self, config: PointConfig) -> None:
        """Create the folder for `config`, or check that an existing one holds the same point."""
        if (self.path / CONFIG_FILE).is_file():
            if read_config(self.path).identity() != config.identity():
                raise HarnessError(
                    f"{self.path} holds results of a different config (same name and hash prefix)",
                    "move that folder away or pass a different --results-dir; it is never overwritten",
                )
            self.retire_failure()  # this run starts over: the point is no longer failed
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise HarnessError(f"cannot create results folder {self.path}: {err.strerror}",
                               "pass a writable --results-dir") from err
        if not os.access(self.path, os.W_OK):
            raise HarnessError(f"results folder {self.path} is not writable", "pass a writable --results-dir")
        write_record(self.path, config)

    def record_failure(self, record: PointError) -> Path:
        """Write error.json (config.json must be there: `claim` first). Called with the point's lock
        held; never beside a metrics.json, since a complete point has not failed."""
        if self.is_complete():
            raise HarnessError(f"{self.path} is complete; a failure is not recorded beside its metrics.json",
                               "this is a bug in the caller: check is_complete() first")
        return write_record(self.path, record)

    def failure(self) -> PointError | None:
        """The recorded failure of the point's last run, None when there is none (or it is unreadable:
        a half-written record must not hide the point's state)."""
        try:
            return read_error(self.path) if (self.path / ERROR_FILE).is_file() else None
        except HarnessError:
            return None

    def retire_failure(self) -> None:
        """Move error.json aside as error.earlier-<time>.json when the point is claimed again, so a
        rerun shows as running (and then done), not as the old failure; the record is kept."""
        error = self.path / ERROR_FILE
        if error.is_file():
            stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(error.stat().st_mtime))
            error.rename(self.path / f"{EARLIER_ERROR_PREFIX}{stamp}-{os.getpid()}.json")

    def discard_if_unstarted(self) -> bool:
        """Remove the folder when it holds nothing but its config (the run stopped before training
        wrote anything), so an interrupt there leaves no half-point; a failure is then recorded
        again, with its error.json, by harness.runner.failure, so `status` and `table` show it."""
        if not (self.path.is_dir() and {p.name for p in self.path.iterdir()} <= {CONFIG_FILE}):
            return False
        shutil.rmtree(self.path)
        _remove_empty_parents(self.path, 2)  # <model>/ and <task>/ if now empty
        return True

    def finish_interrupted_swap(self) -> None:
        """A finished forced rerun whose swap was cut between its two renames (no point folder, a
        complete staging folder) is moved into place, so it is neither lost nor rerun."""
        staging = self.staging()
        if not self.path.exists() and (staging.path / METRICS_FILE).is_file():
            staging.path.rename(self.path)

    def replace_with(self, finished: "PointStore") -> Path | None:
        """Swap a finished forced rerun (`finished`, a staging folder) into this point's place; the
        earlier folder, if any, is moved aside as <point>.replaced-<time>, never deleted."""
        archived = None
        if self.path.exists():
            stamp = time.strftime("%Y%m%dT%H%M%S")
            archived = self.path.with_name(f"{self.path.name}{REPLACED_MARK}{stamp}")
            suffix = 1
            while archived.exists():
                archived = archived.with_name(f"{self.path.name}{REPLACED_MARK}{stamp}-{suffix}")
                suffix += 1
            self.path.rename(archived)
        finished.path.rename(self.path)
        return archived


def _remove_empty_parents(path: Path, levels: int) -> None:
    for parent in list(path.parents)[:levels]:
        try:
            parent.rmdir()
        except OSError:
            break


class PointTaken(HarnessError):
    """Another live process holds the point's lock: it is running, not failed."""


class PointLock:
    """An exclusive lock on one point (filelock: an OS lock the kernel drops when its holder dies,
    so a crashed run never leaves a lock behind and two restarts can never both hold it). On a
    shared filesystem whose `flock` works between clients (NFS with its lock service, Lustre
    mounted with `-o flock`, GPFS) it holds between hosts too.

    A small JSON file beside the lock says who holds it (host, pid, SLURM job, start time), for
    the error another process gets and for `status`/`table`/`report`; once the lock is free, it
    says who ran the point last.
    """

    def __init__(self, store: PointStore):
        from filelock import FileLock

        self.path = store.lock_path
        self.point = store.path
        self._lock = FileLock(str(self.path), timeout=0, mode=new_file_mode())  # group-shared trees work

    @property
    def holder_path(self) -> Path:
        return self.path.with_name(self.path.name + ".holder.json")

    def acquire(self, wait: float = 5.0) -> "PointLock":
        """Take the lock, waiting up to `wait` seconds (long enough for a `table` that is probing
        it to let go; a real holder keeps it for the whole run)."""
        from filelock import Timeout

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire(timeout=wait)
        except Timeout:
            raise PointTaken(f"{self.point} is being run by another process ({self.holder()})",
                             "wait for it to finish; the lock is released when that process exits") from None
        except OSError as err:
            raise HarnessError(f"cannot lock {self.path}: {err.strerror}", "pass a writable --results-dir") from None
        write_json_atomic(self.holder_path, {**process_identity(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                             "started_at": time.time()})
        return self

    def release(self) -> None:
        """Let go of the lock. The holder file stays: it then says who ran the point last (the
        SLURM task a cancelled or timed-out point ran in, for `status`)."""
        if self._lock.is_locked:
            self._lock.release()

    def holder_info(self) -> dict[str, Any] | None:
        """The holder file (host, pid, SLURM ids, started, started_at), None when absent or unreadable
        (it may be mid-write)."""
        try:
            info = read_json(self.holder_path) if self.holder_path.is_file() else None
        except (HarnessError, OSError):
            return None
        return info if isinstance(info, dict) and "pid" in info and "host" in info else None

    def holder(self) -> str:
        """Who holds the lock, in words (best effort: the holder file may be mid-write)."""
        info = self.holder_info()
        if info is None:
            return "holder unknown"
        job = slurm_job_name(info)
        return f"pid {info['pid']} on {info['host']}" + (f", SLURM job {job}" if job else "") + \
            f", since {info.get('started', '?')}"

    def is_held_elsewhere(self) -> bool | None:
        """True while another live process holds the lock, False when nobody does (probed without
        waiting), None when this process cannot tell (e.g. a read-only results tree)."""
        from filelock import Timeout

        if not self.path.is_file():
            return False
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return True
        except OSError:
            return None
        self._lock.release()
        return False

    def __enter__(self) -> "PointLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


PointStateKind = Literal["done", "unreadable", "running", "failed", "interrupted", "incomplete", "not started"]
UNREADABLE_HINT = "rerun it with --force"  # a point whose metrics.json is there but unreadable


@dataclass(frozen=True)
class PointState:
    """Where one point stands: the one rule `status`, `table` and `report` share."""

    kind: PointStateKind
    detail: str  # one line: the holder, the error's first line, the last holder...
    holder: dict[str, Any] | None = None  # the lock's holder file (running), or the last holder (interrupted)
    error: PointError | None = None
    metrics: PointMetrics | None = None  # done: its metrics.json, read and validated


def point_state(store: PointStore) -> PointState:
    """done: metrics.json is there and reads as the result schema says. unreadable: it is there but
    does not (cut short, hand-edited, foreign: a rerun with --force replaces it). running: a live
    process holds the lock. failed: the last run left error.json. interrupted: the folder is there
    but nobody runs it (killed, cancelled, timed out: the same command resumes it). incomplete:
    this process cannot probe the lock (a read-only tree). not started: no folder. Who runs or ran
    it comes from the lock's holder file."""
    if store.is_complete():
        try:
            return PointState("done", "", metrics=read_metrics(store.path))
        except HarnessError as err:
            return PointState("unreadable", f"unreadable metrics.json ({err.message}; {UNREADABLE_HINT})")
    lock = PointLock(store)
    held = lock.is_held_elsewhere()
    if held:
        return PointState("running", lock.holder(), holder=lock.holder_info())
    error = store.failure()
    if error is not None:
        return PointState("failed", error.first_line(), error=error)
    if not store.path.is_dir():
        return PointState("not started", "")
    if held is None:
        return PointState("incomplete", "no metrics.json (cannot probe its lock to tell running from interrupted)")
    last = lock.holder_info()  # who ran it last
    detail = "no metrics.json and no process running it (rerun the same command to resume)"
    return PointState("interrupted", detail + (f"; last run by {lock.holder()}" if last else ""), holder=last)
