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
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.io import new_file_mode, read_json, write_json_atomic
from harness.results import CHECKPOINTS, CONFIG_FILE, METRICS_FILE, PointConfig, read_config, write_record
# Locks live in one hidden folder of the results tree, outside the point folders, so a point
# folder can be swapped (forced rerun) or removed (bad input) while its lock stays put.
LOCKS_FOLDER = ".locks"
REPLACED_MARK = ".replaced-"  # <point>.replaced-<time>: an earlier result, moved aside by --force
STAGING_SUFFIX = ".forced-run"  # <point>.forced-run: a --force rerun in progress


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
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise HarnessError(f"cannot create results folder {self.path}: {err.strerror}",
                               "pass a writable --results-dir") from err
        if not os.access(self.path, os.W_OK):
            raise HarnessError(f"results folder {self.path} is not writable", "pass a writable --results-dir")
        write_record(self.path, config)

    def discard_if_unstarted(self) -> bool:
        """Remove the folder when it holds nothing but its config (the run failed before training
        wrote anything), so a typo or an offline dataset leaves no half-point for the tables."""
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


class PointLock:
    """An exclusive lock on one point (filelock: an OS lock the kernel drops when its holder dies,
    so a crashed run never leaves a lock behind and two restarts can never both hold it).

    While held, a small JSON file beside the lock says who holds it (host, pid, start time), for
    the error another process gets and for `table`/`report`.
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
            raise HarnessError(f"{self.point} is being run by another process ({self.holder()})",
                               "wait for it to finish; the lock is released when that process exits") from None
        except OSError as err:
            raise HarnessError(f"cannot lock {self.path}: {err.strerror}", "pass a writable --results-dir") from None
        write_json_atomic(self.holder_path, {"host": socket.gethostname(), "pid": os.getpid(),
                                             "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        return self

    def release(self) -> None:
        if self._lock.is_locked:
            self.holder_path.unlink(missing_ok=True)
            self._lock.release()

    def holder(self) -> str:
        """Who holds the lock, in words (best effort: the holder file may be mid-write)."""
        try:
            info = read_json(self.holder_path)
            return f"pid {info['pid']} on {info['host']}, since {info['started']}"
        except (HarnessError, OSError, KeyError, TypeError):
            return "holder unknown"

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
