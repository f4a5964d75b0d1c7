"""Run the reference sweep's unfinished points (results/reference/plan.yaml): every task x seed x
arm, with the plan's overrides, through the sweep's own planning and runner, so a finished point
is skipped and a failed one is recorded (error.json) while the others go on."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.reference_plan import ReferencePlan
from harness.results import LOAD_TIME_MEASUREMENTS_FORMAT
from harness.runner.config import RunConfig

if TYPE_CHECKING:
    from harness.runner.scoring import RescoreSummary


def reference_points(plan: ReferencePlan) -> list[tuple[RunConfig, dict[str, Any]]]:
    """(run, settings) per point, seed by seed, then task, then arm: the order they run in, so
    every task has a whole seed (all arms, paired) early and the page shows all of them while the
    other seeds run."""
    points = []
    for seed in plan.all_seeds:
        for task in plan.tasks:
            for index, arm in enumerate(plan.arms):
                if seed not in plan.arm_seeds(index):
                    continue
                run = RunConfig(task=task, loss=arm.loss, loss_options=dict(arm.options), seed=seed,
                                overrides=list(plan.overrides))
                points.append((run, {"task": task, "loss": arm.loss, **arm.options, "seed": seed}))
    return points


def measured_before_load_time(folder: Path) -> bool:
    """A complete point written before pdl-bench measured what only the loaded model can give
    (likelihood by frequency, the further decodings): the reference reruns it once, in place, since
    a committed point keeps no weights to measure later. An unreadable metrics.json is not this case
    (the page names it)."""
    from harness.errors import HarnessError
    from harness.results import read_metrics

    try:
        return not read_metrics(folder).measured_at_load
    except HarnessError:
        return False


def run_reference_points(plan: ReferencePlan, results_dir: Path, progress: bool = True,
                         name: str = "reference") -> tuple[list, "RescoreSummary"]:
    """Rescore the finished points, run what is not complete yet, and rerun (as --force does: the
    earlier folder is kept aside until the rerun has finished) the complete points of an earlier
    result format, which any plan naming them needs once; the outcomes of the points run (finished
    ones are skipped) and the rescore summary. `name` says which plan in the progress lines."""
    from dataclasses import replace

    from harness.runner.launch import pending, plan_sweep, rescore_finished
    from harness.runner.sweep import run_sweep

    planned = [replace(p, rerun=p.complete and measured_before_load_time(p.path))
               for p in plan_sweep(reference_points(plan), results_dir)]
    todo = pending(planned, force=False)
    rescored = rescore_finished(planned, progress=progress)
    outdated = sum(p.rerun for p in planned)
    print(f"{name}: {len(planned)} points, {len(planned) - len(todo)} complete, {len(todo)} to run"
          + (f" ({outdated} of them complete but measured before result format {LOAD_TIME_MEASUREMENTS_FORMAT}: rerun once "
             "for the likelihood by frequency and the sampled decoding)" if outdated else ""), flush=True)
    return run_sweep(todo, results_dir, force=False, progress=progress), rescored
