"""`pdl-bench reference`: run the reference sweep's unfinished points, then rebuild the verdict page."""

from pathlib import Path

from harness.reference_plan import PLAN_FILE

HELP = "run the reference sweep (results/reference/plan.yaml) and rebuild the verdict page docs/results.md"
DESCRIPTION = """\
Read the reference plan (<results-dir>/plan.yaml: tasks, arms, seeds), run every planned point
that is not complete yet (finished points are skipped; a failed point is recorded in its
error.json and the others go on), then rebuild the verdict page from the results tree alone:
per task the mean ± std table with paired deltas against CE (95% CI, p), diversity against alpha,
the quality-diversity plane, the rare-token profile, example outputs, verdict sentences written
by fixed rules from the numbers, and every missing point with its reason. The page and its
figures are byte-identical when rebuilt from the same tree. `make reference` runs this command.

examples:
  pdl-bench reference
  pdl-bench reference --no-run          # only rebuild docs/results.md from the committed tree
"""

DEFAULT_RESULTS = Path("results/reference")
DEFAULT_OUT = Path("docs/results.md")
DEFAULT_FIGURES = Path("docs/results")


def add_page_arguments(parser, *, plan_file: str, out: Path, figures: Path) -> None:
    """The options of a command that runs one plan of the reference tree and rebuilds its page
    (`reference`, `ablation`)."""
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS,
                        help=f"the results tree holding {plan_file} (default: {DEFAULT_RESULTS})")
    parser.add_argument("--out", type=Path, default=out, help=f"the page (default: {out})")
    parser.add_argument("--figures-dir", type=Path, default=figures,
                        help=f"where the page's PNG figures go (default: {figures})")
    parser.add_argument("--no-run", action="store_true",
                        help="run nothing: only rebuild the page from the points already in the tree")


def run_page(args, name: str, plan_file: str, build_page, check=None) -> int:
    """Read the plan, `check` it (a plan the page cannot read fails before hours of running), run
    its unfinished points unless --no-run, then rebuild the page with `build_page`. `name` (the
    command) heads the progress lines."""
    import matplotlib

    matplotlib.use("Agg")
    from harness.reference_plan import read_plan

    plan = read_plan(args.results_dir, plan_file)
    if check is not None:
        check(plan)
    outcomes, rescored = None, None
    if not args.no_run:
        # ---- the running part: harness.runner.reference runs the unfinished planned points ----
        from harness.runner.reference import run_reference_points
        from harness.runner.sweep import print_summary

        outcomes, rescored = run_reference_points(plan, args.results_dir, progress=True,
                                                  name=name)
        if outcomes:
            print_summary(outcomes)
    page = build_page(args.results_dir, plan, args.out, args.figures_dir)
    print(f"written: {page.out} and {len(page.figures)} figure(s) under {args.figures_dir} "
          f"({page.complete} of {page.planned} planned points complete)")
    if outcomes is None:
        return 0
    from harness.runner.sweep import exit_code

    return max(exit_code(outcomes), 1 if rescored.problems else 0)  # a point left unrescored fails the command too


def add_arguments(parser):
    add_page_arguments(parser, plan_file=PLAN_FILE, out=DEFAULT_OUT, figures=DEFAULT_FIGURES)


def run(args) -> int:
    from harness.report.verdict import build_verdict

    return run_page(args, "reference", PLAN_FILE, build_verdict)
