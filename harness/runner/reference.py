"""Run the reference sweep's unfinished points (results/reference/plan.yaml): every task x seed x
arm, with the plan's overrides, through the sweep's own planning and runner, so a finished point
is skipped and a failed one is recorded (error.json) while the others go on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.reference_plan import ReferencePlan
from harness.runner.config import RunConfig


def reference_points(plan: ReferencePlan) -> list[tuple[RunConfig, dict[str, Any]]]:
    """(run, settings) per point, seed by seed, then task, then arm: the order they run in, so
    every task has a whole seed (all arms, paired) early and the page shows all of them while the
    other seeds run."""
    points = []
    for seed in plan.seeds:
        for task in plan.tasks:
            for arm in plan.arms:
                run = RunConfig(task=task, loss=arm.loss, loss_options=dict(arm.options), seed=seed,
                                overrides=list(plan.overrides))
                points.append((run, {"task": task, "loss": arm.loss, **arm.options, "seed": seed}))
    return points


def run_reference_points(plan: ReferencePlan, results_dir: Path, progress: bool = True) -> list:
    """Run what is not complete yet; the outcomes of the points run (finished ones are skipped)."""
    from harness.runner.launch import pending, plan_sweep
    from harness.runner.sweep import run_sweep

    planned = plan_sweep(reference_points(plan), results_dir)
    todo = pending(planned, force=False)
    print(f"reference: {len(planned)} points, {len(planned) - len(todo)} complete, {len(todo)} to run", flush=True)
    return run_sweep(todo, results_dir, force=False, progress=progress)
