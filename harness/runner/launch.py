"""What a sweep runs, whichever launcher runs it: its points, which of them are unfinished, and the
one command that runs each point.

`--launcher local` (in this process, or one `pdl-bench run` process per GPU slot with --gpus),
`--launcher slurm` (one job array task per point) and `--dry-run` all take their points from
`plan_sweep` and their commands from `point_command`, so the path tested on one machine is the
path a cluster runs: every point ends in `run_point`, which skips a point finished meanwhile.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.keyvalue import format_key_value
from harness.manifest import (
    Launch,
    ManifestPoint,
    SweepManifest,
    now,
    settings_label,
    sweep_id,
)
from harness.results import PointConfig
from harness.runner.config import RunConfig
from harness.store import process_identity

DEFAULT_FAST = RunConfig.model_fields["fast"].default
DEFAULT_COMPILE = RunConfig.model_fields["compile"].default


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep, resolved before anything runs (so bad input fails in seconds)."""

    run: RunConfig
    settings: dict[str, Any]  # what sets it apart in the sweep: loss, alpha, seed, each --grid key
    path: Path  # its folder
    config: PointConfig
    complete: bool  # finished when the sweep was planned
    rerun: bool = False  # finished, but to be run again in place (--force semantics): see reference

    @property
    def label(self) -> str:
        return settings_label(self.settings)

    def manifest_entry(self, results_dir: Path) -> ManifestPoint:
        return ManifestPoint(path=self.path.relative_to(results_dir).as_posix(), task=self.config.task_name,
                             model=self.config.model, group=self.config.group_key(), settings=self.settings)


def plan_sweep(points: list[tuple[RunConfig, dict[str, Any]]], results_dir: Path) -> list[SweepPoint]:
    """Resolve every point (task, overrides, loss options, model choice: `run_point`'s own checks),
    so a bad --grid value or option fails before the first point runs or is submitted. Settings
    that name the same point (1e-5 and 0.00001; a key outside the identity, like report_to) make
    one point, run once."""
    from harness.runner.point import resolve

    planned: dict[Path, SweepPoint] = {}
    for run, settings in points:
        try:
            point = resolve(run, results_dir)
        except HarnessError as err:
            raise HarnessError(f"sweep point `{settings_label(settings)}`: {err.message}", err.hint) from None
        if point.store.path in planned:
            print(f"note: `{settings_label(settings)}` is the same point as "
                  f"`{planned[point.store.path].label}`; it runs once", flush=True)
            continue
        planned[point.store.path] = SweepPoint(run, settings, point.store.path, point.config,
                                               point.store.is_complete())
    return list(planned.values())


def pending(points: list[SweepPoint], *, force: bool) -> list[SweepPoint]:
    """The points a launch runs: the unfinished ones (every one with --force). Finished points are
    skipped here, at submission, and again by `run_point` when a task starts."""
    return [p for p in points if force or p.rerun or not p.complete]


def rescore_finished(points: list[SweepPoint], *, force: bool = False, trust_remote_code: bool = False,
                     progress: bool = True):
    """Do for every finished point a launch skips what `run` does for one: bring its scores up to
    its task's metric list and the current metric versions from its stored generations (nothing is
    trained or generated), print how many were rescored and which could not be, and return the
    harness.runner.scoring.RescoreSummary. The points `pending` gives are left alone: they are
    scored when they run."""
    from harness.runner.scoring import rescore_points

    to_run = {id(p) for p in pending(points, force=force)}
    targets = [(p.path, list(p.config.task["metrics"])) for p in points if id(p) not in to_run]
    summary = rescore_points(targets, trust_remote_code=trust_remote_code, progress=progress)
    if targets:
        print(summary.line(), flush=True)
    for folder, problem in summary.problems:
        print(f"  {folder}: {problem}", flush=True)
    return summary


def run_arguments(run: RunConfig, results_dir: Path, *, force: bool) -> list[str]:
    """The `pdl-bench run` arguments that make exactly `run` (the `run` command parses them back
    into an equal RunConfig; tests/test_sweep_launch.py checks it). Overrides pass as --set items,
    loss options as --loss-option items, so every value goes through the same typed parsing."""
    args = ["--task", run.task]
    if run.model is not None:
        args += ["--model", run.model]
    args += ["--loss", run.loss, "--seed", str(run.seed)]
    for key, value in run.loss_options.items():
        args += ["--loss-option", format_key_value(key, value)]
    for item in run.overrides:
        args += ["--set", item]
    if run.data_dir is not None:
        args += ["--data-dir", run.data_dir]
    if run.trust_remote_code:
        args.append("--trust-remote-code")
    if run.push_to_hub is not None:
        args += ["--push-to-hub", run.push_to_hub]
    if run.fast != DEFAULT_FAST:
        args.append({"on": "--fast", "off": "--plain"}[run.fast])
    if run.compile != DEFAULT_COMPILE:
        args += ["--compile", run.compile]
    args += ["--results-dir", str(results_dir), "--no-progress"]
    return args + (["--force"] if force else [])


def point_command(run: RunConfig, results_dir: Path, *, force: bool, gpus: int = 1,
                  for_user: bool = False) -> list[str]:
    """The command that runs one point: `python -m harness run ...` with this interpreter, or under
    torchrun (`--standalone`: a free port per job) when the point uses several GPUs. for_user: the
    same command as a user would type it (`pdl-bench run ...`, `torchrun ...`), for --dry-run."""
    args = ["run", *run_arguments(run, results_dir, force=force)]
    if gpus > 1:
        torchrun = ["torchrun"] if for_user else [sys.executable, "-m", "torch.distributed.run"]
        return [*torchrun, "--standalone", f"--nproc_per_node={gpus}", "-m", "harness", *args]
    return ["pdl-bench", *args] if for_user else [sys.executable, "-m", "harness", *args]


def dry_run_lines(points: list[SweepPoint], results_dir: Path, *, force: bool, gpus: int = 1) -> list[str]:
    """One shell-quoted command per point, for users with another scheduler."""
    return [shlex.join(point_command(p.run, results_dir, force=force, gpus=gpus, for_user=True)) for p in points]


def sweep_manifest(points: list[SweepPoint], results_dir: Path, command: list[str]) -> SweepManifest:
    """The sweep's manifest (its points and the command that finishes it), for `pdl-bench status`;
    record_launch writes it with each launch."""
    results_dir = Path(results_dir)
    entries = [p.manifest_entry(results_dir) for p in points]
    task = points[0].config.task_name if points else "sweep"
    return SweepManifest(id=sweep_id(task, [e.path for e in entries]), created=now(), command=command,
                         points=entries)


def launch_record(launcher: str, launched: int, job_id: str | None = None,
                  log_folder: Path | None = None) -> Launch:
    return Launch(launcher=launcher, time=now(), host=process_identity()["host"], pending=launched,
                  job_id=job_id, log_folder=None if log_folder is None else str(log_folder))
