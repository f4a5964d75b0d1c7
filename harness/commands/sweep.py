"""`pdl-bench sweep`: every point of a grid, on this machine or as one SLURM job array."""

import sys
from pathlib import Path

from harness.commands._common import (
    DEFAULT_LOSSES,
    RUN_FIELDS,
    add_point_arguments,
    parse_number_list,
    run_config,
)
from harness.errors import HarnessError

HELP = "run every point of a grid (losses x alphas x seeds x --grid keys), here or as a SLURM job array"
DESCRIPTION = """\
Runs the grid losses x alphas x seeds x every --grid key (losses without an alpha run once per
seed). Every point is resolved first, so a bad value fails before anything runs. Finished points
are skipped, so the same command continues an interrupted sweep, retries failed points and
resumes cut-short ones from their last checkpoint. A finished point whose scores are out of date
(its task's metric list changed, e.g. by --set metrics=[...], or a metric's version was raised)
is first rescored from its stored generations, as `run` does for it: nothing is trained or
generated again (`pdl-bench rescore` does the same for a whole results tree). --dry-run rescores
nothing; a point that cannot be rescored is named and makes the sweep exit 1.

Launchers:
  --launcher local (default)  the points run one after another in this process; with --gpus 0,1,2,3
                              each point runs as its own `pdl-bench run` process on the next free
                              GPU (--gpus-per-point N: N GPUs per point, under torchrun).
  --launcher slurm            submits ONE job array through submitit, one task per unfinished
                              point, each running that point's `pdl-bench run` command (torchrun
                              inside when --gpus-per-point > 1), prints the job id and the log
                              folder and returns (--wait: waits and prints the summary). Resources
                              come from the flags below or a `launcher:` section of a YAML file
                              (--launcher-config); flags win.
  --dry-run                   prints one `pdl-bench run ...` command per unfinished point, for
                              another scheduler, and runs nothing.

A failed point keeps its folder with config.json and error.json (type, message, traceback, host,
pid, SLURM job); the sweep goes on with the others and exits 1 with a summary. Each point has
its own lock, so sweeps, workers and array tasks sharing one results tree never run a point
twice. The sweep's point list goes to <results>/.sweeps/<id>.json: `pdl-bench status` shows
what is done, running, failed and pending, and the command that finishes it.

examples:
  pdl-bench sweep --task xsum --alphas 0,0.25,0.5,0.75,1 --seeds 0,1,2 --losses ce,pdl
  pdl-bench sweep --task bible --alphas 0,0.5 --seeds 0,1 --launcher slurm --partition gpu --time-min 120
  pdl-bench sweep --task bible --losses ce --grid training.learning_rate=1e-5,3e-5 --dry-run
"""

# Launcher flags, each setting the LauncherOptions field of the same name (harness/runner/slurm.py).
LAUNCHER_FLAGS = {"--partition": str, "--account": str, "--qos": str, "--time-min": int, "--gpus-per-point": int,
                  "--cpus-per-point": int, "--mem-gb": float, "--array-parallelism": int}


