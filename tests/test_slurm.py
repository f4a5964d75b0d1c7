"""`pdl-bench sweep --launcher slurm` on a real one-node SLURM cluster (scripts/slurm_local.sh):
the points run as one job array, give the metrics a local sweep gives, and a resubmission after
a cancelled task runs only the unfinished point. Skipped, with the reason, where no cluster starts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from slurm_cluster import slurm_cluster  # noqa: F401
from test_runner import REPO, task_file  # noqa: F401 - the same tiny task fixture

from harness.cli import main
from harness.results import METRICS_FILE
from harness.runner.trainer import last_complete_checkpoint
from harness.store import PointStore, point_state

DEADLINE_S = 300
GRID = ["--losses", "ce,pdl", "--alphas", "1", "--seeds", "0,1", "--max-steps", "100", "--no-progress"]


def sweep_args(task: Path, results: Path) -> list[str]:
    return ["sweep", "--task", str(task), *GRID, "--results-dir", str(results)]


def metrics_by_point(results: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in results.glob(f"tiny-bible/*/*/{METRICS_FILE}")}


def wait_until_gone(job_id: str) -> None:
    """Until every task of the job has left the queue (no accounting here: squeue, not sacct)."""
    deadline = time.time() + DEADLINE_S
    while subprocess.run(["squeue", "--noheader", "--jobs", job_id, "--format", "%i"], capture_output=True,
                         text=True, check=False).stdout.strip():
        if time.time() > deadline:
            subprocess.run(["scancel", job_id], check=False)
            pytest.fail(f"SLURM job {job_id} still queued after {DEADLINE_S}s")
        time.sleep(1)


@pytest.mark.slow
def test_a_slurm_sweep_matches_a_local_one_and_a_resubmission_runs_only_the_unfinished_point(
        slurm_cluster, task_file, tmp_path, capsys):  # noqa: F811
    # the same points run locally, one thread each like the SLURM tasks (--cpus-per-point 1)
    local = subprocess.run([sys.executable, "-m", "harness", *sweep_args(task_file, tmp_path / "local")],
                           env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}, cwd=REPO,
                           capture_output=True, text=True, timeout=DEADLINE_S, check=False)
    assert local.returncode == 0, local.stderr[-2000:]
    expected = metrics_by_point(tmp_path / "local")
    assert len(expected) == 4

    results = tmp_path / "shared"
    slurm = [*sweep_args(task_file, results), "--launcher", "slurm", "--partition", slurm_cluster.partition,
             "--gpus-per-point", "0", "--cpus-per-point", "1", "--mem-gb", "1.5", "--time-min", "10"]
    assert main(slurm) == 0
    out = capsys.readouterr().out
    job_id = re.search(r"submitted SLURM job (\d+): 4 point\(s\)", out).group(1)
    assert "logs: " in out

    # cancel the first task while its point trains (it holds the point's lock and has a checkpoint)
    manifest = json.loads(next((results / ".sweeps").glob("*.json")).read_text())
    first = PointStore(results / manifest["points"][0]["path"])
    deadline = time.time() + DEADLINE_S
    while point_state(first).kind != "running" or last_complete_checkpoint(first.checkpoints) is None:
        assert time.time() < deadline and point_state(first).kind != "done", point_state(first)
        time.sleep(0.1)
    assert point_state(first).holder["array_job_id"] == job_id
    subprocess.run(["scancel", f"{job_id}_0"], check=True)
    wait_until_gone(job_id)

    capsys.readouterr()
    assert main(["status", "--results-dir", str(results), "--format", "json"]) == 0
    [sweep] = json.loads(capsys.readouterr().out)["sweeps"]
    assert sweep["counts"] == {"done": 3, "running": 0, "failed": 0, "pending": 1}
    cancelled = sweep["points"][0]
    assert cancelled["state"] == "pending" and cancelled["detail"].startswith("interrupted")
    assert cancelled["job"] == f"{job_id}_0"  # the lock's last holder: which task ran it
    finished = {p: p.stat().st_mtime_ns for p in results.glob(f"tiny-bible/*/*/{METRICS_FILE}")}
    assert len(finished) == 3

    # the same command again: only the unfinished point is submitted, and it finishes
    assert main([*slurm, "--wait", "--wait-timeout-min", str(DEADLINE_S / 60)]) == 0
    out = capsys.readouterr().out
    assert "4 points: 1 to run, 3 complete (skipped)" in out
    assert re.search(r"submitted SLURM job \d+: 1 point\(s\)", out) and "sweep: 1 done, 3 skipped" in out
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # the finished points were not rerun
    assert metrics_by_point(results) == expected  # every point, the cancelled-and-resumed one included
    assert main(["status", "--results-dir", str(results), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["sweeps"][0]["counts"]["done"] == 4
