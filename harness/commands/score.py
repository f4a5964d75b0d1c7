"""`pdl-bench score`: metric table with bootstrap CIs for a JSONL of predictions, or a paired A/B comparison."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.report.options import add_workers_argument, workers_from

HELP = "Score a JSONL of predictions/references (metrics with bootstrap 95% CIs), or compare two with --against."
DESCRIPTION = """\
Reads PREDICTIONS.jsonl (one JSON object per line with "prediction", "reference" and optionally
"id") and prints every metric with a seeded 95% bootstrap interval: ROUGE-1/2/L/Lsum (F1 x 100,
stemmed), corpus and per-sample distinct-n, n-gram entropy, seq-rep-4, mean length, vocabulary.
With --against OTHER.jsonl, the file given first is arm A and OTHER is arm B; rows are matched by
"id" (or by line order when ids are absent, with equal references required), and the table shows
A, B, the difference B - A with its paired-bootstrap 95% interval and a two-sided p-value.
Rare-token metrics (rare-token-share, rare-token-recall, freq-bucket-tvd) need --train-counts
(a .npy count vector over token ids) and --tokenizer (a local tokenizer folder). limit-share needs
a "stopped" field on every row ("eos" or "max_new_tokens", as a point's generations.jsonl has);
without it, it is not measured (left out with a note, never 0).
Definitions: docs/metrics.md.

Examples:
  pdl-bench score runs/ce/predictions.jsonl
  pdl-bench score runs/ce/predictions.jsonl --against runs/pdl/predictions.jsonl --format json
  pdl-bench score preds.jsonl --metrics rouge1,distinct-2 --n-boot 2000 --seed 1 --workers 2
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("predictions", type=Path, help="JSONL with prediction, reference[, id] per line")
    parser.add_argument("--against", type=Path, help="second JSONL (arm B) for a paired comparison B - A")
    parser.add_argument("--metrics", help="comma-separated metric names (default: the standard suite)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: %(default)s)")
    add_workers_argument(parser)
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    parser.add_argument("--train-counts", type=Path, help="training-target token counts: a point's train_counts.npz, or a dense .npy array (rare-token metrics)")
    parser.add_argument("--tokenizer", type=Path, help="local tokenizer folder used to count --train-counts")


def load_pairs(path: Path) -> tuple[list[str], list[str], list[str] | None, list[bool] | None]:
    """(predictions, references, ids or None, finished flags or None) from a JSONL file, with the
    row number in every error."""
    from harness.errors import HarnessError
    from harness.io import read_jsonl
    from harness.results import finished_flags

    rows = read_jsonl(path)
    if not rows:
        raise HarnessError(f"{path} has no rows", "write one JSON object per line")
    predictions, references, ids = [], [], []
    for number, row in enumerate(rows, start=1):
        for key in ("prediction", "reference"):
            if key not in row:
                raise HarnessError(f"{path}: row {number} has no {key!r} field",
                                   'each line needs {"prediction": ..., "reference": ...}')
            if not isinstance(row[key], str):
                raise HarnessError(f"{path}: row {number}: {key!r} is {type(row[key]).__name__}, not a string",
                                   'use "" for an empty output')
        predictions.append(row["prediction"])
        references.append(row["reference"])
        ids.append(row.get("id"))
    try:
        finished = finished_flags(rows)
    except HarnessError as err:
        raise HarnessError(f"{path}: {err.message}", err.hint) from err
    has_id = [i is not None for i in ids]
    if not any(has_id):
        return predictions, references, None, finished
    if not all(has_id):
        raise HarnessError(f"{path}: row {has_id.index(False) + 1} has no 'id' while others do",
                           "give every row an id, or none")
    ids = [str(i) for i in ids]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise HarnessError(f"{path}: id {duplicate!r} appears more than once", "ids must be unique")
    return predictions, references, ids, finished


def align(a: tuple, b: tuple, path_a: Path, path_b: Path) -> tuple[list[str], list[str], list[str], list | None,
                                                                  list | None]:
    """(predictions_a, predictions_b, references, finished_a, finished_b): matched by id when both
    files have ids, else by order."""
    from harness.errors import HarnessError

    preds_a, refs_a, ids_a, finished_a = a
    preds_b, refs_b, ids_b, finished_b = b
    if ids_a is not None and ids_b is not None:
        missing = sorted(set(ids_a) ^ set(ids_b))
        if missing:
            raise HarnessError(f"{path_a} and {path_b} have different ids (e.g. {missing[0]!r}; {len(missing)} differ)",
                               "compare predictions for the same examples")
        where_b = {i: k for k, i in enumerate(ids_b)}
        order = [where_b[i] for i in ids_a]
        preds_b, refs_b = [preds_b[k] for k in order], [refs_b[k] for k in order]
        finished_b = None if finished_b is None else [finished_b[k] for k in order]
    elif len(preds_a) != len(preds_b):
        raise HarnessError(f"{path_a} has {len(preds_a)} rows but {path_b} has {len(preds_b)}",
                           "compare predictions for the same examples (add 'id' fields to match by id)")
    for k, (ref_a, ref_b) in enumerate(zip(refs_a, refs_b)):
        if ref_a != ref_b:
            where = f"id {ids_a[k]!r}" if ids_a is not None and ids_b is not None else f"row {k + 1}"
            raise HarnessError(f"references differ between {path_a} and {path_b} at {where}",
                               "both files must hold the same examples (match them with 'id' fields)")
    return preds_a, preds_b, refs_a, finished_a, finished_b


def measurable(metrics: list[str] | None, has_finished: bool) -> list[str] | None:
    """The requested metrics less those needing finished flags the files lack: those are named on
    stderr as not measured (never scored 0)."""
    from harness.errors import HarnessError
    from harness.metrics import needing_finished

    if metrics is None or has_finished:
        return metrics
    left_out = needing_finished(metrics)
    if left_out:
        print(f"not measured: {', '.join(left_out)} (the rows have no \"stopped\" field: how each output "
              "ended)", file=sys.stderr)
    kept = [name for name in metrics if name not in left_out]
    if not kept:
        raise HarnessError(f"{', '.join(left_out)}: needs a \"stopped\" field on every row",
                           'add "stopped": "eos" or "max_new_tokens" to each row (a point\'s generations.jsonl '
                           "has it), or ask for other metrics")
    return kept


def _context(args: argparse.Namespace):
    from harness.errors import HarnessError
    from harness.metrics import MetricContext, token_ids_fn

    if (args.train_counts is None) != (args.tokenizer is None):
        raise HarnessError("--train-counts and --tokenizer go together", "pass both, or neither")
    if args.train_counts is None:
        return None
    from transformers import AutoTokenizer

    from harness.results import read_counts_file

    counts = read_counts_file(args.train_counts, "pass a point's train_counts.npz, or a dense array saved with "
                                                 "numpy.save (a point's file: rerun the point with --force)")
    if not args.tokenizer.is_dir():
        raise HarnessError(f"{args.tokenizer} is not a folder", "pass a local tokenizer folder")
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer, local_files_only=True)
    return MetricContext(train_counts=counts, tokenize=token_ids_fn(tokenizer))


