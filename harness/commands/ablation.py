"""`pdl-bench ablation`: run the PDL ablation's unfinished points, then rebuild docs/ablation.md."""

from pathlib import Path

from harness.commands.reference import add_page_arguments, run_page
from harness.reference_plan import ABLATION_PLAN_FILE

HELP = "run the PDL ablation (results/reference/ablation.yaml) and rebuild docs/ablation.md"
DESCRIPTION = """\
Which of the official PDL code's choices break PDL? Read the ablation plan
(<results-dir>/ablation.yaml): the two ends, pdl-official (the official trainer.py arithmetic) and
pdl(alpha=1) (pdl's defaults), and between them each choice where they differ (frequency source,
normalisation, special-token and unseen-token weights) flipped alone, both ways. Run every planned
point that is not complete yet, in the same results tree as the verdict page (the ends and ce are
its points, run once: the same identity; one of an earlier result format is rerun once, as
`reference` does), then rebuild the ablation page from the tree alone: per
task the empty share, length, quality and diversity of every arm, the token weights it trained
with, paired deltas against both ends, one sentence per choice by fixed rules, and a
quality-diversity figure. `make ablation` runs this command.

examples:
  pdl-bench ablation
  pdl-bench ablation --no-run          # only rebuild docs/ablation.md from the committed tree
"""

DEFAULT_OUT = Path("docs/ablation.md")
DEFAULT_FIGURES = Path("docs/ablation")


def add_arguments(parser):
    add_page_arguments(parser, plan_file=ABLATION_PLAN_FILE, out=DEFAULT_OUT, figures=DEFAULT_FIGURES)


def run(args) -> int:
    from harness.report.ablation import build_ablation, ladder

    return run_page(args, "ablation", ABLATION_PLAN_FILE, build_ablation, check=ladder)
