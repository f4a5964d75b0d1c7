"""A point's folder on disk: is it complete, does it belong to this config, who is running it.

Nothing here ever deletes results: a forced rerun moves the old folder aside first.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.io import read_json, write_json_atomic

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
GENERATIONS_FILE = "generations.jsonl"
PROVENANCE_FILE = "provenance.json"
TRAIN_LOG_FILE = "train_log.jsonl"
TRAIN_COUNTS_FILE = "train_counts.npy"
CHECKPOINTS = "checkpoints"
LOCK_FILE = ".lock"


@dataclass(frozen=True)
class PointStore:
    path: Path

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    def file(self, name: str) -> Path:
        return self.path / name

    def is_complete(self) -> bool:
        """metrics.json is written last, atomically: its presence means the point finished."""
        return (self.path / METRICS_FILE).is_file()

    def claim(self, resolved: dict[str, Any]) -> None:
        """Create the folder for `resolved`, or check an existing one holds the same config."""
        config_path = self.path / CONFIG_FILE
        if config_path.is_file():
            existing = read_json(config_path)
            if json.loads(json.dumps(resolved, default=str)) != existing:
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
        write_json_atomic(config_path, resolved)

    def discard_if_unstarted(self) -> None:
        """Remove the folder when it holds nothing but its config (the run failed before training
        wrote anything), so a typo or an offline dataset leaves no half-point for the tables."""
        if self.path.is_dir() and {p.name for p in self.path.iterdir()} <= {CONFIG_FILE, LOCK_FILE}:
            shutil.rmtree(self.path)
            for parent in (self.path.parent, self.path.parent.parent):  # <model>/ and <task>/ if now empty
                try:
                    parent.rmdir()
                except OSError:
                    break

    def archive(self) -> Path | None:
        """Move an existing folder aside (for --force) so earlier results are never destroyed."""
        if not self.path.exists():
            return None
        stamp = time.strftime("%Y%m%dT%H%M%S")
        target = self.path.with_name(f"{self.path.name}.replaced-{stamp}")
        self.path.rename(target)
        return target


class PointLock:
    """An exclusive lock file, so two processes (e.g. a sweep over GPUs) never run the same point.

    The lock file appears atomically with the holder's pid already in it (written to a temp file,
    then hard-linked into place), so a reader never sees an empty lock. A lock whose process is
    dead is taken over.
    """

    def __init__(self, folder: Path):
        self.path = folder / LOCK_FILE

    def acquire(self) -> "PointLock":
        for _ in range(2):
            if self._try_link():
                return self
            holder = self._holder()
            if holder is not None and holder != os.getpid() and _alive(holder):
                raise HarnessError(
                    f"{self.path.parent} is being run by another process (pid {holder})",
                    "wait for it to finish, or delete the .lock file if that process is gone",
                )
            self.path.unlink(missing_ok=True)  # stale: its process is gone
        raise HarnessError(f"could not lock {self.path}", "retry")

    def release(self) -> None:
        if self._holder() == os.getpid():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "PointLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def _try_link(self) -> bool:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".lock.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(str(os.getpid()))
            os.link(tmp, self.path)  # fails if the lock exists: atomic test-and-set
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def _holder(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