def run(args: argparse.Namespace) -> int:
    from harness.comparison import from_paired
    from harness.metrics import compare, score
    from harness.render.cells import pair_grid, value_grid
    from harness.render.terminal import text_table

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    context = _context(args)
    arm_a = load_pairs(args.predictions)
    settings = dict(context=context, n_boot=args.n_boot, seed=args.seed, workers=workers_from(args))
    if args.against is None:
        results = score(arm_a[0], arm_a[1], metrics=measurable(metrics, arm_a[3] is not None), finished=arm_a[3],
                        **settings)
        if args.format == "json":
            print(json.dumps({name: r.to_dict() for name, r in results.items()}, indent=2))
            return 0
        n = next(iter(results.values())).n
        print(f"{args.predictions}: {n} examples, {args.n_boot} bootstrap resamples, seed {args.seed}")
        print(text_table(value_grid(results.values(), missing="-")))
        return 0
    preds_a, preds_b, refs, finished_a, finished_b = align(arm_a, load_pairs(args.against), args.predictions,
                                                           args.against)
    if (finished_a is None) != (finished_b is None):  # flags of one arm only: not comparable
        finished_a = finished_b = None
    results = compare(preds_a, preds_b, refs, metrics=measurable(metrics, finished_a is not None),
                      finished_a=finished_a, finished_b=finished_b, **settings)
    if args.format == "json":
        print(json.dumps({name: r.to_dict() for name, r in results.items()}, indent=2))
        return 0
    rows = [from_paired(r.to_dict(), ("A", "B")) for r in results.values()]
    print(f"A = {args.predictions}\nB = {args.against}\n{len(refs)} paired examples, "
          f"{args.n_boot} paired bootstrap resamples, seed {args.seed}; delta = B - A")
    print(text_table(pair_grid(rows, headers=("A", "B"), better_column=True, missing="-")))
    return 0
