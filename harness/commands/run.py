"""`pdl-bench run`: one point (task, model, loss, alpha, seed)."""

from harness.commands._common import (
    RUN_FIELDS,
    add_alpha_argument,
    add_option,
    add_point_arguments,
    add_seed_argument,
    run_config,
)

HELP = "finetune, generate and score one point (one loss, one seed)"
DESCRIPTION = """\
Finetune the task's model with one loss, generate on the test split and score it.
Results go to results/<task>/<model>/<loss>-a<alpha>-s<seed>-<hash>/ (config, train log,
generations, metrics, provenance). A finished point is skipped; an interrupted one resumes
from its last checkpoint when the same command is run again. A failed run leaves error.json
(the exception, traceback, host, pid, SLURM job) beside config.json, never a metrics.json; a
point another process is running is refused, naming that process.

example:
  pdl-bench run --task bible --loss pdl --alpha 0.5 --seed 0 --limit 64 --max-steps 10
"""


def add_arguments(parser):
    add_point_arguments(parser)
    add_option(parser, "--loss", field=RUN_FIELDS["loss"], metavar="NAME")
    add_alpha_argument(parser)
    add_seed_argument(parser)
    add_option(parser, "--push-to-hub", field=RUN_FIELDS["push_to_hub"], metavar="REPO_ID")


def run(args) -> int:
    from harness.runner.failure import run_point_or_record_failure

    options = {"alpha": args.alpha} if args.alpha is not None else {}
    point = run_config(args, args.loss, options, args.seed)
    result = run_point_or_record_failure(point, args.results_dir, force=args.force,
                                         progress=not args.no_progress)
    if not result.metrics:
        return 0  # a non-main process under torchrun
    state = "already complete, skipped" if result.skipped else "done"
    print(f"{result.path}: {state}")
    for name, m in result.metrics["metrics"].items():
        print(f"  {name:28s} {metric_line(m)}")
    return 0


def metric_line(record: dict) -> str:
    """value [95% CI]; a metric these outputs leave undefined (or the stored data cannot give) says so."""
    from harness.numbers import is_missing

    if is_missing(record["value"]):
        why = (record.get("details") or {}).get("not_measured") or "undefined for these outputs (docs/metrics.md)"
        return f"{'n/a':>10s}  ({why})"
    interval = ("[no interval]" if is_missing(record["ci_low"]) or is_missing(record["ci_high"])
                else f"[{record['ci_low']:.4f}, {record['ci_high']:.4f}]")
    return f"{record['value']:10.4f}  {interval}"
