"""`pdl-bench metrics`: list the metrics a task may name, and where each comes from."""

from __future__ import annotations

import argparse
import json

HELP = "list the metrics a task can name, and where each comes from"
DESCRIPTION = """\
List every registered metric: where it comes from (builtin, or the installed plugin distribution
and its version: any package that declares a `pdl_bench.metrics` entry point), its level
(example: a mean of per-output values; corpus: one value over all outputs), which direction is
better, what it needs besides the texts (training token counts, the model's tokenizer) and what
it measures. A task names its metrics under `metrics:`; docs/metrics.md defines the builtins.

examples:
  pdl-bench metrics
  pdl-bench metrics distinct-2 rougeL
  pdl-bench metrics --format json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="METRIC", help="only these metrics (default: all)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")


def run(args) -> int:
    from harness.metrics import METRICS

    names = args.names or METRICS.names()
    rows = []
    for name in names:
        metric = METRICS.get(name)
        rows.append({"name": name, "origin": str(METRICS.origin(name)), "level": metric.level,
                     "higher_is_better": metric.higher_is_better, "needs": list(metric.needs),
                     "description": metric.description})
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        better = {True: "higher is better", False: "lower is better", None: "no better direction"}[
            row["higher_is_better"]]
        needs = f"; needs {', '.join(row['needs'])}" if row["needs"] else ""
        print(f"{row['name']}  ({row['origin']}; {row['level']}; {better}{needs})\n  {row['description']}\n")
    return 0
