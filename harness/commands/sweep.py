"""`pdl-bench sweep`: every (loss, alpha, seed) point of a grid."""

import argparse
import sys

from harness.commands._common import (
    DEFAULT_LOSSES,
    RUN_FIELDS,
    add_point_arguments,
    parse_number_list,
    run_config,
)

HELP = "run every (loss, alpha, seed) point, skipping finished ones; one process per GPU with --gpus"
DESCRIPTION = """\
Runs the grid losses x alphas x seeds (losses without an alpha run once per seed). Finished
points are skipped, so an interrupted sweep continues where it stopped. With --gpus 0,1,2,3 the
points are spread over one process per GPU (CUDA_VISIBLE_DEVICES); each point has its own folder
and lock, so processes never clobber each other.

example:
  pdl-bench sweep --task xsum --alphas 0,0.25,0.5,0.75,1 --seeds 0,1,2 --losses ce,pdl
"""


def add_arguments(parser):
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
    parser.add_argument("--gpus", metavar="ID,ID,...", help="comma-separated GPU ids: one worker process per GPU")
    parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--num-workers", type=int, default=1, help=argparse.SUPPRESS)


def run(args) -> int:
    from harness.runner.sweep import grid, launch_per_gpu, run_sweep

    base = run_config(args)
    alphas = parse_number_list(args.alphas, float, "--alphas") if args.alphas is not None else task_alphas(base)
    seeds = parse_number_list(args.seeds, int, "--seeds")
    losses = [name.strip() for name in args.losses.split(",") if name.strip()]
    points = grid(base, losses, alphas, seeds)  # validates before any process starts
    if args.gpus:
        argv = strip_option(sys.argv[1:], "--gpus")
        return launch_per_gpu(argv, [g.strip() for g in args.gpus.split(",") if g.strip()])
    print(f"{len(points)} points (worker {args.worker + 1}/{args.num_workers})")
    summary = run_sweep(points, args.results_dir, force=args.force, progress=not args.no_progress,
                        worker=args.worker, num_workers=args.num_workers)
    return 1 if any(row["state"].startswith("failed") for row in summary) else 0


def task_alphas(base) -> list[float]:
    """The task's own alpha grid (its `alphas` key, after --set), the default of --alphas."""
    from harness.task import apply_overrides, load_task

    return list(apply_overrides(load_task(base.task), base.overrides).alphas)


def strip_option(argv: list[str], option: str) -> list[str]:
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        if item == option:
            skip = True
            continue
        if item.startswith(option + "="):
            continue
        out.append(item)
    return out
