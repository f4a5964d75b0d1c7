"""The local SLURM cluster (scripts/slurm_local.sh) runs submitit jobs and job arrays.

This is the path `pdl-bench sweep --launcher slurm` builds on: submitit writes an sbatch script that
runs `sys.executable -m submitit.core._submit`, so the job uses this venv's python.
"""

from __future__ import annotations

import os
import sys
import time

import pytest

from slurm_cluster import slurm_cluster  # noqa: F401

submitit = pytest.importorskip("submitit")
cloudpickle = pytest.importorskip("cloudpickle")

JOB_TIMEOUT_S = 180


def answer() -> dict:
    return {
        "value": 6 * 7,
        "job_id": os.environ.get("SLURM_JOB_ID"),
        "python": sys.executable,
        "partition": os.environ.get("SLURM_JOB_PARTITION"),
    }


def square(x: int) -> dict:
    return {
        "value": x * x,
        "array_job_id": os.environ.get("SLURM_ARRAY_JOB_ID"),
        "task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
    }


def _wait(jobs, timeout_s: float = JOB_TIMEOUT_S) -> None:
    """Wait for the jobs with a deadline: without accounting (no sacct) submitit only sees a job end
    when it writes its result, so a job SLURM killed would make job.result() wait forever."""
    deadline = time.monotonic() + timeout_s
    while not all(job.done() for job in jobs):
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {job.job_id} stderr:\n{job.stderr() or ''}" for job in jobs)
            for job in jobs:
                job.cancel(check=False)
            pytest.fail(f"submitit jobs not done after {timeout_s}s\n{logs}")
        time.sleep(1)


@pytest.mark.slow
def test_submitit_job_and_array_run_on_local_slurm(slurm_cluster, tmp_path):  # noqa: F811
    assert slurm_cluster.cpus >= 1 and slurm_cluster.real_memory_mb >= 256
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    assert executor.cluster == "slurm"
    executor.update_parameters(
        slurm_partition=slurm_cluster.partition,
        timeout_min=5,
        cpus_per_task=1,
        mem_gb=0.5,  # well under RealMemory so array tasks run side by side
        name="pdl-slurm-test",
    )
    # The job unpickles the function: this test module is not importable there (tests/ is not on
    # the job's sys.path), so ship its functions by value. Harness code is importable from the venv.
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    try:
        job = executor.submit(answer)
        jobs = executor.map_array(square, [1, 2, 3])
    finally:
        cloudpickle.unregister_pickle_by_value(module)

    _wait([job, *jobs])

    out = job.result()
    assert out["value"] == 42
    assert out["job_id"] == str(job.job_id)
    assert out["partition"] == slurm_cluster.partition
    assert os.path.realpath(out["python"]) == os.path.realpath(sys.executable)

    results = [j.result() for j in jobs]
    assert [r["value"] for r in results] == [1, 4, 9]
    array_id = jobs[0].job_id.split("_")[0]
    assert [j.job_id for j in jobs] == [f"{array_id}_{i}" for i in range(3)]
    assert {r["array_job_id"] for r in results} == {array_id}
    assert [r["task_id"] for r in results] == ["0", "1", "2"]
