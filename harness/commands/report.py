"""`pdl-bench report`: one self-contained HTML page with tables, figures and example generations."""

from pathlib import Path

from harness.report.options import add_results_argument, add_table_arguments

HELP = "one self-contained HTML report (tables, figures, example generations) from results/"
DESCRIPTION = """\
Build <results-dir>/report.html from the results tree alone (no model, CPU only): per group of
comparable runs the metric table (mean ± std over seeds, paired delta vs CE with 95% CI), the
ablation table, every figure (embedded PNG, no external URLs), and a few test examples drawn
with a seeded RNG showing each arm's output next to the reference. Unfinished points are listed.

examples:
  pdl-bench report
  pdl-bench report --results-dir runs/ --examples 5 --output runs/summary.html
"""


def add_arguments(parser):
    add_results_argument(parser)
    add_table_arguments(parser)
    parser.add_argument("--output", type=Path, help="the HTML file (default: <results-dir>/report.html)")
    parser.add_argument("--examples", type=int, default=3, help="example generations per group (default 3)")
    parser.add_argument("--example-seed", type=int, default=0, help="seed for picking the examples (default 0)")


def run(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from harness.errors import HarnessError
    from harness.report.collect import collect
    from harness.report.html import write_report
    from harness.report.options import table_settings

    if args.examples < 0:
        raise HarnessError(f"--examples must be >= 0, got {args.examples}", "pass a number of examples, e.g. 3")
    settings = table_settings(args)
    collection = collect(args.results_dir)
    path = write_report(collection, args.output or args.results_dir / "report.html", settings,
                        n_examples=args.examples, example_seed=args.example_seed)
    print(f"written: {path}")
    for missing in collection.missing:
        print(f"missing or partial: {missing.path}: {missing.reason}")
    return 0
