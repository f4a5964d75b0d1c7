"""Peak memory per phase, and memory given back after a point (harness/runner/memory.py)."""

from __future__ import annotations

import pytest

from harness.runner.memory import Phases, give_back_memory


def test_each_phase_reports_its_own_peak():
    phases = Phases()
    with phases.phase("big"):
        block = bytearray(400 * 1024 ** 2)
        block[::4096] = b"x" * len(block[::4096])  # touch every page: resident, not just reserved
        del block
    give_back_memory()
    with phases.phase("small"):
        pass
    record = phases.record()
    assert record["cpu_rss_gib"]["big"] >= 0.39
    if phases.resettable:  # Linux: the high-water mark is reset per phase
        assert record["cpu_rss_gib"]["small"] < record["cpu_rss_gib"]["big"] - 0.3
    else:
        pytest.skip("this kernel cannot reset the resident high-water mark; phases report the process peak")
    assert set(phases.seconds) == {"big_s", "small_s"}


def test_a_run_killed_early_keeps_what_the_runs_before_it_recorded(tmp_path):
    """Run 1 trains to a checkpoint and is killed; run 2 is killed right after loading; run 3 must
    still see run 1's time to the checkpoint and its notes (each save merges, never replaces)."""
    record = tmp_path / "phases.json"
    first = Phases(record)
    with first.phase("load"):
        pass
    with pytest.raises(KeyboardInterrupt), first.phase("train"):
        first.mark("train", 20)
        first.note("train_summary", {"steps": 20})
        raise KeyboardInterrupt  # killed mid-training: the phase is not finished
    second = Phases(record)
    with second.phase("load"):
        pass  # saved here, then killed before training resumes
    third = Phases(record)
    assert "20" in third.earlier["marks"]["train"] and third.earlier["notes"] == {"train_summary": {"steps": 20}}
    assert third.finished_earlier() == ["load"]
