"""The runner under `torchrun` with 2 CPU processes (gloo DDP) matches the single-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_runner import task_file  # noqa: F401  (the tiny local task fixture)
from tiny import train_losses

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=900)


@pytest.mark.slow
@pytest.mark.parametrize("finetuning", [[], ["--lora"]], ids=["full", "lora"])
def test_two_process_ddp_matches_single_process(task_file, tmp_path, finetuning):  # noqa: F811
    """Same global batch (1 process x 4 examples vs 2 processes x 2): same training, within float tolerance."""
    common = ["run", "--task", str(task_file), "--loss", "pdl", "--alpha", "0.5", "--no-progress", *finetuning]
    single = _run([sys.executable, "-m", "harness", *common, "--results-dir", str(tmp_path / "single")])
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = _run([
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
        "-m", "harness", *common, "--set", "training.per_device_train_batch_size=2",
        "--set", "training.per_device_eval_batch_size=4", "--results-dir", str(tmp_path / "ddp"),
    ])
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    [one] = list((tmp_path / "single").glob("tiny-bible/*/*"))
    [two] = list((tmp_path / "ddp").glob("tiny-bible/*/*"))
    prov = json.loads((two / "provenance.json").read_text())
    assert prov["world_size"] == 2
    assert prov["data_order_hash"] == json.loads((one / "provenance.json").read_text())["data_order_hash"]
    a, b = json.loads((one / "metrics.json").read_text()), json.loads((two / "metrics.json").read_text())
    assert b["validation_ce"] == pytest.approx(a["validation_ce"], rel=1e-4)
    assert train_losses(two) == pytest.approx(train_losses(one), rel=1e-4)
    # Only rank 0 wrote: one point folder, no stray files from rank 1.
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    assert yaml.safe_load((two / "config.json").read_text())["task"]["training"]["per_device_train_batch_size"] == 2


@pytest.mark.slow
def test_generation_on_two_processes_equals_one_process(task_file, tmp_path):  # noqa: F811
    """Each rank generates a share of the batches; the gathered outputs, greedy and sampled, are the
    single process's in the input order (the tiny task's 12 prompts make 4 batches of 3: 2 per rank)."""
    script = str(REPO / "tests" / "dist_generate.py")
    alone = _run([sys.executable, script, str(task_file), str(tmp_path / "one.json")])
    assert alone.returncode == 0, alone.stderr[-3000:]
    two = _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
                script, str(task_file), str(tmp_path / "two.json")])
    assert two.returncode == 0, two.stderr[-3000:]
    one_outputs = json.loads((tmp_path / "one.json").read_text())
    sampled = one_outputs["sampled"]  # seeded per batch: varied, so a misplaced output would show
    assert len(sampled) == len(one_outputs["greedy"]) == 12 and len(set(sampled)) == 12 and all(sampled)
    assert json.loads((tmp_path / "two.json").read_text()) == one_outputs
