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