def add_arguments(parser):
    from harness.runner.slurm import LauncherOptions

    add_point_arguments(parser)
    parser.add_argument("--losses", default=DEFAULT_LOSSES, metavar="LOSS,LOSS,...",
                        help=f"comma-separated losses (default: {DEFAULT_LOSSES})")
    parser.add_argument("--alphas", metavar="A,A,...",
                        help="comma-separated alpha grid, run for every loss that has an alpha "
                             "(default: the task's `alphas`)")
    seed = RUN_FIELDS["seed"]
    parser.add_argument("--seeds", default=str(seed.default), metavar="N,N,...",
                        help=f"comma-separated seeds; each is a {seed.description} (default: {seed.default})"
                        .replace("%", "%%"))
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                        help="also sweep a task key over these values (repeatable; each value is "
                             "type-checked like --set), e.g. training.learning_rate=1e-5,3e-5 or "
                             "model=smollm2-135m,HuggingFaceTB/SmolLM2-360M-Instruct")
    parser.add_argument("--dry-run", action="store_true",
                        help="print one `pdl-bench run` command per unfinished point and run nothing")
    launch = parser.add_argument_group("launcher")
    launch.add_argument("--launcher", choices=["local", "slurm"], default="local",
                        help="local: this machine (default); slurm: one SLURM job array, one task per point")
    launch.add_argument("--gpus", metavar="ID,ID,...",
                        help="local: run each point as its own process on the next free GPU of these")
    launch.add_argument("--launcher-config", type=Path, metavar="YAML",
                        help="slurm: a YAML file whose `launcher:` section sets the options below "
                             "(keys as the flags with _: partition, time_min, ...); flags override it")
    launch.add_argument("--wait", action="store_true",
                        help="slurm: wait for the job array to finish and print the summary")
    launch.add_argument("--wait-timeout-min", type=float, metavar="MIN",
                        help="slurm --wait: give up waiting after MIN minutes (the jobs go on; "
                             "`pdl-bench status` shows them; default: wait as long as they run)")
    for flag, kind in LAUNCHER_FLAGS.items():
        field = LauncherOptions.model_fields[flag[2:].replace("-", "_")]
        default = field.get_default()
        where = "" if default is None else f" (default: {default})"
        launch.add_argument(flag, type=kind, metavar={str: "NAME", int: "N", float: "GB"}[kind],
                            help=f"{field.description}{where}".replace("%", "%%"))


def run(args) -> int:
    from harness.keyvalue import parse_grid_item
    from harness.runner.launch import dry_run_lines, pending, plan_sweep
    from harness.runner.sweep import exit_code, grid, print_summary

    base = run_config(args)
    options = launcher_options(args)
    alphas = parse_number_list(args.alphas, float, "--alphas") if args.alphas is not None else task_alphas(base)
    seeds = parse_number_list(args.seeds, int, "--seeds")
    losses = [name.strip() for name in args.losses.split(",") if name.strip()]
    axes = [parse_grid_item(item) for item in args.grid]
    points = plan_sweep(grid(base, losses, alphas, seeds, axes), args.results_dir)  # bad input fails here
    todo = pending(points, force=args.force)
    gpus = options.gpus_per_point if args.launcher == "slurm" or args.gpus else 1  # per point command
    if args.dry_run:
        for line in dry_run_lines(todo, args.results_dir, force=args.force, gpus=gpus):
            print(line)
        return 0
    print(f"{len(points)} points: {len(todo)} to run, {len(points) - len(todo)} complete (skipped)", flush=True)
    skipped = skipped_outcomes(points, todo)
    for outcome in skipped:
        print(f"  {outcome.label}: {outcome.state}")
    not_rescored = rescore_skipped(args, points)
    run_points = submit_to_slurm if args.launcher == "slurm" else run_here
    outcomes = run_points(args, points, todo, options)
    if outcomes is None:
        return int(not_rescored)  # submitted, not waited for
    print_summary(skipped + outcomes)
    return max(exit_code(outcomes), int(not_rescored))


def rescore_skipped(args, points) -> bool:
    """Rescore the finished points whose scores are out of date, as `run` does for a finished
    point (only the main process under torchrun: one writer per point); True when one could not be."""
    from harness.runner.dist import process_state
    from harness.runner.launch import rescore_finished

    if not process_state().is_main_process:
        return False
    summary = rescore_finished(points, force=args.force, trust_remote_code=args.trust_remote_code,
                               progress=not args.no_progress)
    return bool(summary.problems)


def skipped_outcomes(points, todo):
    from harness.runner.sweep import Outcome

    running = {id(p) for p in todo}
    return [Outcome(p.label, "skipped (complete)", path=str(p.path)) for p in points if id(p) not in running]


