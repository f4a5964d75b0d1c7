"""The point folder's lock and lifecycle (harness/runner/store.py)."""

import os
import subprocess
import sys

import pytest

from harness.errors import HarnessError
from harness.runner.store import LOCK_FILE, PointLock, PointStore


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_lock_is_exclusive_while_its_holder_lives(tmp_path):
    (tmp_path / LOCK_FILE).write_text("1")  # pid 1 is always alive
    with pytest.raises(HarnessError, match="another process"):
        PointLock(tmp_path).acquire()
    assert (tmp_path / LOCK_FILE).read_text() == "1"  # the holder's lock is left alone


def test_a_stale_lock_is_taken_over_and_released(tmp_path):
    (tmp_path / LOCK_FILE).write_text(str(dead_pid()))
    with PointLock(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text() == str(os.getpid())
    assert not (tmp_path / LOCK_FILE).exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temp files left behind


def test_claim_refuses_a_folder_of_another_config(tmp_path):
    store = PointStore(tmp_path / "point")
    store.claim({"seed": 0})
    store.claim({"seed": 0})
    with pytest.raises(HarnessError, match="different config"):
        store.claim({"seed": 1})


def test_archive_moves_results_aside_and_discard_keeps_started_points(tmp_path):
    store = PointStore(tmp_path / "task" / "model" / "point")
    store.claim({"seed": 0})
    (store.path / "checkpoints").mkdir()
    store.discard_if_unstarted()
    assert store.path.is_dir()  # it had started: kept
    moved = store.archive()
    assert moved.name.startswith("point.replaced-") and (moved / "checkpoints").is_dir()
    fresh = PointStore(tmp_path / "task2" / "model" / "point")
    fresh.claim({"seed": 0})
    fresh.discard_if_unstarted()
    assert not (tmp_path / "task2").exists()
