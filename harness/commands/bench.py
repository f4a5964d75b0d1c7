"""`pdl-bench bench`: the paired CE vs PDL comparison on one task."""

from harness.commands._common import (
    DEFAULT_LOSSES,
    add_alpha_argument,
    add_point_arguments,
    add_seed_argument,
    parse_key_values,
    run_config,
)

HELP = "CE vs PDL from the same init, seed and data order; prints the comparison table"
DESCRIPTION = """\
Finetune a CE arm and a PDL arm (or --losses of your choice; the first is the baseline) from the
same pretrained model with the same seed, data order and budget; generate on the test split;
score; print metric, baseline, other arm, delta, paired-bootstrap 95% CI and p-value.
Without --task it runs the embedded offline default (real data, SmolLM2-135M, CPU-sized budget).

examples:
  pdl-bench bench                                 # embedded default, offline
  pdl-bench bench --task xsum --model HuggingFaceTB/SmolLM2-360M-Instruct
  pdl-bench bench --losses ce,pdl,face --alpha 0.5
"""


def add_arguments(parser):
    add_point_arguments(parser)
    parser.add_argument("--losses", default=DEFAULT_LOSSES, metavar="LOSS,LOSS,...",
                        help=f"comma-separated arms, the baseline first (default: {DEFAULT_LOSSES})")
    add_alpha_argument(parser)
    add_seed_argument(parser)  # one seed, shared by every arm


def run(args) -> int:
    from harness.errors import HarnessError
    from harness.runner.bench import bench, format_comparison
    from harness.runner.sweep import loss_has_alpha

    losses = [name.strip() for name in args.losses.split(",") if name.strip()]
    if len(losses) < 2:
        raise HarnessError(f"--losses needs at least two arms, got {losses}", "e.g. --losses ce,pdl")
    extra = parse_key_values(args.loss_option, "--loss-option")
    arms = []
    for loss in losses:
        options = dict(extra) if loss != losses[0] else {}
        if args.alpha is not None and loss_has_alpha(loss):
            options["alpha"] = args.alpha
        arms.append((loss, options))
    args.loss_option = []
    base = run_config(args, seed=args.seed)
    for comparison in bench(base, arms, args.results_dir, force=args.force, progress=not args.no_progress):
        print()
        print(format_comparison(comparison))
        print(f"\nwritten: {comparison['report']}")
    return 0
