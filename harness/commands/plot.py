"""`pdl-bench plot`: figures (diversity vs alpha, rare-token usage, training curves) from results/."""

from pathlib import Path

from harness.report.options import add_results_argument

HELP = "figures from results/: diversity and ROUGE vs alpha, rare-token usage, training curves"
DESCRIPTION = """\
Read every finished point under --results-dir (no model, CPU only) and draw, per group of
comparable runs: diversity metrics and ROUGE against alpha (error bars: std over seeds, CE as
a reference line), a quality-vs-diversity scatter, the share of generated tokens per
training-frequency bucket for every arm and the references, and training curves (loss per arm,
plain validation CE). Files: <results-dir>/figures/<task>__<model>__<kind>.png and .pdf.

examples:
  pdl-bench plot
  pdl-bench plot --results-dir runs/ --formats png,svg
"""


def add_arguments(parser):
    add_results_argument(parser)
    parser.add_argument("--out", type=Path, help="where the figures go (default: <results-dir>/figures)")
    parser.add_argument("--formats", default="png,pdf", help="comma-separated file formats (default png,pdf)")


def run(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from harness.errors import HarnessError
    from harness.report.collect import collect
    from harness.report.plots import write_figures

    formats = tuple(f.strip().lower() for f in args.formats.split(",") if f.strip())
    allowed = {"png", "pdf", "svg"}
    if not formats or set(formats) - allowed:
        raise HarnessError(f"--formats {args.formats!r}: use png, pdf and/or svg", "e.g. --formats png,pdf")
    collection = collect(args.results_dir)
    written = write_figures(collection, args.out or args.results_dir / "figures", formats)
    for kinds in written.values():
        for paths in kinds.values():
            for path in paths:
                print(f"written: {path}")
    for missing in collection.missing:
        print(f"missing or partial (not plotted): {missing.path}: {missing.reason}")
    return 0
