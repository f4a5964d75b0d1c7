"""Sweeps: every (loss, alpha, seed) point, skipping finished ones; optionally one process per GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.runner.config import RunConfig


def loss_has_alpha(loss: str) -> bool:
    from harness.losses import LOSSES

    return "alpha" in LOSSES.get(loss).config_cls.model_fields


def grid(base: RunConfig, losses: list[str], alphas: list[float], seeds: list[int]) -> list[RunConfig]:
    """Losses without an alpha run once per seed; alpha losses once per (alpha, seed)."""
    bad = [a for a in alphas if a < 0]
    if bad:
        raise HarnessError(f"alpha must be >= 0, got {bad}", "alpha = 0 is plain CE; use values like 0,0.5,1")
    points = []
    for seed in seeds:
        for loss in losses:
            options_list: list[dict[str, Any]] = (
                [{**base.loss_options, "alpha": a} for a in alphas] if loss_has_alpha(loss) else [base.loss_options]
            )
            for options in options_list:
                points.append(base.model_copy(update={"loss": loss, "loss_options": options, "seed": seed}))
    return points


def run_sweep(points: list[RunConfig], results_dir: Path, *, force: bool, progress: bool,
              worker: int = 0, num_workers: int = 1) -> list[dict[str, Any]]:
    """Run this worker's share of the points in order. Any failure of a point (a bad input, an
    out-of-memory error, a corrupt file) is recorded and the sweep goes on with the next point;
    only an interrupt (Ctrl-C, SIGTERM) stops it. Ends with a summary of every point. Under
    torchrun, an error that is not the harness's own may have hit one rank only, so it ends the job
    (torchrun stops every rank) rather than leave the other ranks waiting in a collective."""
    from harness.runner.dist import process_state
    from harness.runner.memory import give_back_memory
    from harness.runner.point import run_point

    distributed = process_state().num_processes > 1
    summary = []
    for index, run in enumerate(points):
        if index % num_workers != worker:
            continue
        label = f"{run.loss} {run.loss_options} seed={run.seed}"
        try:
            result = run_point(run, results_dir, force=force, progress=progress)
            state = "skipped (complete)" if result.skipped else "done"
            summary.append({"point": label, "state": state, "path": str(result.path)})
        except Exception as err:  # noqa: BLE001 - one point's failure must not end the sweep
            if distributed and not isinstance(err, HarnessError):
                raise  # may have hit one rank only: going on would leave the others in a collective
            summary.append({"point": label, "state": f"failed: {first_line(err)}", "path": ""})
        if summary and summary[-1]["state"].startswith("failed"):
            give_back_memory()  # again outside the except block, whose traceback held the point's model
        print(f"[{len(summary)}] {label}: {summary[-1]['state']}", flush=True)
    print_summary(summary)
    return summary


def first_line(err: BaseException) -> str:
    """The error in one line: a HarnessError's message, else `Type: first line of the message`."""
    if isinstance(err, HarnessError):
        return err.message.splitlines()[0] if err.message else type(err).__name__
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def print_summary(summary: list[dict[str, Any]]) -> None:
    counts: dict[str, int] = {}
    for row in summary:
        kind = row["state"].split(" ")[0].rstrip(":")
        counts[kind] = counts.get(kind, 0) + 1
    print("sweep: " + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())), flush=True)
    for row in summary:
        if row["state"].startswith("failed"):
            print(f"  FAILED {row['point']}: {row['state'][len('failed: '):]}", flush=True)


def launch_per_gpu(argv: list[str], gpus: list[str]) -> int:
    """One child process per GPU, each pinned with CUDA_VISIBLE_DEVICES and given a disjoint share.
    Stopping the parent (Ctrl-C, SIGTERM) stops the children too, so none keeps running a point."""
    children = []
    try:
        for worker, gpu in enumerate(gpus):
            cmd = [sys.executable, "-m", "harness", *argv, "--worker", str(worker), "--num-workers", str(len(gpus))]
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}
            children.append(subprocess.Popen(cmd, env=env))
        codes = [child.wait() for child in children]
    except KeyboardInterrupt:
        for child in children:
            child.terminate()
        for child in children:
            child.wait()
        raise
    return max(codes) if codes else 0
