"""`--launcher slurm`: one SLURM job array through submitit, one task per unfinished point.

Each task runs the point's own command (`python -m harness run ...`, or torchrun for several GPUs,
from harness.runner.launch.point_command) as a child process, so what runs on a node is exactly
what runs locally; the task's only job is to start it in the submission's folder. The resources come
from LauncherOptions: flags, or the `launcher:` section of a YAML file (`--launcher-config`).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import HarnessError
from harness.io import read_text

# The job gets SIGTERM this long before its time limit (sbatch --signal). pdl-bench stops on it
# with a resumable point; submitit's default (SIGUSR2, for its own requeueing) would kill the run
# without cleanup, since its default action ends the process.
STOP_BEFORE_LIMIT_S = 90
SLURM_NAME = r"^[\w.,:+@-]+$"


class LauncherOptions(BaseModel):
    """Resources of each point's job. The descriptions are the --help of the matching flags."""

    model_config = ConfigDict(extra="forbid")

    # One SLURM name each (no spaces, quotes or newlines: submitit writes them into #SBATCH lines).
    partition: str | None = Field(None, pattern=SLURM_NAME,
                                  description="SLURM partition (default: the cluster's default partition)")
    account: str | None = Field(None, pattern=SLURM_NAME,
                                description="SLURM account to charge (default: your default account)")
    qos: str | None = Field(None, pattern=SLURM_NAME,
                            description="SLURM quality of service (default: the partition's)")
    time_min: int = Field(240, ge=1, description=(
        "time limit of each point's job in minutes; a point stopped by it resumes from its last "
        "checkpoint when the sweep is submitted again"))
    gpus_per_point: int = Field(1, ge=0, description=(
        "GPUs per point (0: a CPU-only job); more than 1 runs the point under torchrun on one node. "
        "With --launcher local --gpus: how many of the listed GPUs each point gets"))
    cpus_per_point: int | None = Field(None, ge=1, description=(
        "CPUs per point, also its OMP_NUM_THREADS (default: the partition's default)"))
    mem_gb: float | None = Field(None, gt=0, description="memory per point in GB (default: the partition's default)")
    array_parallelism: int = Field(256, ge=1, description="at most this many points of the array run at once")


LOCAL_OPTIONS = ("gpus_per_point",)  # the options that also mean something to --launcher local


def launcher_options(config_file: Path | None, flags: dict) -> LauncherOptions:
    """The `launcher:` section of `config_file` (if given), overridden by the flags given (not None)."""
    data: dict = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(read_text(Path(config_file)))
        except yaml.YAMLError as err:
            raise HarnessError(f"{config_file} is not valid YAML: {str(err).splitlines()[0]}",
                               "fix the file; it needs a `launcher:` mapping") from None
        if not isinstance(loaded, dict) or not isinstance(loaded.get("launcher"), dict):
            raise HarnessError(f"{config_file} has no `launcher:` section",
                               "write e.g.\nlauncher:\n  partition: gpu\n  time_min: 240\n  gpus_per_point: 1")
        data = dict(loaded["launcher"])
    data.update({key: value for key, value in flags.items() if value is not None})
    try:
        return LauncherOptions.model_validate(data)
    except ValidationError as err:
        where = f"the launcher: section of {config_file}" if config_file else "the launcher options"
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()[:3])
        known = ", ".join(LauncherOptions.model_fields)
        raise HarnessError(f"{where}: {problems}", f"known keys: {known}") from None


@dataclass(frozen=True)
class PointJob:
    """What one array task runs: the point's command in the submission's folder, with OMP_NUM_THREADS
    set to its CPUs. It fails (and submitit records the task as failed) when the command does."""

    command: list[str]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)

    def __call__(self) -> str:
        print(f"pdl-bench point: {shlex.join(self.command)}", flush=True)
        code = subprocess.run(self.command, cwd=self.cwd, env={**os.environ, **self.env}, check=False).returncode
        if code:
            raise RuntimeError(f"the point's command exited with code {code}: {shlex.join(self.command)}")
        return "done"


@dataclass(frozen=True)
class Submitted:
    job_id: str  # the array job (or the one job, for a single point)
    log_folder: Path
    jobs: list  # submitit jobs, one per point, in order


def submit(commands: list[list[str]], options: LauncherOptions, log_folder: Path, name: str) -> Submitted:
    """Submit one job array, one task per command (a single command: one job)."""
    import submitit

    if shutil.which("sbatch") is None:
        raise HarnessError("--launcher slurm needs SLURM's sbatch, which is not on PATH here",
                           "run the sweep on the cluster's login node, or use --dry-run to print the commands")
    executor = submitit.AutoExecutor(folder=Path(log_folder) / "%j", cluster="slurm")
    params = {
        "name": name, "timeout_min": options.time_min, "nodes": 1, "tasks_per_node": 1,
        "gpus_per_node": options.gpus_per_point or None, "cpus_per_task": options.cpus_per_point,
        "mem_gb": options.mem_gb, "slurm_partition": options.partition, "slurm_account": options.account,
        "slurm_qos": options.qos, "slurm_array_parallelism": options.array_parallelism,
        "slurm_additional_parameters": {"signal": f"TERM@{STOP_BEFORE_LIMIT_S}"},
    }
    executor.update_parameters(**{key: value for key, value in params.items() if value is not None})
    env = {"OMP_NUM_THREADS": str(options.cpus_per_point)} if options.cpus_per_point else {}
    try:
        with executor.batch():
            jobs = [executor.submit(PointJob(command, os.getcwd(), env)) for command in commands]
    except (subprocess.CalledProcessError, submitit.core.utils.FailedJobError,
            submitit.core.utils.FailedSubmissionError) as err:
        detail = getattr(err, "stderr", None) or getattr(err, "output", None) or str(err)
        detail = detail.decode() if isinstance(detail, bytes) else str(detail)
        raise HarnessError(f"sbatch refused the job array: {detail.strip().splitlines()[-1] if detail.strip() else err}",
                           "check --partition, --account, --qos, --time-min and the resources against "
                           "`sinfo` and your cluster's limits") from None
    return Submitted(jobs[0].job_id.split("_")[0], Path(log_folder), jobs)


SQUEUE_TRIES = 5  # squeue fails now and then on a busy controller ("Socket timed out")


def wait_for(job_id: str, *, poll_s: float = 5.0, timeout_s: float | None = None) -> None:
    """Wait until every task of the job has left SLURM's queue (squeue, which works without the
    accounting database that submitit's own job states need), at most timeout_s seconds."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    failures = 0
    while True:
        listed = subprocess.run(["squeue", "--noheader", "--jobs", job_id, "--format", "%i"],
                                capture_output=True, text=True, check=False)
        failed = listed.returncode != 0 and "Invalid job id" not in listed.stderr
        failures = failures + 1 if failed else 0
        if failures >= SQUEUE_TRIES:
            raise HarnessError(f"squeue failed while waiting for job {job_id}: {listed.stderr.strip()}",
                               f"check the job with `squeue -j {job_id}`; `pdl-bench status` shows its points")
        if not failed and not listed.stdout.strip():
            return
        if deadline is not None and time.monotonic() > deadline:
            raise HarnessError(f"job {job_id} is still in SLURM's queue after {timeout_s / 60:g} min of waiting",
                               f"it goes on running: `squeue -j {job_id}`, `pdl-bench status`")
        time.sleep(poll_s)


def task_log(job) -> Path:
    """The stderr file submitit gives one task."""
    return Path(job.paths.stderr)