def launcher_options(args):
    """The launcher's options from --launcher-config and the flags, refusing flags that mean
    nothing to the chosen launcher (one rule, before anything is resolved or run)."""
    from harness.runner.slurm import LOCAL_OPTIONS
    from harness.runner.slurm import launcher_options as load
    from harness.runner.sweep import gpu_slots

    given = {flag[2:].replace("-", "_"): getattr(args, flag[2:].replace("-", "_")) for flag in LAUNCHER_FLAGS}
    if args.launcher == "local":
        slurm_only = [f"--{k.replace('_', '-')}" for k, v in given.items() if v is not None and k not in LOCAL_OPTIONS]
        slurm_only += [flag for flag, on in (("--launcher-config", args.launcher_config), ("--wait", args.wait)) if on]
        if slurm_only:
            raise HarnessError(f"{', '.join(slurm_only)} only apply to --launcher slurm",
                               "add --launcher slurm, or drop them (a local sweep always waits)")
        if given["gpus_per_point"] is not None and not args.gpus:
            raise HarnessError("--gpus-per-point with --launcher local needs --gpus",
                               "list the GPUs to share out, e.g. --gpus 0,1,2,3 --gpus-per-point 2")
    elif args.gpus:
        raise HarnessError("--gpus picks GPUs of this machine; SLURM picks a node's GPUs itself",
                           "use --gpus-per-point N with --launcher slurm")
    options = load(args.launcher_config, given)
    if args.gpus:
        gpu_slots(args.gpus, options.gpus_per_point)  # refuses too few GPUs now, before anything runs
    return options


def finishing_command(args) -> list[str]:
    """The command that finishes this sweep (what `status` prints): the one typed, without --force
    and --dry-run, since the points it finishes are the unfinished ones."""
    argv = list(getattr(args, "argv", None) or sys.argv[1:])
    return ["pdl-bench", *(item for item in argv if item not in ("--force", "--dry-run"))]


def submit_to_slurm(args, points, todo, options) -> list | None:
    """Submit the unfinished points as one job array; their outcomes with --wait, else None."""
    from harness.manifest import log_folder, record_launch
    from harness.runner.launch import launch_record, point_command, sweep_manifest
    from harness.runner.slurm import submit, task_log, wait_for
    from harness.runner.sweep import outcome_of

    manifest = sweep_manifest(points, args.results_dir, finishing_command(args))
    if not todo:
        record_launch(args.results_dir, manifest, launch_record("slurm", 0))
        print("nothing to submit: every point is complete")
        return []
    commands = [point_command(p.run, args.results_dir, force=args.force, gpus=options.gpus_per_point) for p in todo]
    submitted = submit(commands, options, log_folder(args.results_dir, manifest.id), name=f"pdl-{manifest.id}")
    record_launch(args.results_dir, manifest, launch_record("slurm", len(todo), submitted.job_id, submitted.log_folder))
    print(f"submitted SLURM job {submitted.job_id}: {len(todo)} point(s)")
    print(f"logs: {submitted.log_folder}/{submitted.job_id}_<task>/ (one folder per task)")
    print(f"watch it: pdl-bench status --results-dir {args.results_dir}   (or squeue -j {submitted.job_id})")
    if not args.wait:
        return None
    wait_for(submitted.job_id, timeout_s=None if args.wait_timeout_min is None else 60 * args.wait_timeout_min)
    return [outcome_of(p, None, ended=f"SLURM task {job.job_id} ended without a result (log: {task_log(job)})")
            for p, job in zip(todo, submitted.jobs)]


def run_here(args, points, todo, options) -> list:
    """Run the unfinished points on this machine: in this process, or one process per GPU slot."""
    from harness.manifest import record_launch
    from harness.runner.dist import process_state
    from harness.runner.launch import launch_record, sweep_manifest
    from harness.runner.sweep import gpu_slots, run_on_gpus, run_sweep

    if process_state().is_main_process:  # under torchrun every rank runs the sweep; one records it
        record_launch(args.results_dir, sweep_manifest(points, args.results_dir, finishing_command(args)),
                      launch_record("local", len(todo)))
    if args.gpus:
        return run_on_gpus(todo, args.results_dir, force=args.force, slots=gpu_slots(args.gpus, options.gpus_per_point))
    return run_sweep(todo, args.results_dir, force=args.force, progress=not args.no_progress)


def task_alphas(base) -> list[float]:
    """The task's own alpha grid (its `alphas` key, after --set), the default of --alphas."""
    from harness.task import apply_overrides, load_task

    return list(apply_overrides(load_task(base.task), base.overrides).alphas)
