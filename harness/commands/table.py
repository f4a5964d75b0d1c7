"""`pdl-bench table`: CE vs PDL (and peer losses) tables rebuilt from the results tree."""

from pathlib import Path

from harness.report.options import add_results_argument, add_table_arguments

HELP = "tables of every metric (mean ± std over seeds, paired delta vs CE with bootstrap CI) from results/"
DESCRIPTION = """\
Read every finished point under --results-dir (no model is loaded; a CPU is enough), group the
points that differ only in loss, loss options and seed, and print per group one Markdown table:
each metric's mean ± std over seeds per arm, the paired delta against the CE arm of the same seed
with a bootstrap 95% CI and p-value, seeds and test examples. Best mean per metric in bold.
Also writes CSV (tidy numbers), LaTeX (booktabs) and Markdown files under results/tables/, and an
ablation table when PDL options other than alpha vary. Unfinished points are listed, not dropped.

examples:
  pdl-bench table
  pdl-bench table --results-dir runs/ --metrics rouge1,distinct-2 --n-boot 2000
"""


def add_arguments(parser):
    add_results_argument(parser)
    add_table_arguments(parser)
    parser.add_argument("--out", type=Path, help="where the files go (default: <results-dir>/tables)")


def run(args) -> int:
    from harness.report.collect import collect
    from harness.report.options import table_settings
    from harness.report.table_render import render_markdown, write_tables
    from harness.report.tables import build_tables

    settings = table_settings(args)
    collection = collect(args.results_dir)
    tables = build_tables(collection, settings)
    print(render_markdown(tables, collection.missing))
    written = write_tables(tables, collection.missing, args.out or args.results_dir / "tables")
    print(f"written: {len(written)} files under {written[0].parent}")
    return 0
