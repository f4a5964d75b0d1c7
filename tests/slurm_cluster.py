"""A real one-node SLURM cluster for scheduler tests, started by scripts/slurm_local.sh.

Use it with::

    from slurm_cluster import slurm_cluster  # noqa: F401

    def test_something(slurm_cluster):
        executor.update_parameters(slurm_partition=slurm_cluster.partition, ...)

The fixture runs ``bash scripts/slurm_local.sh start`` once per session (idempotent: quick when the
cluster already runs; the first time on a new machine it apt-installs slurm-wlm and munge). When the
cluster cannot be had it skips with the script's own error line, never passes silently; under CI
(CI=true, as root) it fails instead (tests/needs.py). Not root, it skips: SLURM cannot be installed.
It does not stop the cluster at the end: the next session (or person) reuses it. PDL_SKIP_SLURM=1
skips it.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from needs import cannot_have, run_script

WHAT = "SLURM cluster"
START_TIMEOUT_S = 360  # the first start apt-installs slurm-wlm and munge


@dataclass(frozen=True)
class SlurmCluster:
    partition: str  # the default partition, pass as submitit's slurm_partition / sbatch -p
    node: str  # the one node's name (the short hostname)
    cpus: int  # CPUs SLURM schedules on the node (CPUTot)
    real_memory_mb: int  # RealMemory: the most a job (or all running jobs together) may ask for
    def_mem_per_cpu_mb: int | None  # what a job that asks for no memory gets per CPU
    conf: Path  # slurm.conf in use


def _kv(text: str) -> dict[str, str]:
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", text))


def _describe() -> SlurmCluster:
    def run(*cmd: str) -> str:
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30).stdout

    partitions = run("scontrol", "show", "partition", "-o").splitlines()
    parts = [_kv(p) for p in partitions if p.strip()]
    default = next((p for p in parts if p.get("Default") == "YES"), parts[0])
    node = _kv(run("scontrol", "show", "node", "-o").splitlines()[0])
    config = run("scontrol", "show", "config")
    conf = re.search(r"^SLURM_CONF\s*=\s*(\S+)", config, re.M)
    def_mem = re.search(r"^DefMemPerCPU\s*=\s*(\d+)", config, re.M)
    return SlurmCluster(
        partition=default["PartitionName"],
        node=node["NodeName"],
        cpus=int(node["CPUTot"]),
        real_memory_mb=int(node["RealMemory"]),
        def_mem_per_cpu_mb=int(def_mem.group(1)) if def_mem else None,
        conf=Path(conf.group(1)) if conf else Path("/etc/slurm/slurm.conf"),
    )


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
    if os.environ.get("PDL_SKIP_SLURM") == "1":
        pytest.skip("PDL_SKIP_SLURM=1")
    if os.geteuid() != 0:  # CI or not: SLURM cannot be installed here
        pytest.skip("SLURM cluster could not start: scripts/slurm_local.sh must run as root "
                    "(it apt-installs slurm-wlm and munge and starts their daemons)")
    run_script(WHAT, "slurm_local.sh", "start", timeout=START_TIMEOUT_S)
    try:
        return _describe()
    except (subprocess.SubprocessError, OSError, KeyError, IndexError, ValueError) as e:
        cannot_have(WHAT, f"it started but scontrol could not describe it ({e})")
