"""`pdl-bench rescore`: recompute the scores of finished points from their stored generations."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "recompute out-of-date scores of finished points from their stored generations (no training)"
DESCRIPTION = """\
Scores are derived data: a point stores its generations (generations*.jsonl) and training counts,
and its metric list is not part of its identity (folder name). For every finished point under
RESULTS_DIR whose scores are out of date (a metric added to or dropped from its list, or a metric
whose definition version changed since it was scored), this recomputes metrics.json's scores and
rare-token profiles for every decoding, and config.json's metric list, each written atomically.
Nothing is trained or generated; the generations, timings, likelihood by frequency and validation
CE stay as they are. A point whose scores stand but whose per-example values (example_scores.npz)
are missing under today's key (scored before the file existed, or where rougeLsum's sentence
splitter resolved otherwise) gets only that file written. A second run rescores nothing.

Which metrics: with --metrics, that list for every point; otherwise a point of a task that
`pdl-bench tasks` lists gets that task's current metric list, and any other point keeps the list
it was run with (only out-of-date metric versions are recomputed). `make reference` rescores the
reference points to its plan's metric lists the same way before running anything.

examples:
  pdl-bench rescore results/reference
  pdl-bench rescore results --metrics rouge1,distinct-2,mean-length
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="a results tree (e.g. results/reference)")
    parser.add_argument("--metrics", help="comma-separated metric list for every point (default: see above)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow tokenizer code from the hub when loading a point's tokenizer (off by default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from harness.errors import HarnessError
    from harness.metrics import METRICS
    from harness.report.collect import point_folders
    from harness.results import METRICS_FILE, read_config
    from harness.runner.scoring import rescore_points, task_metrics

    if not args.results_dir.is_dir():
        raise HarnessError(f"{args.results_dir} is not a folder", "pass a results tree, e.g. results/reference")
    chosen = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    if args.metrics is not None and not chosen:
        raise HarnessError("--metrics is empty", "name at least one metric, e.g. --metrics rouge1,distinct-2")
    for name in chosen or []:
        METRICS.get(name)  # unknown -> one line with did-you-mean
    finished = [path for path in point_folders(args.results_dir) if (path / METRICS_FILE).is_file()]
    targets, unreadable = [], []
    for path in finished:
        try:
            targets.append((path, chosen or task_metrics(read_config(path))))
        except HarnessError as err:
            unreadable.append((path, err.message))
    summary = rescore_points(targets, trust_remote_code=args.trust_remote_code, progress=not args.no_progress)
    summary.problems += unreadable
    print(summary.line())
    for path in summary.rescored:
        print(f"  rescored {path}")
    for path, problem in summary.problems:
        print(f"  not rescored: {path}: {problem}")
    return 1 if summary.problems else 0
